"""The pgbackrest engine's health: WAL archiving (pg_stat_archiver: failures, the newest archived
segment's age against `recovery_objective`) and the newest full backup's age against its
schedule (from the catalog dbops records in the database). None of it when the plan's backup
engine is not pgbackrest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from dbops.backup import archiving, schedule
from dbops.config.model import Plan
from dbops.connect import mask
from dbops.errors import DbopsError
from dbops.health.result import CheckResult

T = TypeVar("T")
OnPrimary = Callable[[Callable[[psycopg.Connection[Any]], T]], T]


class ArchiveHealth:
    """The `wal_archiving` and `full_backup_age` checks; each cycle reads pg_stat_archiver once
    and remembers its failure count, so failures that grew since the last cycle are critical
    even when a later attempt succeeded."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._failed: int | None = None

    @staticmethod
    def applies(plan: Plan) -> bool:
        return plan.backup is not None and plan.backup.pgbackrest is not None \
            and plan.backup.engine == "pgbackrest"

    def check(self, on_primary: OnPrimary[Any]) -> list[CheckResult]:
        policy = self.plan.backup.pgbackrest if self.plan.backup else None
        if policy is None:
            return []
        try:
            status, newest = on_primary(self._read)
        except (DbopsError, psycopg.Error) as exc:
            return [CheckResult("wal_archiving", None, None, "warning",
                                f"could not read pg_stat_archiver: {mask(str(exc).strip())}")]
        judgement = archiving.judge(status, policy.recovery_objective, self._failed)
        self._failed = status.failed_count
        age = (status.read_at - status.last_archived_time).total_seconds() \
            if status.last_archived_time else None
        results = [CheckResult(
            "wal_archiving", age, policy.recovery_objective.total_seconds(), judgement.verdict,
            judgement.message,
            {"failed_count": status.failed_count, "archived_count": status.archived_count,
             "last_archived_wal": status.last_archived_wal,
             "last_failed_wal": status.last_failed_wal})]
        if policy.full is not None:
            try:
                late = schedule.overdue_since(policy.full, newest, datetime.now(UTC))
            except DbopsError as exc:
                late = str(exc)
            results.append(CheckResult(
                "full_backup_age", None, None, "warning" if late else "ok",
                late or f"the newest full backup ({newest:%Y-%m-%d %H:%M} UTC) is on schedule "
                        f"('{policy.full}')" if newest or late else "no full backup yet"))
        return results

    def _read(self, conn: psycopg.Connection[Any]) -> tuple[archiving.ArchiveStatus,
                                                             datetime | None]:
        # lazy: the pgBackRest machinery only for plans of that engine
        from dbops.backup.pitr import newest_full, recorded

        return archiving.read(conn), newest_full(recorded(conn, self.plan.environment))
