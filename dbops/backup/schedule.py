"""When a backup is overdue under the policy's cron schedule (read by `dbops.config.cron`). Pure:
no I/O, `now` is given.

The approximation, stated: a backup is overdue when the newest one (of any reason, its
verification not failed) started before the last scheduled run that should have finished by now.
Each run gets a grace to finish, and a backup started up to that grace before a run counts for it:
twice the longest recent backup's duration, at least 15 minutes and at most half the interval.
The interval named in the message is the schedule's shortest recent gap (1 day for `0 3 * * 1-5`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from dbops.backup.manifest import Manifest
from dbops.config import cron
from dbops.config.model import BackupPolicy
from dbops.errors import BackupError

_MIN_GRACE = timedelta(minutes=15)
_RECENT = 5


def parse(text: str) -> cron.Schedule:
    """The policy's schedule; BackupError naming it and what is wrong."""
    try:
        return cron.parse(text)
    except ValueError as exc:
        raise BackupError(f"backup.schedule {text!r}: {exc}") from None


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


def overdue_since(text: str, newest: datetime | None, now: datetime, *,
                  what: str = "full backup") -> str | None:
    """Why the newest `what` (started at `newest`) is overdue under the cron schedule `text`, or
    None. Each run gets the minimum grace (15 minutes, at most half the interval) to finish:
    a pgBackRest backup's duration is not in a dbops manifest."""
    schedule = parse(text)
    last = schedule.previous(now)
    if last is None:
        return None
    grace = min(_MIN_GRACE, schedule.interval_at(last) / 2)
    due = schedule.previous(now - grace)
    if due is None or (newest is not None and newest >= due - grace):
        return None
    wants = f"schedule '{text}' wants one every {describe(schedule.typical(due))}"
    if newest is None:
        return f"there is no {what}; {wants}"
    return (f"the newest {what} is {describe(now - newest)} old; {wants} "
            f"(the run due {due:%Y-%m-%d %H:%M} UTC is missing)")
