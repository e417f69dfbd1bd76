"""What dbops' own operations left behind, for /metrics and the Prometheus rules: the backup
catalog (newest usable backup, whether the schedule is missed, failed verifications), the audit
log and migration history in the database's `dbops` schema (applies, failed applies, migrations),
and the last `dbops drift` (which records its verdict under .dbops/drift/, being read-only in the
database).

Read at most once a minute by the monitor's cycle, never by a scrape: these change with an
operation, not with every check.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from dbops.backup import catalog, manifest, schedule
from dbops.config.model import Plan
from dbops.errors import DbopsError

LOG = logging.getLogger("dbops.health.operations")
REREAD_AFTER = 60.0
FAILED_APPLY = ("failed", "rolled back", "interrupted")
T = TypeVar("T")
OnPrimary = Callable[[Callable[[psycopg.Connection[Any]], T]], T]


@dataclass(frozen=True)
class DriftState:
    """The verdict of the last `dbops drift` run in this project for an environment."""

    checked_at: datetime
    out_of_band: int
    pending: int


@dataclass(frozen=True)
class Operations:
    backups: int | None = None
    """Backups in the catalog; None when the plan has no backup policy (or it cannot be read)."""
    backup_last_success: datetime | None = None
    backup_overdue: bool | None = None
    """None when the plan has no backup schedule."""
    backup_verification_failures: int | None = None
    applies: int | None = None
    """Applies in the audit log; None when the database could not be read."""
    apply_failures: int | None = None
    apply_last_success: datetime | None = None
    migrations_applied: int | None = None
    migration_last_applied: datetime | None = None
    drift: DriftState | None = None


def drift_state_path(plan: Plan) -> Path:
    return plan.root / ".dbops" / "drift" / f"{plan.environment}.json"


def record_drift(plan: Plan, out_of_band: int, pending: int) -> None:
    """Keep the verdict of a drift run for the health exporter; a project directory that cannot
    be written only loses the metric (logged), never the drift run."""
    path = drift_state_path(plan)
    state = {"checked_at": datetime.now(UTC).isoformat(), "out_of_band": out_of_band,
             "pending": pending}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        spare = path.with_suffix(".json.tmp")
        spare.write_text(json.dumps(state) + "\n", encoding="utf-8")
        os.replace(spare, path)
    except OSError as exc:
        LOG.warning("cannot record the drift verdict in %s (%s)", path, exc.strerror or exc)


def read_drift(plan: Plan) -> DriftState | None:
    try:
        data = json.loads(drift_state_path(plan).read_text(encoding="utf-8")[:4096])
        return DriftState(datetime.fromisoformat(data["checked_at"]), int(data["out_of_band"]),
                          int(data["pending"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _backups(plan: Plan) -> dict[str, Any]:
    policy = plan.backup
    if policy is None:
        return {}
    try:
        manifests = manifest.read_manifests(policy.directory)
    except (DbopsError, OSError, ValueError) as exc:
        LOG.debug("cannot read the backup catalog in %s: %s", policy.directory, exc)
        return {}
    newest = catalog.latest(manifests)
    overdue = (None if policy.schedule is None
               else schedule.overdue(policy, manifests, datetime.now(UTC)) is not None)
    return {"backups": len(manifests),
            "backup_last_success": newest.finished_at if newest else None,
            "backup_overdue": overdue,
            "backup_verification_failures": sum(1 for m in manifests if m.failed)}


def _history(conn: psycopg.Connection[Any], environment: str) -> dict[str, Any]:
    """Applies and migrations as the database's dbops schema records them; all zero in a
    database dbops never touched."""
    row = conn.execute(
        "SELECT to_regclass('dbops.meta') IS NOT NULL AND EXISTS (SELECT FROM dbops.meta"
        " WHERE key = 'schema_version' AND value::int >= 4)").fetchone()
    if not row or not row[0]:
        return {"applies": 0, "apply_failures": 0, "migrations_applied": 0}
    applies, failures, last_apply = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE result = ANY(%s)),"
        " max(at) FILTER (WHERE result = 'applied')"
        " FROM dbops.apply_audit WHERE environment = %s AND action = 'apply'",
        (list(FAILED_APPLY), environment)).fetchone() or (0, 0, None)
    migrations, last_migration = conn.execute(
        "SELECT count(*), max(applied_at) FROM dbops.migration_history").fetchone() or (0, None)
    return {"applies": applies, "apply_failures": failures, "apply_last_success": last_apply,
            "migrations_applied": migrations, "migration_last_applied": last_migration}


class OperationsReader:
    """Reads Operations, again only when the last reading is older than `reread_after`."""

    def __init__(self, plan: Plan, *, reread_after: float = REREAD_AFTER) -> None:
        self.plan = plan
        self.reread_after = reread_after
        self._last: tuple[float, Operations] | None = None

    def read(self, on_primary: OnPrimary[dict[str, Any]]) -> Operations:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.reread_after:
            return self._last[1]
        figures = _backups(self.plan)
        try:
            figures |= on_primary(lambda conn: _history(conn, self.plan.environment))
        except (DbopsError, psycopg.Error) as exc:
            LOG.debug("cannot read the audit log of %s: %s", self.plan.environment, exc)
        found = Operations(**figures, drift=read_drift(self.plan))
        self._last = (now, found)
        return found
