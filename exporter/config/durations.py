"""Durations as configured: Prometheus-style strings (`90s`, `30m`, `24h`, `7d`, `1h30m`) or
plain seconds. Shared by the exporter's configuration and the web config file."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """`90s`, `30m`, `1h30m`, `7d` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 24h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError("expected a duration such as 30s, 15m, 24h or 7d") from None
    else:
        raise ValueError("expected a duration such as 30s, 15m, 24h or 7d")
    # float() takes "nan", "inf" and "1e400": none is a time anything can wait.
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds (not NaN or infinite)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written in the file as `30s`, `15m`, `24h`, `7d`."""
