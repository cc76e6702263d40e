"""The live part of the simulated directory audit log: every event written since the simulator
started, kept pre-serialized and in compact columns.

Columns (parallel arrays, sorted by event time): time and visibility time in integer
microseconds, activity / app / series codes, the group or administrative unit the event is
about. Payloads are the finished JSON bytes. A page is a bisect on time plus a scan over the
small integer columns, and a `b",".join` of payloads.

Visibility: an event written at time t is visible to clients from `visible_us` on (t plus a
realistic delay, and much later for injected late events); ground-truth counts can be asked
for as of any instant.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from exporter.domain import events
from exporter.domain.events import Series
from exporter.simulator.timefmt import MICROS

OTHER_ACTIVITIES: tuple[tuple[str, str, str], ...] = (
    # (activity, category, target type): Core Directory activities of Microsoft's "Microsoft
    # Entra audit log activity reference" that concern no group, user or device
    ("Update application", "ApplicationManagement", "Application"),
    ("Update service principal", "ApplicationManagement", "ServicePrincipal"),
    ("Add app role assignment to service principal", "ApplicationManagement", "ServicePrincipal"),
    ("Update policy", "Policy", "Policy"),
)
"""Directory audit activity the exporter does not ingest (`load.other_audit_events_per_hour`,
0 by default): what the query modes without the activity filter read too."""
ACTIVITIES: tuple[str, ...] = (
    events.ADD_MEMBER,
    events.REMOVE_MEMBER,
    events.UPDATE_GROUP,
    events.UPDATE_ADMINISTRATIVE_UNIT,
    events.ADD_AU_MEMBER,
    events.REMOVE_AU_MEMBER,
    *events.TRIGGER_ACTIVITIES,
    # Not ingested by the exporter (its filter leaves them out): Microsoft 365 group expiration.
    events.AUTORENEW_GROUP,
    events.DELETE_GROUP,
    *(activity for activity, _, _ in OTHER_ACTIVITIES),
)
ACTIVITY_CODE: dict[str, int] = {name: code for code, name in enumerate(ACTIVITIES)}
SERIES: tuple[Series, ...] = tuple(Series)
SERIES_CODE: dict[Series, int] = {series: code for code, series in enumerate(SERIES)}
NO_APP = 0


class AppRegistry:
    """Small integer codes for `initiatedBy.app.displayName` (0: initiated by a user)."""

    def __init__(self) -> None:
        self.names: list[str | None] = [None]
        self._codes: dict[str, int] = {}

    def code(self, display_name: str | None) -> int:
        if display_name is None:
            return NO_APP
        code = self._codes.get(display_name)
        if code is None:
            code = len(self.names)
            self.names.append(display_name)
            self._codes[display_name] = code
        return code

    def codes_matching(self, predicate: Callable[[str], bool]) -> frozenset[int]:
        return frozenset(code for name, code in self._codes.items() if predicate(name))


@dataclass(frozen=True, slots=True)
class EventMatcher:
    """A compiled `$filter`: time bounds (inclusive, microseconds), allowed activity and app
    codes (None: any), and a residual predicate over the decoded event for everything the
    columns cannot answer."""

    lo_us: int | None = None
    hi_us: int | None = None
    activities: frozenset[int] | None = None
    apps: frozenset[int] | None = None
    residual: Callable[[int, int, int, Callable[[], dict[str, object]]], bool] | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """Up to limit+1 matching events from one source, in page order."""

    payloads: list[bytes]
    cursor_of: Callable[[int], str]


class LiveLog:
    def __init__(self) -> None:
        self.times = array("q")
        self.visible = array("q")
        self.activity = array("B")
        self.app = array("H")
        self.series = array("B")
        self.container = array("i")
        self.payloads: list[bytes] = []

    def __len__(self) -> int:
        return len(self.payloads)

    def append(
        self,
        *,
        time_us: int,
        visible_us: int,
        activity: int,
        app: int,
        series: int,
        container: int,
        payload: bytes,
    ) -> None:
        if self.times and time_us < self.times[-1]:
            # Not expected (the engine writes in time order); kept correct rather than fast.
            position = bisect_right(self.times, time_us)
            insort(self.times, time_us)  # keeps the column sorted
            for column, value in (
                (self.visible, visible_us),
                (self.activity, activity),
                (self.app, app),
                (self.series, series),
                (self.container, container),
            ):
                column.insert(position, value)
            self.payloads.insert(position, payload)
            return
        self.times.append(time_us)
        self.visible.append(visible_us)
        self.activity.append(activity)
        self.app.append(app)
        self.series.append(series)
        self.container.append(container)
        self.payloads.append(payload)

    # -- serving ------------------------------------------------------------------------------

    def scan(
        self,
        matcher: EventMatcher,
        *,
        after: tuple[int, int] | None,
        descending: bool,
        visible_by_us: int,
        limit: int,
    ) -> Scan:
        """Matching events after the cursor `(time, n)`: ascending, all events before `time`
        and the first n at `time` were served; descending, all after `time` and the last n."""
        times = self.times
        start = 0 if matcher.lo_us is None else bisect_left(times, matcher.lo_us)
        end = len(times) if matcher.hi_us is None else bisect_right(times, matcher.hi_us)
        if after is not None:
            cursor_time, served = after
            if descending:
                end = min(end, bisect_right(times, cursor_time) - served)
            else:
                start = max(start, bisect_left(times, cursor_time) + served)
        indices = range(end - 1, start - 1, -1) if descending else range(start, end)
        chosen = self._select(indices, matcher, visible_by_us, limit)
        payloads = self.payloads

        def cursor_of(position: int) -> str:
            index = chosen[position]
            moment = times[index]
            if descending:
                return f"L.{moment}.{bisect_right(times, moment) - index}"
            return f"L.{moment}.{index - bisect_left(times, moment) + 1}"

        return Scan([payloads[i] for i in chosen], cursor_of)

    def _select(
        self, indices: range, matcher: EventMatcher, visible_by_us: int, limit: int
    ) -> list[int]:
        visible = self.visible
        chosen: list[int] = []
        wanted = limit + 1
        activities = matcher.activities
        apps = matcher.apps
        residual = matcher.residual
        if activities is None and apps is None and residual is None:
            for i in indices:
                if visible[i] <= visible_by_us:
                    chosen.append(i)
                    if len(chosen) == wanted:
                        break
            return chosen
        activity = self.activity
        app = self.app
        times = self.times
        payloads = self.payloads
        for i in indices:
            if visible[i] > visible_by_us:
                continue
            if activities is not None and activity[i] not in activities:
                continue
            if apps is not None and app[i] not in apps:
                continue
            if residual is not None and not residual(
                times[i], activity[i], app[i], decoder(payloads[i])
            ):
                continue
            chosen.append(i)
            if len(chosen) == wanted:
                break
        return chosen

    # -- ground truth -------------------------------------------------------------------------

    def rows(
        self, since_us: int | None, before_us: int | None, visible_by_us: int | None
    ) -> Iterator[tuple[int, int, int, int, int]]:
        """(time, activity, series, container, app) of events with since <= time < before,
        visible by `visible_by_us` if given."""
        times = self.times
        start = 0 if since_us is None else bisect_left(times, since_us)
        end = len(times) if before_us is None else bisect_left(times, before_us)
        visible, activity, series, container, app = (
            self.visible,
            self.activity,
            self.series,
            self.container,
            self.app,
        )
        for i in range(start, end):
            if visible_by_us is not None and visible[i] > visible_by_us:
                continue
            yield times[i], activity[i], series[i], container[i], app[i]


def decoder(payload: bytes) -> Callable[[], dict[str, object]]:
    def decode() -> dict[str, object]:
        document: dict[str, object] = orjson.loads(payload)
        return document

    return decode


def hour_start_us(time_us: int) -> int:
    return time_us - time_us % (3600 * MICROS)
