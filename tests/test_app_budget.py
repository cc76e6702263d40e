"""The app-wide audit budget (exporter.graph.budget): live polls before backfills, tenants in
turn, grants spaced evenly, and which tenants share one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.config.models import Config
from exporter.graph.budget import SPACING_SLACK, AppBudget, AuditPriority, share_budgets

RATE = 200.0  # per 10 s: one grant every 52.5 ms
SPACING = 10.0 / RATE * SPACING_SLACK


async def _take(
    budget: AppBudget, tenant: str, priority: AuditPriority, order: list[str], label: str
) -> None:
    await budget.acquire(tenant, priority)
    order.append(label)


async def test_an_idle_budget_grants_at_once_and_then_spaces_the_grants() -> None:
    budget = AppBudget(RATE, app="a")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await budget.acquire("t1", AuditPriority.LIVE)
    assert loop.time() - started < SPACING / 2
    for _ in range(4):
        await budget.acquire("t1", AuditPriority.BACKFILL)
    # Five grants: four spacings at least, never a burst.
    assert loop.time() - started >= 4 * SPACING * 0.95
    assert budget.usage["t1"].requests == {
        AuditPriority.LIVE: 1,
        AuditPriority.BASELINE: 0,
        AuditPriority.BACKFILL: 4,
    }
    assert budget.usage["t1"].wait_seconds > 3 * SPACING * 0.9


async def test_live_polls_go_before_any_backfill_and_tenants_take_turns() -> None:
    budget = AppBudget(RATE, app="a")
    await budget.acquire("busy", AuditPriority.BACKFILL)  # the budget is now in use
    order: list[str] = []
    tasks = [
        # The busy tenant's backfill queued first, with many requests...
        *(
            asyncio.create_task(
                _take(budget, "busy", AuditPriority.BACKFILL, order, f"busy-backfill-{i}")
            )
            for i in range(3)
        ),
        asyncio.create_task(
            _take(budget, "quiet", AuditPriority.BACKFILL, order, "quiet-backfill")
        ),
        asyncio.create_task(
            _take(budget, "other", AuditPriority.BASELINE, order, "other-baseline")
        ),
        # ... then two live polls, queued last.
        asyncio.create_task(_take(budget, "quiet", AuditPriority.LIVE, order, "quiet-live")),
        asyncio.create_task(_take(budget, "other", AuditPriority.LIVE, order, "other-live")),
    ]
    await asyncio.sleep(0)
    assert budget.waiting == 7
    await asyncio.gather(*tasks)
    assert order[:2] == ["quiet-live", "other-live"]
    assert order[2] == "other-baseline"
    # Among backfills, the tenant served longest ago goes first: the quiet tenant does not wait
    # behind the busy one's whole queue.
    assert order[3:5] == ["quiet-backfill", "busy-backfill-0"]
    assert budget.usage["quiet"].wait_seconds > 0
    assert budget.waiting == 0


async def test_a_cancelled_wait_leaves_the_queue() -> None:
    budget = AppBudget(RATE, app="a")
    await budget.acquire("t1", AuditPriority.LIVE)
    waiting = asyncio.create_task(budget.acquire("t2", AuditPriority.BACKFILL))
    await asyncio.sleep(0)
    assert budget.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert budget.waiting == 0
    await budget.acquire("t3", AuditPriority.LIVE)  # the budget still grants


def _tenant(name: str, **auth: Any) -> dict[str, Any]:
    return {"name": name, "tenant_id": "00000000-0000-0000-0000-0000000000" + name[-2:], **auth}


def test_tenants_of_one_app_registration_and_cloud_share_one_budget() -> None:
    app_a = "11111111-1111-1111-1111-111111111111"
    app_b = "22222222-2222-2222-2222-222222222222"

    def secret(client_id: str) -> dict[str, Any]:
        return {
            "auth": {
                "method": "client_secret",
                "client_id": client_id,
                "client_secret_env": "SECRET",
            }
        }

    config = Config.model_validate(
        {
            "tenants": [
                _tenant("t01", **secret(app_a)),
                _tenant("t02", **secret(app_a.upper())),
                _tenant("t03", **secret(app_b)),
                {**_tenant("t04", **secret(app_a)), "cloud": "usgov"},
                {**_tenant("t05", **secret(app_a)), "cloud": "usgov"},
            ]
        }
    )
    budgets = share_budgets(config.tenants, 110)
    assert budgets["t01"] is budgets["t02"]
    assert "t03" not in budgets  # alone on its app: its own limiter is all it needs
    assert budgets["t04"] is budgets["t05"] is not budgets["t01"]
    assert budgets["t04"].app == f"{app_a} (usgov)"
    assert budgets["t01"].requests_per_10s == 110


async def test_each_tenant_keeps_its_own_limit_inside_the_shared_budget() -> None:
    """A tenant's requests never reach Graph more often than its own limit allows, however long
    each waited here: the fleet benchmark met 429s from a live poll overtaking its backfill.
    The limit is Graph's sliding window (2 in any window here, with the 5% slack)."""
    window = 1.0  # seconds (Graph's is 10): the app grants one every 5 ms
    budget = AppBudget(RATE, app="a", tenant_requests_per_10s=2, window_seconds=window)
    loop = asyncio.get_running_loop()
    granted: dict[str, list[float]] = {"busy": [], "other": []}

    async def take(tenant: str, priority: AuditPriority) -> None:
        await budget.acquire(tenant, priority)
        granted[tenant].append(loop.time())

    await asyncio.gather(
        *(take("busy", AuditPriority.BACKFILL) for _ in range(3)),
        take("busy", AuditPriority.LIVE),
        *(take("other", AuditPriority.BACKFILL) for _ in range(3)),
    )
    for times in granted.values():
        spans = [later - earlier for earlier, later in zip(times, times[2:], strict=False)]
        assert min(spans) >= window * SPACING_SLACK * 0.95, spans
    # The other tenant was served while the busy one waited for its own limit.
    assert granted["other"][0] < granted["busy"][2]


async def test_the_tenant_with_the_most_backfill_left_is_kept_at_its_own_limit() -> None:
    """Makespan-first: the fleet's backfills end when the largest one does, and it is bound by
    its own limit, so it is served whenever that limit allows. Round robin would give it one
    turn in thirteen: the benchmark's largest tenants waited for the small ones to finish."""
    # Each tenant may have one request in any 3.5 of the app's grant intervals (its own limit,
    # 52.5 ms apart here): the large tenant, served whenever that allows, takes every fourth
    # grant; in turn with twelve others, every thirteenth.
    budget = AppBudget(3.5, app="a", tenant_requests_per_10s=1, window_seconds=0.175)
    smalls = [f"small{i:02d}" for i in range(12)]
    budget.note_backlog("large", 400)
    for name in smalls:
        budget.note_backlog(name, 3)
    await budget.acquire("other", AuditPriority.BACKFILL)  # the budget is now in use
    order: list[str] = []
    tasks = [
        *(
            asyncio.create_task(_take(budget, name, AuditPriority.BACKFILL, order, name))
            for _ in range(2)
            for name in smalls
        ),
        *(
            asyncio.create_task(_take(budget, "large", AuditPriority.BACKFILL, order, "large"))
            for _ in range(6)
        ),
    ]
    await asyncio.gather(*tasks)
    first = order[:20]
    assert first[0] == "large"
    # At its limit: a grant every fourth slot (at least four of twenty however the loop lags).
    assert first.count("large") >= 4, first


async def test_a_tenant_whose_backfill_is_over_takes_its_turn_again() -> None:
    budget = AppBudget(RATE, app="a")
    budget.note_backlog("done", 50)
    budget.note_backlog("done", 0)
    budget.note_backlog("left", 1)
    await budget.acquire("other", AuditPriority.BACKFILL)
    order: list[str] = []
    await asyncio.gather(
        _take(budget, "done", AuditPriority.BACKFILL, order, "done"),
        _take(budget, "left", AuditPriority.BACKFILL, order, "left"),
    )
    assert order == ["left", "done"]


async def test_a_request_the_budget_allows_is_not_held_behind_a_tenant_at_its_own_limit() -> None:
    """The budget's timer was set for the one waiting tenant's own limit (a second away); a
    request of another tenant that arrives meanwhile goes when the app's spacing allows."""
    # One request in any second each; the app grants one every 5 ms.
    budget = AppBudget(RATE, app="a", tenant_requests_per_10s=1, window_seconds=1.0)
    loop = asyncio.get_running_loop()
    await budget.acquire("limited", AuditPriority.BACKFILL)
    second = asyncio.create_task(budget.acquire("limited", AuditPriority.BACKFILL))
    await asyncio.sleep(0.2)  # the app's spacing has passed: the timer waits for its own limit
    asked = loop.time()
    await budget.acquire("other", AuditPriority.BACKFILL)
    assert loop.time() - asked < 0.5
    assert not second.done()
    await second


async def test_among_live_polls_the_tenant_with_the_most_backfill_left_goes_first() -> None:
    """100 tenants start together: the largest one's present window must not wait behind
    every other tenant's, or its backfill (and the fleet's) starts ~10 s late."""
    budget = AppBudget(RATE, app="a")
    budget.note_backlog("large", 90)
    await budget.acquire("large", AuditPriority.LIVE)  # served last: round robin puts it last
    order: list[str] = []
    await asyncio.gather(
        *(_take(budget, name, AuditPriority.LIVE, order, name) for name in ("s1", "s2", "s3")),
        _take(budget, "large", AuditPriority.LIVE, order, "large"),
    )
    assert order[0] == "large"
