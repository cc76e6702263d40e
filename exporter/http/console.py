"""The console: the landing page's live view of each tenant, rendered on the server.

What it shows, top to bottom: the verdict (is a pause warranted, why, since when; may paused
groups be resumed, condition by condition; the pause episode; the resume plan), then charts of
the last 48 hours of the tenant's clock (triggers per hour against the baseline band, dynamic
membership changes per hour, paused groups, estimated processing lag) with the pause and resume
moments marked, then the paused groups, critical first.

The page is plain HTML with inline SVG: no script, no external asset, so it works offline and
behind any proxy; it refreshes itself with `<meta http-equiv="refresh">`. Every value that
comes from Graph or the configuration is escaped. The data (`TenantConsole`) is assembled by
`exporter.runtime.console` off the scrape path; this module only turns it into markup.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.domain.assessment import TenantAssessment
from exporter.domain.readiness import ConditionStatus, ReadinessState

e = html.escape


@dataclass(frozen=True, slots=True)
class HourCounts:
    start: int
    """The clock hour (epoch seconds, tenant clock)."""
    user: int | None
    """User changes that trigger re-evaluation; None when the hour was not (fully) ingested."""
    device: int | None
    membership: int | None
    """Dynamic membership changes (added + removed)."""
    user_baseline: float | None
    """Expected user changes in this hour (the domain's baseline, floored)."""
    device_baseline: float | None
    partial: bool = False
    """The current hour: still filling."""


@dataclass(frozen=True, slots=True)
class Moment:
    at: float
    kind: str
    """`pause` or `resume`."""
    groups: int


@dataclass(frozen=True, slots=True)
class PausedRow:
    id: str
    name: str
    kind: str
    critical: bool
    since: float | None
    """None: paused before the exporter first listed it (#13), so when is unknown."""


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    index: int
    critical: bool
    size: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TenantConsole:
    tenant: str
    now: float
    """The tenant's clock when the data was read."""
    window_start: float
    hours: tuple[HourCounts, ...]
    trigger_factor: float
    """thresholds.trigger_rate_factor: the top of the baseline band."""
    paused_steps: tuple[tuple[float, int], ...]
    """(time, paused groups from then on), oldest first; the first is at window_start."""
    lag: tuple[tuple[float, float], ...]
    """(time, median estimated processing lag in seconds), as assessed since the start."""
    moments: tuple[Moment, ...]
    paused: tuple[PausedRow, ...]
    paused_total: int
    assessment: TenantAssessment | None
    detail: str = ""
    next_batches: tuple[PlannedBatch, ...] = ()
    """The first batches of the resume plan, if there is an episode."""
    """What the exporter is still waiting for, when there is no assessment yet."""
    probe: tuple[tuple[float, float], ...] = ()
    """(time seen, measured delay in seconds) of the canary probe's detected rounds (#20)."""


MAX_PAUSED_ROWS = 25
LAG_GAP = 2 * 3600
"""Lag points further apart than this (tenant clock) are not joined."""
WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 10, 26


def clock(t: float | None) -> str:
    if t is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _short(t: float) -> str:
    return time.strftime("%a %H:%M", time.gmtime(t))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "unknown"
    text = f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


class _Frame:
    """Maps tenant-clock time and a value onto one chart's pixels."""

    def __init__(self, start: float, end: float, top: float) -> None:
        self.start, self.end = start, max(end, start + 1)
        self.top = _nice_max(top)

    def x(self, t: float) -> float:
        span = WIDTH - LEFT - RIGHT
        return LEFT + span * min(1.0, max(0.0, (t - self.start) / (self.end - self.start)))

    def y(self, v: float) -> float:
        span = HEIGHT - TOP - BOTTOM
        return TOP + span * (1 - min(1.0, max(0.0, v / self.top)))


def _axes(frame: _Frame, unit: str, moments: Sequence[Moment]) -> list[str]:
    parts = []
    for i in range(5):
        v = frame.top * i / 4
        y = frame.y(v)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        label = _duration(v) if unit == "duration" else _number(v)
        parts.append(
            f'<text class="tick" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{e(label)}</text>'
        )
    span = frame.end - frame.start
    step = 3600 * (12 if span > 24 * 3600 else 6 if span > 8 * 3600 else 1)
    t = math.ceil(frame.start / step) * step
    while t <= frame.end:
        x = frame.x(t)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{e(_short(t))}</text>"
        )
        t += step
    for m in moments:
        if frame.start <= m.at <= frame.end:
            x = frame.x(m.at)
            label = f"{m.kind} ({m.groups:,} groups) at {clock(m.at)}"
            parts.append(
                f'<line class="moment {e(m.kind)}" data-kind="{e(m.kind)}" x1="{x:.1f}" '
                f'x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"><title>{e(label)}</title></line>'
            )
    return parts


def _svg(label: str, body: list[str], chart: str) -> str:
    return (
        f'<svg class="chart" data-chart="{e(chart)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{e(label)}" preserveAspectRatio="xMidYMid meet">{"".join(body)}</svg>'
    )


def trigger_chart(c: TenantConsole) -> str:
    """User and device triggers per hour (bars) against the baseline band: from the expected
    count to `trigger_factor` times it (where the trigger-rate signal starts to count)."""
    hours = c.hours
    band_top = [
        c.trigger_factor * b
        for h in hours
        for b in (h.user_baseline, h.device_baseline)
        if b is not None
    ]
    peak = max([(h.user or 0) + (h.device or 0) for h in hours] + band_top + [1])
    frame = _Frame(c.window_start, c.now, peak)
    body = _axes(frame, "count", c.moments)
    width = max(1.0, (frame.x(c.window_start + 3600) - frame.x(c.window_start)) - 1)
    for h in hours:
        x = frame.x(h.start)
        if h.user is None and h.device is None:
            continue
        user, device = h.user or 0, h.device or 0
        y_user = frame.y(user)
        y_total = frame.y(user + device)
        cls = " partial" if h.partial else ""
        title = f"{clock(h.start)}: {user:,} user, {device:,} device changes"
        if h.user_baseline is not None:
            title += f"; baseline {h.user_baseline:,.0f} user"
        band = (
            f' data-band="{c.trigger_factor * (h.user_baseline + h.device_baseline):.1f}"'
            if h.user_baseline is not None and h.device_baseline is not None
            else ""
        )
        body.append(
            f'<rect class="user{cls}" data-hour="{h.start}" data-value="{user}" '
            f'data-total="{user + device}"{band} x="{x:.1f}" '
            f'y="{y_user:.1f}" width="{width:.1f}" height="{frame.y(0) - y_user:.1f}">'
            f"<title>{e(title)}</title></rect>"
        )
        if device:
            body.append(
                f'<rect class="device{cls}" data-value="{device}" x="{x:.1f}" y="{y_total:.1f}" '
                f'width="{width:.1f}" height="{y_user - y_total:.1f}"/>'
            )
    # The band: baseline (user + device) up to factor x baseline, per hour, as one polygon.
    lows: list[tuple[float, float]] = []
    highs: list[tuple[float, float]] = []
    for h in hours:
        if h.user_baseline is None or h.device_baseline is None:
            continue
        expected = h.user_baseline + h.device_baseline
        for t in (h.start, min(h.start + 3600, c.now)):
            lows.append((frame.x(t), frame.y(expected)))
            highs.append((frame.x(t), frame.y(expected * c.trigger_factor)))
    if lows:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in [*lows, *reversed(highs)])
        band_max = max(
            (h.user_baseline + h.device_baseline) * c.trigger_factor
            for h in hours
            if h.user_baseline is not None and h.device_baseline is not None
        )
        body.append(
            f'<polygon class="band" data-band-max="{band_max:.1f}" points="{points}">'
            f"<title>baseline to {c.trigger_factor:g}x baseline</title></polygon>"
        )
    peak_value = max([(h.user or 0) + (h.device or 0) for h in hours] + [0])
    return _svg(f"User and device changes per hour; peak {peak_value:,}", body, "triggers").replace(
        'data-chart="triggers"', f'data-chart="triggers" data-peak="{peak_value}"', 1
    )


def bars_chart(c: TenantConsole) -> str:
    values = [h.membership or 0 for h in c.hours]
    frame = _Frame(c.window_start, c.now, max([*values, 1]))
    body = _axes(frame, "count", c.moments)
    width = max(1.0, (frame.x(c.window_start + 3600) - frame.x(c.window_start)) - 1)
    for h in c.hours:
        if h.membership is None:
            continue
        y = frame.y(h.membership)
        title = f"{clock(h.start)}: {h.membership:,} dynamic membership changes"
        body.append(
            f'<rect class="membership{" partial" if h.partial else ""}" '
            f'data-value="{h.membership}" '
            f'x="{frame.x(h.start):.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{frame.y(0) - y:.1f}"><title>{e(title)}</title></rect>'
        )
    return _svg("Dynamic membership changes per hour", body, "membership")


def step_chart(c: TenantConsole) -> str:
    steps = c.paused_steps
    frame = _Frame(c.window_start, c.now, max([v for _, v in steps] + [1]))
    body = _axes(frame, "count", c.moments)
    if steps:
        points: list[str] = []
        for i, (t, v) in enumerate(steps):
            if i:
                points.append(f"{frame.x(t):.1f},{frame.y(steps[i - 1][1]):.1f}")
            points.append(f"{frame.x(t):.1f},{frame.y(v):.1f}")
        points.append(f"{frame.x(c.now):.1f},{frame.y(steps[-1][1]):.1f}")
        values = ",".join(str(v) for _, v in steps)
        body.append(
            f'<polyline class="paused" data-values="{e(values)}" points="{" ".join(points)}">'
            f"<title>paused groups: {steps[-1][1]:,} now</title></polyline>"
        )
    return _svg("Paused groups over time", body, "paused")


def lag_chart(c: TenantConsole) -> str:
    points = [(t, v) for t, v in c.lag if t >= c.window_start]
    measured = [(t, v) for t, v in c.probe if t >= c.window_start]
    frame = _Frame(
        c.window_start, c.now, max([v for _, v in points] + [v for _, v in measured] + [3600])
    )
    body = _axes(frame, "duration", c.moments)
    # No sample for a while (nothing processed, e.g. while paused) is a gap, not a slope.
    runs: list[list[tuple[float, float]]] = []
    for t, v in points:
        if not runs or t - runs[-1][-1][0] > LAG_GAP:
            runs.append([])
        runs[-1].append((t, v))
    for run in runs:
        line = " ".join(f"{frame.x(t):.1f},{frame.y(v):.1f}" for t, v in run)
        body.append(
            f'<polyline class="lag" points="{line}"><title>median estimated lag: '
            f"{e(_duration(run[-1][1]))} at {e(clock(run[-1][0]))}</title></polyline>"
        )
    # The canary probe's measurements, beside the estimate: one dot per detected round.
    body.extend(
        f'<circle class="probe" cx="{frame.x(t):.1f}" cy="{frame.y(v):.1f}" r="3">'
        f"<title>measured by the canary probe: {e(_duration(v))} at {e(clock(t))}</title>"
        "</circle>"
        for t, v in measured
    )
    return _svg(
        "Estimated processing lag (median) and the canary probe's measurements", body, "lag"
    )


_STATUS_TEXT = {
    ConditionStatus.MET: ("ok", "met"),
    ConditionStatus.BLOCKING: ("bad", "blocking"),
    ConditionStatus.UNKNOWN: ("warn", "unknown"),
    ConditionStatus.NOT_APPLICABLE: ("muted", "not applicable"),
}


def verdict(c: TenantConsole) -> str:
    a = c.assessment
    if a is None:
        return (
            f'<p class="muted verdict" data-verdict="pending">No assessment yet: {e(c.detail)}</p>'
        )
    active = [s for s in a.pause_signals if s.active]
    if active:
        items = "".join(
            f'<li data-reason="{e(s.reason.value)}"><strong>{e(s.reason.value)}</strong>: '
            f"{e(_number(s.observed, s.unit))} (threshold {e(_number(s.threshold, s.unit))})"
            + (f", since {e(clock(s.since))}" if s.since is not None else "")
            + f' <span class="muted">{e(s.detail)}</span></li>'
            for s in active
        )
        pause = (
            f'<p class="verdict bad" data-verdict="warranted">Pause warranted</p><ul>{items}</ul>'
        )
    else:
        pause = '<p class="verdict ok" data-verdict="not-warranted">No pause warranted</p>'
    r = a.readiness
    cls = {
        ReadinessState.READY: "ok",
        ReadinessState.NOT_READY: "bad",
        ReadinessState.CANNOT_TELL: "warn",
        ReadinessState.NOT_PAUSED: "muted",
    }[r.state]
    text = {
        ReadinessState.READY: "Ready to resume",
        ReadinessState.NOT_READY: "Not ready to resume",
        ReadinessState.CANNOT_TELL: "Cannot tell whether to resume",
        ReadinessState.NOT_PAUSED: "Nothing to resume",
    }[r.state]
    rows = "".join(
        f'<tr data-condition="{e(cond.condition.value)}" data-status="{e(cond.status.value)}">'
        f'<th scope="row">{e(cond.condition.value)}</th>'
        f'<td class="{_STATUS_TEXT[cond.status][0]}">{e(_STATUS_TEXT[cond.status][1])}</td>'
        f"<td>{e(clock(cond.since)) if cond.since is not None else ''}</td>"
        f"<td>{e(cond.detail)}</td></tr>"
        for cond in r.conditions
    )
    readiness = (
        f'<p class="verdict {cls}" data-readiness="{e(r.state.value)}">{e(text)}</p>'
        f'<p class="muted">{e(r.detail)}</p>'
        + (
            '<table class="conditions"><thead><tr><th scope="col">Condition</th>'
            '<th scope="col">Status</th><th scope="col">Since</th><th scope="col">Detail</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>"
            if rows
            else ""
        )
    )
    ep = a.episode
    episode = (
        '<p class="muted">No pause episode.</p>'
        if ep is None
        else f"<p>Pause episode since {e(clock(ep.started_at))} ({e(ep.source.value)}"
        + (f", by {e(ep.started_by)}" if ep.started_by else "")
        + (f": {e(ep.reason)}" if ep.reason else "")
        + f"): {len(ep.group_ids):,} groups paused in it, {len(ep.paused_before):,} paused "
        f"before it, {len(ep.undetermined):,} undetermined.</p>"
    )
    p = a.plan
    plan = ""
    if p.batches:
        first = (
            f"batch 1: {p.critical_groups:,} critical groups first"
            if p.critical_groups
            else f"batch 1: up to {p.batch_size:,} groups"
        )
        plan = (
            f"<p>Resume plan: {p.batches:,} batches ({e(first)}; then {p.other_groups:,} "
            f"other groups, {p.batch_size:,} at a time, every "
            f"{e(_duration(p.batch_interval_seconds))}; about "
            f"{e(_duration(p.estimated_duration_seconds))} in all).</p>"
        )
    if c.next_batches:
        shown = 6
        items = "".join(
            f'<li data-batch="{b.index}">batch {b.index}'
            + (" (critical)" if b.critical else "")
            + f": {b.size:,} groups: {e(', '.join(b.names[:shown]))}"
            + (f" and {b.size - shown:,} more" if b.size > shown else "")
            + "</li>"
            for b in c.next_batches
        )
        plan += f'<p>Next:</p><ul class="batches">{items}</ul>'
    return pause + queue_line(a) + readiness + mid_resume_line(a) + episode + plan


def queue_line(a: TenantAssessment) -> str:
    """The work still waiting and when it drains at the recent rate (#23)."""
    q = a.queue
    if q is None:
        return ""
    if not q.waiting_triggers:
        return '<p class="muted" data-queue="empty">Processing queue: nothing waiting.</p>'
    oldest = (
        f", the oldest {e(_duration(q.oldest_waiting_seconds))} old"
        if q.oldest_waiting_seconds is not None
        else ""
    )
    drain = (
        f"drains in about {e(_duration(q.drain_seconds))} at {q.rate_per_hour or 0:,.0f} an hour"
        if q.drain_seconds is not None
        else "not draining: no change processed lately"
    )
    return (
        f'<p data-queue="waiting">Processing queue: {q.waiting_triggers:,} changes waiting'
        f"{oldest}; {drain}.</p>"
    )


def mid_resume_line(a: TenantAssessment) -> str:
    """Triggers climb again mid-resume: the command that pauses exactly the groups back On."""
    storm = a.mid_resume
    if storm is None:
        return ""
    return (
        f'<p class="verdict bad" data-mid-resume="{len(storm.resumed_group_ids)}">Triggers climb '
        f"again while {len(storm.resumed_group_ids):,} of the episode's groups are back On "
        f"({e(', '.join(storm.why))}). Pause exactly those again: "
        f"<code>{e(storm.command(a.tenant))}</code></p>"
    )


def paused_table(c: TenantConsole) -> str:
    if not c.paused:
        return '<p class="muted">No group is paused.</p>'
    rows = "".join(
        f'<tr data-critical="{str(row.critical).lower()}"><td>{e(row.name)}</td>'
        f"<td>{'critical' if row.critical else ''}</td><td>{e(row.kind)}</td>"
        f"<td>{e(clock(row.since)) if row.since is not None else 'unknown'}</td>"
        f"<td><code>{e(row.id)}</code></td></tr>"
        for row in c.paused
    )
    more = c.paused_total - len(c.paused)
    return (
        '<table class="paused"><thead><tr><th scope="col">Name</th><th scope="col"></th>'
        '<th scope="col">Kind</th><th scope="col">Paused since</th><th scope="col">Id</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        + (f'<p class="muted">and {more:,} more.</p>' if more > 0 else "")
    )


def render_tenant(c: TenantConsole) -> str:
    start = clock(c.window_start)
    name = e(c.tenant)
    return f"""<section class="tenant" data-tenant="{name}" aria-labelledby="t-{name}">
<h2 id="t-{e(c.tenant)}">Tenant {e(c.tenant)} <span class="muted">at {e(clock(c.now))}</span></h2>
{verdict(c)}
<h3>The last 48 hours <span class="muted">(from {e(start)}, the tenant's clock)</span></h3>
<div class="charts">
<figure><figcaption>User (dark) and device (light) changes per hour, against the baseline band
(baseline to {c.trigger_factor:g}x)</figcaption>{trigger_chart(c)}</figure>
<figure><figcaption>Dynamic membership changes per hour</figcaption>{bars_chart(c)}</figure>
<figure><figcaption>Paused groups</figcaption>{step_chart(c)}</figure>
<figure><figcaption>Estimated processing lag (median, as assessed since the exporter
started){" and the canary probe's measured delays (dots)" if c.probe else ""}</figcaption>
{lag_chart(c)}</figure>
</div>
<p class="muted legend"><span class="key pause"></span> pause <span class="key resume"></span>
resume</p>
<h3>Paused groups ({c.paused_total:,}, critical first)</h3>
{paused_table(c)}
</section>"""


CONSOLE_STYLE = """
.verdict { font-size: 1.25rem; font-weight: 600; margin: .6rem 0 .2rem; }
.warn { color: #8a5a00; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: .8rem; }
figure { margin: 0; }
figcaption { font-size: .9rem; color: #555; }
svg.chart { width: 100%; height: auto; background: #fafafa; border: 1px solid #ddd; }
svg .grid { stroke: #e4e4e4; stroke-width: 1; }
svg .tick { font-size: 10px; fill: #666; font-family: sans-serif; }
svg rect.user { fill: #2b5d9b; }
svg rect.device { fill: #8fb3e0; }
svg rect.membership { fill: #6b4c9a; }
svg rect.partial { opacity: .55; }
svg .band { fill: #3a9d5d; fill-opacity: .18; stroke: #3a9d5d; stroke-opacity: .5; }
svg .paused { fill: none; stroke: #b3261e; stroke-width: 2; }
svg .lag { fill: none; stroke: #8a5a00; stroke-width: 2; }
svg .probe { fill: #1b4f8a; stroke: #fff; stroke-width: 1; }
svg .moment { stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .moment.pause, .key.pause { stroke: #b3261e; background: #b3261e; }
svg .moment.resume, .key.resume { stroke: #1b7f3b; background: #1b7f3b; }
.key { display: inline-block; width: 1.2em; height: .25em; vertical-align: middle; }
table.paused td, table.conditions td { font-size: .9rem; }
"""


def render_console(tenants: Sequence[TenantConsole]) -> str:
    """The console's sections, for the landing page's <main>."""
    return "\n".join(render_tenant(c) for c in tenants)
