"""WAL archiving as the server reports it (pg_stat_archiver and the archive settings), and the
judgement on it: failing, stale against the recovery point objective, or working. Reading needs a
connection; judging is pure (`now` is given)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg

from dbops.units import format_duration

Verdict = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class ArchiveStatus:
    """One reading of pg_stat_archiver with the settings that make archiving happen."""

    archive_mode: str
    archive_command: str
    archive_timeout: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    read_at: datetime

    @property
    def enabled(self) -> bool:
        return self.archive_mode in ("on", "always") and self.archive_command not in ("", "(disabled)")

    @property
    def failing(self) -> bool:
        """The latest attempt failed: a failure newer than the last success (or no success)."""
        if self.last_failed_time is None:
            return False
        return self.last_archived_time is None or self.last_failed_time > self.last_archived_time


def read(conn: psycopg.Connection[Any]) -> ArchiveStatus:
    """pg_stat_archiver and the archive settings, read now (any role may read them)."""
    row = conn.execute(
        "SELECT current_setting('archive_mode'), current_setting('archive_command'),"
        " current_setting('archive_timeout'), archived_count, last_archived_wal,"
        " last_archived_time, failed_count, last_failed_wal, last_failed_time, now()"
        " FROM pg_stat_archiver").fetchone()
    assert row is not None
    return ArchiveStatus(*row)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    message: str


def judge(status: ArchiveStatus, objective: timedelta | None,
          previous_failed: int | None = None) -> Judgement:
    """Archiving against the recovery point objective: critical when it is off, when the latest
    attempt failed or failures grew since `previous_failed`; warning when the newest archived WAL
    is older than the objective (nothing archived for longer than the RPO allows); ok otherwise."""
    if not status.enabled:
        return Judgement("critical", f"WAL archiving is off (archive_mode={status.archive_mode}, "
                         f"archive_command={status.archive_command or 'empty'}): no "
                         "point-in-time recovery is possible")
    grew = previous_failed is not None and status.failed_count > previous_failed
    if status.failing or grew:
        when = (f" at {status.last_failed_time:%Y-%m-%d %H:%M:%S %Z}"
                if status.last_failed_time else "")
        last = (f"; last archived {status.last_archived_wal} at "
                f"{status.last_archived_time:%Y-%m-%d %H:%M:%S %Z}"
                if status.last_archived_time else "; nothing archived yet")
        return Judgement("critical", f"WAL archiving is failing: {status.failed_count} failure(s),"
                         f" {status.last_failed_wal or 'a segment'} failed{when}{last}; check "
                         "archive_command and the server log")
    if status.last_archived_time is None:
        return Judgement("warning", "WAL archiving is on but no segment has been archived yet")
    age = status.read_at - status.last_archived_time
    if objective is not None and age > objective:
        return Judgement("warning", f"the newest archived WAL ({status.last_archived_wal}) is "
                         f"{format_duration(age, whole_seconds=True)} old, beyond recovery_objective "
                         f"{format_duration(objective)}: a crash now loses more than promised")
    return Judgement("ok", f"WAL archiving works: {status.last_archived_wal} archived "
                     f"{format_duration(age, whole_seconds=True)} ago, {status.failed_count} failure(s)")

