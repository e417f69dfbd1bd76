"""Cron schedules, read well enough to say when a backup is overdue. Pure: no I/O, `now` is given.

Supported: the five standard fields (minute, hour, day of month, month, day of week) with `*`,
numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, month and weekday names (JAN, MON;
0 and 7 are Sunday), and @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually. Day of
month and day of week combine as cron combines them: when both are restricted (neither starts with
`*`), a day matching either fires. Not supported (a BackupError naming the schedule): L, W, #, ?,
@reboot, seconds or year fields. Schedules are read in UTC.

The approximation, stated: a backup is overdue when the newest one (of any reason, its
verification not failed) started before the last scheduled run that should have finished by now.
Each run gets a grace to finish, and a backup started up to that grace before a run counts for it:
twice the longest recent backup's duration, at least 15 minutes and at most half the interval.
The interval named in the message is the schedule's shortest recent gap (1 day for `0 3 * * 1-5`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dbops.backup.errors import BackupError
from dbops.backup.manifest import Manifest
from dbops.config.model import BackupPolicy

_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
           "@annually": "0 0 1 1 *"}
_MONTHS = {n: i for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_ITEM = re.compile(r"^(\*|\w+(?:-\w+)?)(?:/(\d+))?$")
_LOOKBACK_DAYS = 4 * 366  # far enough for any schedule that fires at least once every 4 years
_MIN_GRACE = timedelta(minutes=15)
_RECENT = 5
_TYPICAL_FIRINGS = 8


@dataclass(frozen=True)
class Schedule:
    """A parsed cron schedule."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def previous(self, moment: datetime) -> datetime | None:
        """The latest firing at or before `moment` (to the minute), or None within 4 years."""
        times = sorted(h * 60 + m for h in self.hours for m in self.minutes)
        day = moment.date()
        limit = moment.hour * 60 + moment.minute
        for _ in range(_LOOKBACK_DAYS):
            if self.fires_on(day):
                earlier = [t for t in times if t <= limit]
                if earlier:
                    at = datetime.combine(day, time(earlier[-1] // 60, earlier[-1] % 60))
                    return at.replace(tzinfo=moment.tzinfo)
            day -= timedelta(days=1)
            limit = 24 * 60
        return None

    def typical(self, firing: datetime) -> timedelta:
        """The shortest gap among the last few firings up to `firing` (a weekday schedule wants
        one every day, though Friday to Monday is three)."""
        gaps = []
        for _ in range(_TYPICAL_FIRINGS):
            gap = self.interval_at(firing)
            gaps.append(gap)
            firing -= gap
        return min(gaps)

    def interval_at(self, firing: datetime) -> timedelta:
        """The gap between `firing` and the firing before it."""
        before = self.previous(firing - timedelta(minutes=1))
        return firing - before if before is not None else timedelta(days=_LOOKBACK_DAYS)


def parse(text: str) -> Schedule:
    """Parse a cron schedule; BackupError naming the schedule and the field it cannot read."""
    spelled = _MACROS.get(text.strip().lower(), text)
    fields = spelled.split()
    if len(fields) != 5:
        raise BackupError(f"backup.schedule {text!r}: expected five cron fields "
                          "(minute hour day-of-month month day-of-week) or @daily/@hourly/...")
    minute, hour, day, month, weekday = fields
    weekdays = _field(text, "day of week", weekday, 0, 7, _DAYS)
    return Schedule(
        text=text,
        minutes=_field(text, "minute", minute, 0, 59, {}),
        hours=_field(text, "hour", hour, 0, 23, {}),
        days=_field(text, "day of month", day, 1, 31, {}),
        months=_field(text, "month", month, 1, 12, _MONTHS),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=not day.startswith("*"),
        weekdays_restricted=not weekday.startswith("*"),
    )


def _field(text: str, what: str, spec: str, low: int, high: int,
           names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        value = names.get(token.lower()) if not token.isdigit() else int(token)
        if value is None or not low <= value <= high:
            raise BackupError(f"backup.schedule {text!r}: {what} {token!r} is not supported "
                              f"(use {low}-{high}{', names' if names else ''}, *, a-b, */n, lists)")
        return value

    for item in spec.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise BackupError(f"backup.schedule {text!r}: {what} {item!r} is not supported "
                              "(use numbers, *, a-b, */n, a-b/n and lists; not L, W, # or ?)")
        span, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise BackupError(f"backup.schedule {text!r}: {what} step must be at least 1")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (number(part) for part in span.split("-"))
        else:
            first = number(span)
            last = high if match.group(2) else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def describe(gap: timedelta) -> str:
    """A human interval: `1 day`, `6 hours`, `1 day 12 hours`, `30 minutes`."""
    minutes = round(gap.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}"
             for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")) if n]
    return " ".join(parts[:2]) or "0 minutes"


def overdue(policy: BackupPolicy | None, manifests: Sequence[Manifest],
            now: datetime) -> str | None:
    """Why a backup is overdue under the policy's schedule, or None (no schedule, or on time).

    e.g. "the newest backup is 2 days 1 hour old; schedule '0 3 * * *' wants one every 1 day
    (the run due 2025-06-12 03:00 UTC is missing)". `now` must be timezone-aware; `manifests`
    are the catalog's complete backups.
    """
    if policy is None or policy.schedule is None:
        return None
    schedule = parse(policy.schedule)
    usable = [m for m in manifests if not m.failed]
    last = schedule.previous(now)
    if last is None:
        return None
    grace = _grace(usable, schedule.interval_at(last))
    due = schedule.previous(now - grace)
    if due is None:
        return None
    newest = max(usable, key=lambda m: m.started_at, default=None)
    if newest is not None and newest.started_at >= due - grace:
        return None
    wants = f"schedule '{policy.schedule}' wants one every {describe(schedule.typical(due))}"
    if newest is None:
        return f"there is no backup; {wants}"
    return (f"the newest backup is {describe(now - newest.started_at)} old; {wants} "
            f"(the run due {due:%Y-%m-%d %H:%M} UTC is missing)")


def _grace(manifests: Sequence[Manifest], interval: timedelta) -> timedelta:
    recent = sorted(manifests, key=lambda m: m.started_at)[-_RECENT:]
    longest = max((timedelta(seconds=m.duration_s) for m in recent), default=timedelta())
    return min(max(_MIN_GRACE, 2 * longest), interval / 2)
