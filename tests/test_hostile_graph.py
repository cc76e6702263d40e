"""A hostile or broken Graph (#14): next links that leave the configured base, bodies nested
hundreds deep, larger than the cap, HTML with a 200, `value` of the wrong type. Each fails its
page or event with one error a person can act on (a `GraphError`, which the poll loop logs as one
warning), never a crash loop, and nothing from a refused page is counted.

The real GraphClient (msgraph-sdk over HTTP) talks to a tiny aiohttp server on 127.0.0.1 that
plays Graph; the audit poller commits into a real SQLite store."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import structlog
from aiohttp import web

from exporter.clock import VirtualClock
from exporter.graph.client import GraphClient
from exporter.graph.credentials import StaticTokenCredential
from exporter.graph.errors import GraphError, GraphResponseError
from exporter.graph.retry import RetryPolicy
from exporter.ingest.audit_poller import AuditPoller
from exporter.ingest.poller import CollectorStatus
from exporter.store.database import Store
from tests.listing import list_dynamic_groups

NOW = 1_767_600_000.0
TOKEN = "secret-bearer-token"
PATH = "/v1.0/auditLogs/directoryAudits"
Answer = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


@dataclass
class FakeGraph:
    """Answers each audit request with the next of `answers`; records every request."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[web.Request] = field(default_factory=list)
    url: str = ""

    log: list[dict[str, object]] | None = None
    """When set, every request without a queued answer gets this whole audit log as one page
    (the poller keeps what is in its window)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if not self.answers:
            return web.json_response({"value": self.log or []})
        response = self.answers.pop(0)(request)
        return await response if inspect.isawaitable(response) else response


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeGraph, FakeGraph]]:
    """Graph, and a foreign server on another port of the same host."""
    fakes = (FakeGraph(), FakeGraph())
    runners = []
    for fake in fakes:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fake.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        fake.url = f"http://127.0.0.1:{port}"
        runners.append(runner)
    yield fakes
    for runner in runners:
        await runner.cleanup()


GROUP_ID = "00000000-0000-0000-0000-0000000000aa"


def event(number: int, at: float, **extra: object) -> dict[str, object]:
    return {
        "id": f"e{number}",
        "activityDateTime": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "activityDisplayName": "Add member to group",
        "result": "success",
        "loggedByService": "Core Directory",
        "initiatedBy": {
            "app": {
                "appId": "65d91a3d-ab74-42e6-8a2f-0add61688c74",
                "displayName": "Microsoft Approval Management",
            }
        },
        "targetResources": [
            {"id": f"u{number}", "type": "User", "modifiedProperties": []},
            {"id": GROUP_ID, "type": "Group"},
        ],
        **extra,
    }


def page(events: list[dict[str, object]], next_link: str | None = None) -> Answer:
    body: dict[str, object] = {"value": events}
    if next_link is not None:
        body["@odata.nextLink"] = next_link

    def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    return answer


def raw(body: bytes, content_type: str = "application/json") -> Answer:
    def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type)

    return answer


def client(graph: FakeGraph, *, max_body_bytes: int | None = None) -> GraphClient:
    extra = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    return GraphClient(
        root_url=graph.url,
        credential=StaticTokenCredential(TOKEN),
        scopes=["https://graph.microsoft.com/.default"],
        audit_requests_per_10s=1000,
        retry=RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02),
        **extra,  # type: ignore[arg-type]
    )


def audit_poller(graph: GraphClient, store: Store, clock: VirtualClock) -> AuditPoller:
    return AuditPoller(
        tenant="t",
        graph=graph,
        store=store,
        clock=clock,
        interval=60,
        lateness=1800,
        backfill=6 * 3600,
        reconcile_interval=3600,
        reconcile_reach=3 * 3600,
    )


async def poll_once(graph: GraphClient, path: Path) -> tuple[Store, BaseException | None]:
    """One audit poll of the last hour into a fresh store; the error it ended with, if any."""
    store = Store(path)
    await store.open()
    # A change by the dynamic-processing app counts as dynamic on a group listed dynamic (#13).
    await list_dynamic_groups(store, "t", [GROUP_ID], at=NOW - 7200)
    poller = AuditPoller(
        tenant="t",
        graph=graph,
        store=store,
        clock=VirtualClock(NOW, 0),
        interval=60,
        lateness=600,
        backfill=3600,
    )
    try:
        await poller.poll(CollectorStatus("audit"))
    except Exception as exc:
        return store, exc
    return store, None


@pytest.mark.parametrize(
    "where",
    ["another port", "another host", "another scheme"],
)
async def test_a_next_link_off_the_graph_base_is_not_followed_and_its_page_not_counted(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path, where: str
) -> None:
    graph, foreign = servers
    port = graph.url.rsplit(":", 1)[1]
    link = {
        "another port": f"{foreign.url}{PATH}?$skiptoken=x",
        "another host": f"http://localhost:{port}{PATH}?$skiptoken=x",
        "another scheme": f"https://127.0.0.1:{port}{PATH}?$skiptoken=x",
    }[where]
    graph.answers = [page([event(1, NOW - 1800), event(2, NOW - 1700)], link)]
    graph_client = client(graph)
    try:
        store, error = await poll_once(graph_client, tmp_path / "s.sqlite3")
    finally:
        await graph_client.close()
    assert isinstance(error, GraphResponseError), error
    assert "not followed" in str(error)
    assert TOKEN not in str(error)
    assert len(graph.requests) == 1  # the first page only: the link was never requested
    assert foreign.requests == []
    assert await store.call(store.totals, "t") == {}
    assert await store.call(store.audit_state, "t") is None
    await store.close()


async def test_a_next_link_on_the_graph_base_is_followed(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path
) -> None:
    graph, _ = servers
    # The same origin written with upper-case host letters is still the same origin.
    link = graph.url.replace("http://", "HTTP://") + PATH + "?$skiptoken=x"
    graph.answers = [page([event(1, NOW - 1800)], link), page([event(2, NOW - 1700)])]
    graph_client = client(graph)
    try:
        store, error = await poll_once(graph_client, tmp_path / "s.sqlite3")
    finally:
        await graph_client.close()
    assert error is None
    assert len(graph.requests) == 2
    assert graph.requests[1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert (await store.call(store.totals, "t"))["dynamic_add"] == 2
    await store.close()


async def test_an_event_nested_hundreds_deep_is_malformed_and_the_rest_counted(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path
) -> None:
    graph, _ = servers
    # An event without an id, holding a list nested 300 deep (more than orjson writes back).
    body = b'{"value":[' + orjson.dumps(event(1, NOW - 1800)) + b","
    body += b'{"activityDateTime":"2026-01-05T07:00:00Z","x":' + b"[" * 300 + b"]" * 300 + b"}"
    body += b"]}"
    graph.answers = [raw(body)]
    graph_client = client(graph)
    try:
        store, error = await poll_once(graph_client, tmp_path / "s.sqlite3")
    finally:
        await graph_client.close()
    assert error is None, error
    totals = await store.call(store.totals, "t")
    assert totals["dynamic_add"] == 1
    assert totals["malformed"] == 1
    assert totals["malformed:missing_id"] == 1
    await store.close()


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("nested thousands deep", raw(b'{"value":[' + b"[" * 5000 + b"]" * 5000 + b"]}")),
        ("HTML with 200", raw(b"<html><body>Sign in</body></html>", "text/html")),
        ("value is an object", raw(b'{"value": {"id": "e1"}}')),
        ("value is a string", raw(b'{"value": "nothing"}')),
        ("not an object", raw(b"[1, 2, 3]")),
    ],
)
async def test_a_hostile_page_fails_the_window_with_a_graph_error(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path, name: str, answer: Answer
) -> None:
    graph, _ = servers
    graph.answers = [answer] * 3
    graph_client = client(graph)
    try:
        store, error = await poll_once(graph_client, tmp_path / "s.sqlite3")
    finally:
        await graph_client.close()
    # A GraphError is one warning in the poll loop; anything else would be "poll crashed" with
    # a traceback on every poll.
    assert isinstance(error, GraphError), (name, repr(error))
    assert await store.call(store.totals, "t") == {}
    await store.close()


async def test_a_page_over_the_body_cap_is_not_read_to_the_end(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path
) -> None:
    graph, _ = servers
    sent = [0]

    async def huge(request: web.Request) -> web.StreamResponse:
        # 100 MB, chunked (no Content-Length): only reading it tells how big it is.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"value":[')
        chunk = orjson.dumps(event(1, NOW - 1800)) + b","
        block = chunk * (1024 * 1024 // len(chunk))
        try:
            while sent[0] < 100 * 1024 * 1024:
                await response.write(block)
                sent[0] += len(block)
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    graph.answers = [huge] * 3
    graph_client = client(graph, max_body_bytes=1024 * 1024)
    try:
        store, error = await asyncio.wait_for(poll_once(graph_client, tmp_path / "s.sqlite3"), 30)
    finally:
        await graph_client.close()
    assert isinstance(error, GraphResponseError), repr(error)
    assert "cap" in str(error)
    assert len(graph.requests) == 1  # a body too large is not worth fetching again
    assert await store.call(store.totals, "t") == {}
    await store.close()


def dated(number: int, text: str) -> dict[str, object]:
    return {**event(number, NOW), "activityDateTime": text}


async def test_an_event_dated_year_9999_or_before_the_retention_never_moves_time(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path
) -> None:
    graph, _ = servers
    link = f"{graph.url}{PATH}?$skiptoken=2"
    graph.answers = [
        # The impossible event last on a page that is not the window's last: its time would be
        # the page's last time, where the watermark moves to.
        page(
            [
                event(1, NOW - 1800),
                dated(2, "1990-01-01T00:00:00Z"),
                dated(3, "9999-12-31T23:59:59Z"),
            ],
            link,
        ),
        page([event(4, NOW - 1700), dated(5, "2026-01-05T09:20:00Z")]),  # NOW + 1h20m
    ]
    graph_client = client(graph)
    try:
        store, error = await poll_once(graph_client, tmp_path / "s.sqlite3")
    finally:
        await graph_client.close()
    assert error is None, error
    totals = await store.call(store.totals, "t")
    assert totals["dynamic_add"] == 2
    assert totals["malformed:time_out_of_range"] == 3
    state = await store.call(store.audit_state, "t")
    assert state is not None
    assert state.watermark <= NOW
    assert all(end <= NOW for _, end in await store.call(store.coverage, "t"))
    assert await store.call(store.counts_between, "t", NOW - 60, NOW + 10**9) == {}
    await store.close()


async def test_a_store_poisoned_by_a_future_event_is_repaired_at_start_up(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path
) -> None:
    graph, _ = servers
    path = tmp_path / "s.sqlite3"
    graph.answers = [page([event(1, NOW - 1800)])]
    graph_client = client(graph)
    try:
        store, error = await poll_once(graph_client, path)
        assert error is None, error
        await store.close()
        # What an older version left behind after reading an event dated 9999-12-31.
        with sqlite3.connect(path) as db:
            db.execute("UPDATE audit_state SET watermark = 253402300799")
            db.execute("UPDATE audit_coverage SET end = 253402300799")
        with structlog.testing.capture_logs() as logs:
            store, error = await poll_once(graph_client, path)
    finally:
        await graph_client.close()
    assert error is None, error
    state = await store.call(store.audit_state, "t")
    assert state is not None
    assert state.watermark <= NOW
    assert all(end <= NOW for _, end in await store.call(store.coverage, "t"))
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert "in the future" in warnings[0]["event"]
    await store.close()


async def test_reconciliation_counts_a_late_event_once_even_in_a_store_from_before_it(
    servers: tuple[FakeGraph, FakeGraph], tmp_path: Path
) -> None:
    """Every 10 minutes a poll; one event appears 80 minutes after its time (past the 30 min
    allowance). The store first looks like one an older version wrote (seen ids kept for the
    allowance only, nothing recorded about it): re-reading older windows must not count again
    what those pruned ids stood for."""
    graph, _ = servers
    events = [event(n, NOW - 6 * 3600 + n * 300) for n in range(72)]  # the last 6 h
    graph.log = list(events)
    graph_client = client(graph)
    clock = VirtualClock(NOW, 0)
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    await list_dynamic_groups(store, "t", [GROUP_ID], at=NOW - 7 * 3600)
    status = CollectorStatus("audit")
    try:
        await audit_poller(graph_client, store, clock).poll(status)
        # What a store of the version before #14 holds after that poll.
        state = await store.call(store.audit_state, "t")
        assert state is not None

        def as_before(db: sqlite3.Connection = store.db) -> None:
            db.execute("DELETE FROM meta WHERE key LIKE 'seen_kept_from:%'")
            db.execute("DELETE FROM seen_events WHERE time < ?", (state.next_start - 60,))

        await store.run(as_before)
        poller = audit_poller(graph_client, store, clock)  # a restart with this version
        for step in range(1, 25):
            clock.advance(600)
            if step == 8:  # 80 minutes after its time, an event appears
                graph.log.append(event(999, clock.now() - 4800))
            graph.log.append(event(1000 + step, clock.now() - 60))  # and on-time ones
            await poller.poll(status)
        totals = await store.call(store.totals, "t")
    finally:
        await graph_client.close()
        await store.close()
    assert totals["dynamic_add"] == len(graph.log)  # every event once, the late one included
    assert totals["reconciled"] == 1
    late = sum(
        n
        for kind, n in totals.items()
        if kind.startswith("lateness_bucket:") and kind[16:] in ("+Inf", "7200", "10800")
    )
    assert late == 1
