"""The count history kept between assessments (exporter.store.count_cache) is the one the
store reads whole, whatever was written or pruned in between."""

from __future__ import annotations

import random

from exporter.domain.events import Series
from exporter.domain.history import HOUR, MINUTE, floor_to
from exporter.store.count_cache import FRESH, CountHistoryReader
from exporter.store.database import HOUR_RETENTION, MINUTE_RETENTION, Store

TENANT = "contoso"
START = 1_796_418_000.0 + 1234.5
SERIES = (Series.TRIGGER_USER, Series.DYNAMIC_ADD, Series.RULE_CHANGE)


def _add(store: Store, tenant: str, series: Series, at: float, n: int) -> None:
    """As the audit commit writes a page's counts: an upsert that adds."""
    for table, column, step in (("minute_counts", "minute", MINUTE), ("hour_counts", "hour", HOUR)):
        store.db.execute(
            f"INSERT INTO {table} (tenant, series, {column}, count) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET count = count + excluded.count",
            (tenant, series.value, floor_to(at, step), n),
        )


def _prune(store: Store, tenant: str, now: float) -> None:
    store.db.execute(
        "DELETE FROM minute_counts WHERE tenant=? AND minute < ?", (tenant, now - MINUTE_RETENTION)
    )
    store.db.execute(
        "DELETE FROM hour_counts WHERE tenant=? AND hour < ?", (tenant, now - HOUR_RETENTION)
    )


async def test_the_kept_history_is_the_one_read_whole_through_writes_and_prunes(
    store: Store,
) -> None:
    def scenario() -> tuple[int, int]:
        rng = random.Random(18)
        store.db.execute(
            "INSERT INTO audit_coverage (tenant, start, end) VALUES (?, ?, ?)",
            (TENANT, START - 40 * 86400, START),
        )
        for minutes_back in range(0, int(36 * 86400 // MINUTE), 7):
            _add(
                store, TENANT, rng.choice(SERIES), START - minutes_back * MINUTE, rng.randint(1, 9)
            )
        _add(store, "other", Series.TRIGGER_USER, START - 600, 5)  # another tenant's rows
        reader = CountHistoryReader(store)
        now = START
        reads = 0
        for step in range(400):
            now += rng.uniform(5, 300)
            for _ in range(rng.randint(0, 4)):  # live polls: the last minutes
                _add(store, TENANT, rng.choice(SERIES), now - rng.uniform(0, 1800), 1)
            if step % 23 == 0:  # a reconciliation pass or a backfill piece: the past
                _add(store, TENANT, rng.choice(SERIES), now - rng.uniform(FRESH, 48 * HOUR), 2)
            if step % 5 == 0:  # pruned at a poll, now and then by a clock a little ahead
                _prune(store, TENANT, now + (90 if step % 15 == 0 else 0))
            since = now - HOUR_RETENTION
            assert reader.read(TENANT, since, now) == store.count_history(TENANT, since, now)
            reads += 1
        return reads, reader.full_reads

    reads, full_reads = await store.run(scenario)
    # Two tables a read; most reads reuse the kept past (a full read at each new hour boundary,
    # each write into the past, each prune ahead of the reader's clock).
    assert full_reads < reads / 2, (full_reads, reads)
    assert full_reads > 10
