"""The app-wide audit budget: Graph's reporting APIs allow 5 requests per 10 s per app per
tenant **and** a number per 10 s per app across all tenants (graph-facts: 122). Tenants that
share an app registration (same client id, same cloud) therefore share one `AppBudget` on top of
each tenant's own limiter (`exporter.graph.client`).

Scheduling is freshness-first and fair:

* a live poll's request (`AuditPriority.LIVE`) is granted before any backfill or
  reconciliation request (`AuditPriority.BACKFILL`) that waits with it, so a fleet's backfills
  never make a tenant's current data stale;
* among requests of the same priority, the tenant with the most backfill left goes first
  (`note_backlog`; makespan-first): the fleet's backfills end when the largest one does, and
  the largest is bound by its own limit (5 per 10 s), so it must be served at that limit from
  the start, its present window included; the smaller tenants share what it leaves
  (docs/scale.md). Among equal backlogs (every tenant once backfilled, or none reported) the
  tenant served at that priority longest ago goes first (round robin);
* grants are spaced evenly (one per `10 s / rate`), never in bursts, as the per-tenant limiter
  is: Graph counts in a sliding window where requests arrive, with network jitter;
* each tenant's own limit is kept here too: a tenant's requests that passed its own limiter in
  order and then waited here for different times (a live poll overtaking its backfill) would
  reach Graph bunched, over its 5 per 10 s (the fleet benchmark met exactly that). It is kept
  as Graph counts it, a sliding window (5 grants at most in any 10.5 s: the same 5% slack as
  the per-tenant limiter's spacing), not as a spacing from the last grant: a grant that came
  late (behind other tenants' live polls) then does not push back every later one, which kept
  the fleet's largest tenant, bound by its own limit, below it.

A request that finds the budget idle is granted on the spot, without a future or a timer: a
tenant alone on its app pays nothing for the budget it does not need.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from exporter.config.models import AuthMethod, Tenant

WINDOW_SECONDS = 10.0
SPACING_SLACK = 1.05
"""As the per-tenant limiter's: grants a little further apart than the rate, so that a window
counted where they arrive (with jitter) never sees one too many."""


class AuditPriority(IntEnum):
    """Lower is served first."""

    LIVE = 0
    """An incremental poll: the window that reaches the present."""
    BASELINE = 1
    """A backfill piece the baseline of the present reads (the same hour on previous days
    and weeks): signals need them before the rest of the past."""
    BACKFILL = 2
    """The rest of a backfill, or a reconciliation re-read: they share what is left."""


@dataclass(slots=True)
class TenantUsage:
    """One tenant's share of an app budget, cumulative (exported as counters)."""

    requests: dict[AuditPriority, int] = field(
        default_factory=lambda: dict.fromkeys(AuditPriority, 0)
    )
    wait_seconds: float = 0.0
    """Time its requests waited for the app budget (not for its own per-tenant limiter)."""


@dataclass(eq=False, slots=True)
class _Waiter:
    tenant: str
    priority: AuditPriority
    since: float
    sequence: int
    future: asyncio.Future[None]


class AppBudget:
    """One app registration's audit requests across its tenants (see the module docstring)."""

    def __init__(
        self,
        requests_per_10s: float,
        *,
        app: str,
        tenant_requests_per_10s: float | None = None,
        window_seconds: float = WINDOW_SECONDS,
    ) -> None:
        """`tenant_requests_per_10s`: each tenant's own limit, enforced here too (the caller's
        per-tenant limiter must then stand aside): a tenant's requests that waited here for
        different times would otherwise reach Graph bunched, over the tenant's limit. Both
        rates are per `window_seconds` (Graph's 10 s; shorter in tests)."""
        if not requests_per_10s > 0:
            raise ValueError(f"an app budget needs a positive rate, got {requests_per_10s}")
        self.app = app
        """The app's label: its client id, or what stands for it."""
        self.requests_per_10s = requests_per_10s
        self._spacing = window_seconds / requests_per_10s * SPACING_SLACK
        self._tenant_burst = (
            0 if tenant_requests_per_10s is None else max(1, math.floor(tenant_requests_per_10s))
        )
        """Grants a tenant may have in any `_tenant_window` (0: no limit of its own here)."""
        self._tenant_window = (
            0.0
            if tenant_requests_per_10s is None
            else window_seconds * self._tenant_burst / tenant_requests_per_10s * SPACING_SLACK
        )
        self._tenant_grants: dict[str, deque[float]] = {}
        """Each tenant's last `_tenant_burst` grants."""
        self._tenant_free: dict[str, float] = {}
        """Loop time from which each tenant's next request may be granted."""
        self._next_free = -math.inf
        """Loop time from which the next request may be granted."""
        self._waiting: list[_Waiter] = []
        self._sequence = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        """Loop time the timer fires at."""
        self._last_served: dict[tuple[str, AuditPriority], float] = {}
        """(tenant, priority) -> its last grant: the round robin turns within each priority."""
        self.usage: dict[str, TenantUsage] = {}
        self._backlog: dict[str, float] = {}
        """tenant -> its backfill requests still to make, as it last reported them."""

    def note_backlog(self, tenant: str, requests: float) -> None:
        """The tenant's backfill still needs about `requests` requests (0: none): its backfill
        and baseline requests go before those of tenants with less left."""
        if requests > 0:
            self._backlog[tenant] = requests
        else:
            self._backlog.pop(tenant, None)

    def join(self, tenant: str) -> None:
        """Make the tenant known (exported at zero before its first request)."""
        self.usage.setdefault(tenant, TenantUsage())

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiting if not w.future.done())

    async def acquire(self, tenant: str, priority: AuditPriority) -> None:
        """Wait for this request's turn; then it may be sent."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        usage = self.usage.get(tenant)
        if usage is None:
            usage = self.usage[tenant] = TenantUsage()
        if (
            not self._waiting
            and now >= self._next_free
            and now >= self._tenant_free.get(tenant, -math.inf)
        ):
            self._grant_now(tenant, priority, now)
            usage.requests[priority] += 1
            return
        self._sequence += 1
        waiter = _Waiter(tenant, priority, now, self._sequence, loop.create_future())
        self._waiting.append(waiter)
        # The timer may be set for later (every other waiter at its own limit): this request
        # may be granted from when the app budget and its own limit allow.
        self._schedule(loop, self._tenant_free.get(tenant, -math.inf))
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled():
                # Granted, then cancelled before it could run: the slot is spent anyway.
                pass
            raise
        usage.requests[priority] += 1
        usage.wait_seconds += loop.time() - waiter.since

    def _grant_now(self, tenant: str, priority: AuditPriority, now: float) -> None:
        self._next_free = max(now, self._next_free) + self._spacing
        if self._tenant_burst:
            grants = self._tenant_grants.get(tenant)
            if grants is None:
                grants = self._tenant_grants[tenant] = deque(maxlen=self._tenant_burst)
            grants.append(now)
            if len(grants) == self._tenant_burst:
                self._tenant_free[tenant] = grants[0] + self._tenant_window
        self._last_served[(tenant, priority)] = now

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float = -math.inf) -> None:
        """Make the timer fire by `at` (and not before the app budget allows), sooner if it
        was set for later."""
        if not self._waiting:
            return
        when = max(self._next_free, loop.time(), at)
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._grant_next, loop)
        self._timer_at = when

    def _grant_next(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._waiting = [w for w in self._waiting if not w.future.done()]
        if not self._waiting:
            return
        now = loop.time()
        if now < self._next_free:  # woken early (timer resolution)
            self._schedule(loop)
            return
        eligible = [w for w in self._waiting if self._tenant_free.get(w.tenant, -math.inf) <= now]
        if not eligible:  # every waiting tenant is at its own limit
            self._schedule(
                loop, min(self._tenant_free.get(w.tenant, -math.inf) for w in self._waiting)
            )
            return
        backlog = self._backlog
        chosen = min(
            eligible,
            key=lambda w: (
                w.priority,
                -backlog.get(w.tenant, 0.0),
                self._last_served.get((w.tenant, w.priority), -math.inf),
                w.sequence,
            ),
        )
        self._waiting.remove(chosen)
        self._grant_now(chosen.tenant, chosen.priority, now)
        chosen.future.set_result(None)
        self._schedule(loop)


def app_identity(tenant: Tenant) -> tuple[str, str]:
    """(app, cloud) of the registration a tenant's requests are counted against: its client id
    (a managed identity's, when configured); a token given as is, or a system-assigned managed
    identity, is one app the exporter cannot name: such tenants are taken as sharing it."""
    auth = tenant.auth
    if auth.method is AuthMethod.MANAGED_IDENTITY:
        app = auth.managed_identity_client_id or "system-assigned managed identity"
    else:
        app = auth.client_id or f"{auth.method.value} token"
    return app.lower(), tenant.cloud.value


def share_budgets(
    tenants: Iterable[Tenant],
    requests_per_10s: float,
    tenant_requests_per_10s: float | None = None,
) -> Mapping[str, AppBudget]:
    """tenant name -> the budget it shares, for every app registration that two or more of the
    tenants use. A tenant alone on its app gets none: at its own limit (5 per 10 s by default)
    it cannot reach the app-wide one."""
    groups: dict[tuple[str, str], list[str]] = {}
    for tenant in tenants:
        groups.setdefault(app_identity(tenant), []).append(tenant.name)
    shared: dict[str, AppBudget] = {}
    for (app, cloud), names in groups.items():
        if len(names) < 2:
            continue
        budget = AppBudget(
            requests_per_10s,
            app=app if cloud == "global" else f"{app} ({cloud})",
            tenant_requests_per_10s=tenant_requests_per_10s,
        )
        for name in names:
            budget.join(name)
            shared[name] = budget
    return shared


__all__ = ["AppBudget", "AuditPriority", "TenantUsage", "app_identity", "share_budgets"]
