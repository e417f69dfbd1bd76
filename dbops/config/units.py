"""Durations and sizes as plans spell them (`500ms`, `30s`, `5m`, `1h`, `30d`; `512kB`, `2GB`)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)$")
_SIZE = re.compile(r"^(\d+)\s*(B|kB|MB|GB|TB)$")

_SECONDS = {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

# No plan duration needs more than a century; past it, arithmetic on the value would overflow.
MAX_DURATION = timedelta(days=36_500)


def is_duration(text: object) -> bool:
    return isinstance(text, str) and _DURATION.match(text.strip()) is not None


def is_size(text: object) -> bool:
    return isinstance(text, str) and _SIZE.match(text.strip()) is not None


def duration_seconds(text: str) -> float:
    """`30s` -> 30.0, unbounded (for comparing against limits); ValueError naming the forms."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 30s, 5m, 1h, 30d)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def parse_duration(text: str) -> timedelta:
    """`30s` -> timedelta(seconds=30); raises ValueError naming the accepted forms or the limit."""
    seconds = duration_seconds(text)
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text.strip()!r} is longer than {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def parse_size(text: str) -> int:
    """`2GB` -> bytes; raises ValueError naming the accepted forms."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 512kB, 64MB, 2GB)")
    return int(match.group(1)) * _BYTES[match.group(2)]


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: timedelta(minutes=5) -> `5m`."""
    ms = round(value.total_seconds() * 1000)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"
