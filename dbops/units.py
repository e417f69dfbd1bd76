"""Durations and sizes: one table of time units and one of byte units, the grammars that read
them (a plan's `30s`, `5m`, `2GB`; PostgreSQL's `min`, `us`, `8kB` pages), and the one family
of formatters for display (`format_duration`, `format_age`, `format_size`, `format_moment`).

Each grammar is an explicit choice of spellings: a plan writes minutes as `m` (or `min`) and
has no microseconds; PostgreSQL writes `min` (its `m` is not a unit) and has `us`. Both read
sizes in 1024-based units, as PostgreSQL does. Part of the value model: imports nothing of dbops.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# One of each unit in bytes and in milliseconds (PostgreSQL's base for time settings).
BYTES: dict[str, int] = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
MILLISECONDS: dict[str, float] = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
}

# The spellings each grammar accepts, each mapped to its unit in the tables above.
PLAN_TIME_UNITS: dict[str, str] = {"ms": "ms", "s": "s", "m": "min", "min": "min", "h": "h",
                                   "d": "d"}
POSTGRES_TIME_UNITS: dict[str, str] = {u: u for u in ("us", "ms", "s", "min", "h", "d")}
SIZE_UNITS: dict[str, str] = {u: u for u in BYTES}

_PLAN_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)$")
_PLAN_SIZE = re.compile(r"^(\d+)\s*(B|kB|MB|GB|TB)$")

# No plan duration needs more than a century; past it, arithmetic on the value would overflow.
MAX_DURATION = timedelta(days=36_500)


def is_duration(text: object) -> bool:
    return isinstance(text, str) and _PLAN_DURATION.match(text.strip()) is not None


def is_size(text: object) -> bool:
    return isinstance(text, str) and _PLAN_SIZE.match(text.strip()) is not None


def duration_seconds(text: str) -> float:
    """A plan duration, `30s` -> 30.0, unbounded (for comparing against limits); ValueError
    naming the forms."""
    match = _PLAN_DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 30s, 5m, 1h, 30d)")
    return float(match.group(1)) * MILLISECONDS[PLAN_TIME_UNITS[match.group(2)]] / 1000


def parse_duration(text: str) -> timedelta:
    """A plan duration, `30s` -> timedelta(seconds=30); raises ValueError naming the accepted
    forms or the limit."""
    seconds = duration_seconds(text)
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text.strip()!r} is longer than {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def parse_size(text: str) -> int:
    """A plan size, `2GB` -> bytes; raises ValueError naming the accepted forms."""
    match = _PLAN_SIZE.match(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 512kB, 64MB, 2GB)")
    return int(match.group(1)) * BYTES[SIZE_UNITS[match.group(2)]]


def unit_family(unit: str) -> tuple[dict[str, float], float] | None:
    """A PostgreSQL unit (`8kB`, `ms`, `min`) as (its family: spelling -> size in the family's
    base, bytes or milliseconds; the size of one such unit), None for no or an unknown unit."""
    match = re.fullmatch(r"(\d*)([a-zA-Z]+)", unit)
    if not match:
        return None
    count, base = int(match.group(1) or 1), match.group(2)
    if base in SIZE_UNITS:
        family = {s: float(BYTES[u]) for s, u in SIZE_UNITS.items()}
    elif base in POSTGRES_TIME_UNITS:
        family = {s: MILLISECONDS[u] for s, u in POSTGRES_TIME_UNITS.items()}
    else:
        return None
    return family, count * family[base]


def _trim(number: float, digits: int) -> str:
    return f"{number:.{digits}f}".removesuffix(".0")


def format_duration(value: float | timedelta, *, whole_seconds: bool = False) -> str:
    """A duration (seconds, or a timedelta) for people, in the plan's units and exact when the
    value is a whole number of one: `250ms`, `7.5s`, `30s`, `5m`, `12m 3s`, `2h 5m`, `30d`.
    `whole_seconds`: the fraction of a second dropped first (`7s`, `0s`), for measured ages."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if whole_seconds:
        seconds = float(int(seconds))
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{_trim(ms, 1 if ms < 10 else 0)}ms"
    if seconds < 60:
        return f"{_trim(seconds, 1)}s"
    whole = round(seconds)
    if whole % 86_400 == 0:
        return f"{whole // 86_400}d"
    if whole < 3600:
        big, small = divmod(whole, 60)
        unit, small_unit = "m", "s"
    elif whole < 48 * 3600:
        big, rest = divmod(whole, 3600)
        unit, small, small_unit = "h", rest // 60, "m"
    else:
        big, rest = divmod(whole, 86_400)
        unit, small, small_unit = "d", rest // 3600, "h"
    return f"{big}{unit} {small}{small_unit}" if small else f"{big}{unit}"


_AGE_UNITS = (("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))


def format_age(value: float | timedelta) -> str:
    """How old something is (or how far off), in words and one unit, the largest of which
    there are at least two (rounded): `40 days`, `36 hours`, `20 minutes`, `5 seconds`."""
    seconds = max(0.0, value.total_seconds() if isinstance(value, timedelta) else float(value))
    for unit, size in _AGE_UNITS:
        if seconds >= 2 * size or unit == "second":
            count = int(seconds / size + 0.5)
            return f"{count} {unit}" + ("" if count == 1 else "s")
    raise AssertionError("unreachable")


def format_size(count: int) -> str:
    """Bytes for people, 1024-based: `512 B`, `2.0 kB`, `173 MB`, `5.0 GB` (one decimal
    below ten of a unit)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if unit == "B" and value < 1024:
            return f"{count} B"
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_moment(value: datetime) -> str:
    """A moment for people, to the second, in UTC: `2026-12-01 10:42:00 UTC`."""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
