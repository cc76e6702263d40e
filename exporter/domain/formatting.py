"""Times and durations for people and for JSON: the domain's only edge to datetime."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(t: float | None) -> str | None:
    """Epoch seconds -> `2026-11-21T10:02:00Z` (UTC, whole seconds unless fractional)."""
    if t is None:
        return None
    text = datetime.fromtimestamp(t, UTC).isoformat()
    return text.replace("+00:00", "Z")


def human_duration(seconds: float) -> str:
    """3725 -> `1h02m`, 90 -> `1m30s`, 2 days -> `2d00h`."""
    s = round(abs(seconds))
    sign = "-" if seconds < 0 else ""
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{s:02d}s"
    return f"{sign}{s}s"


def short_time(t: float) -> str:
    """`2026-11-21 10:02Z`, for sentences."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%MZ")
