"""Backup freshness: the plan's backup schedule against the newest complete backup in its
catalog (dbops.backup). Read at most once a minute: a catalog changes with a backup, not with
every cycle."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dbops.backup import manifest, schedule
from dbops.config.model import Plan
from dbops.connect import mask
from dbops.errors import DbopsError
from dbops.health.result import CheckResult

REREAD_AFTER = 60.0


class BackupFreshness:
    """The `backup_freshness` check; None when the plan has no backup schedule to judge."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._last: tuple[float, CheckResult | None] | None = None

    def check(self) -> CheckResult | None:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < REREAD_AFTER:
            return self._last[1]
        result = self._read()
        self._last = (now, result)
        return result

    def _read(self) -> CheckResult | None:
        policy = self.plan.backup
        if policy is None or policy.schedule is None:
            return None
        try:
            overdue = schedule.overdue(policy, manifest.read_manifests(policy.directory),
                                       datetime.now(UTC))
        except (DbopsError, OSError, ValueError) as exc:
            return CheckResult("backup_freshness", None, None, "warning",
                               f"could not read the backup catalog in {policy.directory}: "
                               f"{mask(str(exc))}")
        if overdue is not None:
            return CheckResult("backup_freshness", None, None, "warning", overdue)
        return CheckResult("backup_freshness", None, None, "ok",
                           f"the newest backup is on schedule ('{policy.schedule}')")
