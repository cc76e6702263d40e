"""`GET /api/v1/readiness`: each tenant's resume readiness as JSON (`check-resume` and the
pause/resume operations read it through `exporter.readiness.client`).

The body (exporter/readiness/wire.py; schema: docs/readiness-api.schema.json) wraps each
tenant's latest assessment (docs/readiness.schema.json) with what a client needs to trust it:

```json
{"api_version": 1, "ready": false, "exit_code": 1,
 "tenants": [{"tenant": "contoso", "state": "not_ready", "exit_code": 1,
              "detail": "not ready: minimum_pause", "stale": false,
              "assessment_age_seconds": 12.5, "assessment": {...}}]}
```

* A tenant without an assessment yet (the first polls, a long first backfill) is `cannot_tell`
  with `assessment: null` and a detail saying why.
* An assessment older than its tenant's `max_age` (measured on the tenant's own clock: the
  simulator's in demo and tests; and at least STALE_MIN_WALL_SECONDS old in real time, for
  accelerated clocks) is `stale`, and `cannot_tell`: the pipeline behind it has stopped, so it
  says nothing about now.
* `ready` and `exit_code` at the top combine the listed tenants (`wire.combine_exit_codes`).
* `?tenant=NAME` lists that tenant alone; an unknown name is a 404 naming the known ones.

The handler runs on the event loop: it reads the snapshot's assessments (in memory) and
formats them; the assessment itself is computed elsewhere, off the loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web

from exporter.domain.assessment import TenantAssessment
from exporter.domain.attribution import TriggerCauses
from exporter.domain.readiness import ReadinessState
from exporter.readiness import wire
from exporter.readiness.wire import (
    EXIT_CODES,
    READINESS_PATH,
    Assessment,
    ErrorBody,
    ReadinessBody,
    TenantReadiness,
    encode,
)


@dataclass(frozen=True, slots=True)
class AssessmentView:
    """One tenant's latest assessment, as the API presents it."""

    tenant: str
    assessment: TenantAssessment | None
    now: float
    """The tenant's clock now (its assessment's age is measured on it)."""
    max_age: float
    """An assessment older than this is stale."""
    pending: str
    """Why there is no assessment yet (shown while `assessment` is None)."""
    wall_age: float | None = None
    """Wall-clock seconds since the assessment was made, where known: on an accelerated clock
    (the demo's) a second's delay is minutes of tenant time, so staleness also needs
    STALE_MIN_WALL_SECONDS of real time."""
    trigger_causes: TriggerCauses | None = None
    """Storm attribution of the trailing hour (exporter.domain.attribution), if known."""


STALE_MIN_WALL_SECONDS = 10.0


ReadinessSource = Callable[[], Awaitable[Sequence[AssessmentView]] | Sequence[AssessmentView]]
"""The views to answer with, now; may be a coroutine (the exporter first reflects a pause
ledger that changed since its last assessment)."""


def tenant_entry(view: AssessmentView) -> TenantReadiness:
    assessment = view.assessment
    cannot_tell = ReadinessState.CANNOT_TELL
    if assessment is None:
        return TenantReadiness(
            tenant=view.tenant,
            state=cannot_tell,
            exit_code=EXIT_CODES[cannot_tell],
            detail=f"cannot tell: no assessment yet ({view.pending})",
            stale=False,
            assessment_age_seconds=None,
            assessment=None,
            trigger_causes=wire.TriggerCauses.of(view.trigger_causes),
        )
    age = max(0.0, view.now - assessment.evaluated_at)
    readiness = assessment.readiness
    stale = age > view.max_age and (view.wall_age is None or view.wall_age > STALE_MIN_WALL_SECONDS)
    state, detail = readiness.state, readiness.detail
    if stale:
        state = cannot_tell
        detail = (
            f"cannot tell: the last assessment is {age:.0f} s old (at most {view.max_age:.0f} s "
            "is trusted): the exporter has stopped evaluating this tenant; see its logs"
        )
    return TenantReadiness(
        tenant=view.tenant,
        state=state,
        exit_code=EXIT_CODES[state],
        detail=detail,
        stale=stale,
        assessment_age_seconds=round(age, 3),
        assessment=Assessment.of(assessment),
        trigger_causes=wire.TriggerCauses.of(view.trigger_causes),
    )


def readiness_body(views: Sequence[AssessmentView]) -> ReadinessBody:
    return ReadinessBody.of(tenant_entry(v) for v in views)


def _json(body: ReadinessBody | ErrorBody, status: int = 200) -> web.Response:
    return web.Response(
        body=encode(body),
        status=status,
        content_type="application/json",
        headers={hdrs.CACHE_CONTROL: "no-store"},
    )


def readiness_routes(source: ReadinessSource) -> list[web.RouteDef]:
    """The route to pass to `create_app(extra_routes=...)`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        found = source()
        views = list(await found if inspect.isawaitable(found) else found)
        wanted = request.query.getall("tenant", [])
        if len(wanted) > 1:
            return _json(ErrorBody(error="give ?tenant= at most once"), 400)
        if wanted:
            name = wanted[0]
            chosen = [v for v in views if v.tenant == name]
            if not chosen:
                known = ", ".join(v.tenant for v in views) or "none"
                return _json(
                    ErrorBody(error=f"no tenant named {name!r}; configured tenants: {known}"), 404
                )
            views = chosen
        return _json(readiness_body(views))

    return [web.get(READINESS_PATH, handler)]
