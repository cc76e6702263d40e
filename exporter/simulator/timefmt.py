"""Graph's timestamp formats, at the speed the audit-log pages need.

The simulator keeps event times as integer microseconds since the epoch (exact, and 100-ns
OData precision would not fit in a float), and converts to float seconds at its edges.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MICROS = 1_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_second_prefix_cache: dict[int, str] = {}

_ODATA_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?)?$"
)


def us_from_seconds(seconds: float) -> int:
    return round(seconds * MICROS)


def seconds_from_us(us: int) -> float:
    return us / MICROS


def _second_prefix(second: int) -> str:
    prefix = _second_prefix_cache.get(second)
    if prefix is None:
        if len(_second_prefix_cache) > 65_536:
            _second_prefix_cache.clear()
        prefix = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S")
        _second_prefix_cache[second] = prefix
    return prefix


_day_prefix_cache: dict[int, str] = {}


def graph_timestamp(us: int) -> str:
    """`2026-01-05T08:00:00.1234560Z`: Graph's activityDateTime, seven fractional digits."""
    second, micro = divmod(us, MICROS)
    day, in_day = divmod(second, 86400)
    prefix = _day_prefix_cache.get(day)
    if prefix is None:
        prefix = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        _day_prefix_cache[day] = prefix
    hour, rest = divmod(in_day, 3600)
    minute, sec = divmod(rest, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{sec:02d}.{micro:06d}0Z"


def audit_timestamp(us: int, *, offset_form: bool = False) -> str:
    """An audit event's activityDateTime in each form real events come in (#13): Graph's seven
    fractional digits and `Z`, no fractional part when there is none, and `+00:00` (as Event
    Hub and Log Analytics exports write it) when `offset_form`. Every form is exact."""
    text = graph_timestamp(us)
    if us % MICROS == 0:
        text = text[:19] + "Z"
    return text[:-1] + "+00:00" if offset_form else text


def graph_timestamp_seconds(us: int) -> str:
    """`2026-01-05T08:00:00Z`: createdDateTime and friends."""
    return _second_prefix(us // MICROS) + "Z"


def inner_error_date(seconds: float) -> str:
    """`2021-11-29T20:44:59`: the `innerError.date` of Graph's error bodies (no zone, no
    fraction)."""
    return _second_prefix(int(seconds))


def parse_odata_datetime(text: str) -> int | None:
    """An OData DateTimeOffset literal (`2024-01-15T10:00:00Z`, `...:00.1234567+01:00`, or a
    bare date) -> epoch microseconds; None if it is not one."""
    match = _ODATA_DATETIME.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    us = (moment - _EPOCH) // timedelta(microseconds=1)
    if fraction:
        # 100-ns digits beyond the microsecond are dropped: event times are whole microseconds.
        us += int((fraction + "000000")[:6])
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset_minutes = int(zone[1:3]) * 60 + int(zone[4:6])
        us -= sign * offset_minutes * 60 * MICROS
    return us


def parse_iso_seconds(text: str) -> float:
    """An ISO-8601 UTC timestamp as used in scenario files and control requests -> epoch s.
    Raises ValueError with the offending text."""
    us = parse_odata_datetime(text.strip())
    if us is None:
        raise ValueError(f"not an ISO-8601 time: {text!r} (expected e.g. 2026-01-05T08:00:00Z)")
    return seconds_from_us(us)


def dotnet_general_date(seconds: float) -> str:
    """`2/5/2023 12:00:00 AM`: how the reporting API's retention error prints its limit."""
    moment = _EPOCH + timedelta(seconds=int(seconds))
    hour12 = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    return (
        f"{moment.month}/{moment.day}/{moment.year} "
        f"{hour12}:{moment.minute:02d}:{moment.second:02d} {meridiem}"
    )
