"""Cron schedules as plans write them, read by cronsim (a maintained parser, not a hand-written one).

Five fields (minute hour day-of-month month day-of-week) with everything cronsim reads (`*`,
ranges, steps, lists, names, L, W, #), or @hourly, @daily, @midnight, @weekly, @monthly, @yearly,
@annually. Schedules are read in UTC. Pure: no I/O, `moment`s are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError

_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_LOOKBACK = timedelta(days=4 * 366)  # any schedule that fires at least once every 4 years
_TYPICAL_FIRINGS = 8
_MINUTE = timedelta(minutes=1)
HINT = "five fields: minute hour day-of-month month day-of-week, or @hourly/@daily/@weekly/@monthly"


@dataclass(frozen=True)
class Schedule:
    """A cron schedule that cronsim has read."""

    text: str
    expression: str  # the macro spelled out

    def previous(self, moment: datetime) -> datetime | None:
        """The latest firing at or before `moment` (to the minute), or None within 4 years."""
        start = moment.replace(second=0, microsecond=0) + _MINUTE
        try:
            found: datetime = next(CronSim(self.expression, start, reverse=True))
        except StopIteration:
            return None
        return found if moment - found <= _LOOKBACK else None

    def interval_at(self, firing: datetime) -> timedelta:
        """The gap between `firing` and the firing before it."""
        before = self.previous(firing - _MINUTE)
        return firing - before if before is not None else _LOOKBACK

    def typical(self, firing: datetime) -> timedelta:
        """The shortest gap among the last few firings up to `firing` (a weekday schedule wants
        one every day, though Friday to Monday is three)."""
        gaps = []
        for _ in range(_TYPICAL_FIRINGS):
            gap = self.interval_at(firing)
            gaps.append(gap)
            firing -= gap
        return min(gaps)


def parse(text: str) -> Schedule:
    """Read a schedule; ValueError saying what is wrong with it."""
    expression = _MACROS.get(text.strip().lower(), text.strip())
    if len(expression.split()) != 5:
        raise ValueError(f"not a cron schedule ({HINT})")
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"not a cron schedule: {str(exc).lower()} ({HINT})") from None
    return Schedule(text, expression)


def problem(text: object) -> str | None:
    """What is wrong with a schedule a plan wrote, or None (the schema's `cron` format)."""
    if not isinstance(text, str):
        return None
    try:
        parse(text)
    except ValueError as exc:
        return str(exc)
    return None
