"""The one path plan, apply and drift share: load -> inspect -> plan, then render, execute or
classify. Because apply executes the very ChangeSet that plan renders, "plan showed X but apply
did Y" cannot happen by construction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from dbops import ledger
from dbops.changes import ChangeSet
from dbops.config.model import Plan
from dbops.connect import connection
from dbops.drift import DriftReport, detect
from dbops.errors import DbopsError
from dbops.inspect import LiveState, inspect, schema_fingerprint
from dbops.migrate import source
from dbops.planner import make_changeset

if TYPE_CHECKING:
    from dbops.execute import ApplyReport, Notify, Operation


@dataclass(frozen=True)
class Planned:
    changeset: ChangeSet
    live: LiveState


def plan(the_plan: Plan, *, command: str = "plan") -> Planned:
    """Inspect the live database (read-only) and compute the ChangeSet."""
    live = inspect(the_plan, command=command, fingerprint=command != "plan")
    directory = the_plan.migrations.directory
    migrations = None
    notes: dict[str, tuple[str, ...]] = {}
    if directory.is_dir():
        migrations = source.load(directory)
        source.check_sum(directory, migrations)
        notes = _analysis(the_plan, live, migrations)
    return Planned(make_changeset(the_plan, live, migrations, analysis=notes), live)


def _analysis(
    the_plan: Plan, live: LiveState, migrations: source.MigrationSet
) -> dict[str, tuple[str, ...]]:
    """Per pending migration: its findings and what it will do to the live tables."""
    applied = {a.version for a in live.applied}
    waiting = [m for m in migrations if m.version not in applied]
    if not waiting:
        return {}
    from dbops.inspect import table_stats
    from dbops.migrate.lint import lint, tables_of

    names = tables_of(waiting)
    stats = {}
    if names:
        with connection(the_plan, command="plan", autocommit=True) as conn:
            conn.read_only = True
            stats = table_stats(conn, names)
    settings = the_plan.migrations
    notes = {}
    from dbops.migrate.runner import prepare

    for migration in waiting:
        report = lint(
            [migration],
            zero_downtime=settings.zero_downtime,
            fail_on=settings.lint_fail_on,
            stats=stats,
        )
        online = settings.zero_downtime or migration.zero_downtime
        execution = prepare(migration, "up", zero_downtime=online)
        lines = ["runs in one transaction" if execution.mode == "transaction"
                 else f"runs as {len(execution.steps)} journaled step(s)"
                 + (" (rewritten online)" if online else "")]
        for finding in report.findings:
            lines.append(
                f"line {finding.line}: {finding.severity} {finding.rule}: {finding.message}"
            )
            lines += [f"  {e}" for e in report.estimates.get(f"{finding.file}:{finding.line}", ())]
        notes[migration.version] = tuple(lines)
    return notes


def drift(the_plan: Plan, *, today: date | None = None) -> DriftReport:
    planned = plan(the_plan, command="drift")
    return detect(the_plan, planned.live, planned.changeset, today=today or date.today())


class StalePlan(DbopsError):
    """A saved plan file whose objects changed in the live database since it was made."""


def check_fresh(saved: ChangeSet, fresh: ChangeSet) -> None:
    """Refuse a saved ChangeSet when any object it touches changed since it was planned."""
    current = {c.address: c for c in fresh.changes}
    for change in saved.changes:
        now = current.get(change.address)
        if now is None:
            raise StalePlan(
                f"the plan file is stale: {change.address} no longer needs "
                "this change (the live database changed since the plan was made)"
            )
        if now.fingerprint != change.fingerprint or now.after != change.after:
            raise StalePlan(
                f"the plan file is stale: {change.address} changed in the live "
                "database since the plan was made; plan again"
            )


def dry_run(the_plan: Plan, changeset: ChangeSet, *, allow_restart: bool) -> list[Operation]:
    from dbops.execute import Executor

    executor = Executor(the_plan, changeset, allow_restart=allow_restart)
    return [op for _, ops in executor.stages() for op in ops]


def apply(the_plan: Plan, changeset: ChangeSet, live: LiveState, *, allow_restart: bool,
          notify: Notify, skip_backup: bool = False) -> ApplyReport:
    """Execute through pyinfra, then record the snapshot (on success) and an audit row."""
    from dbops.execute import Executor

    report = Executor(the_plan, changeset, allow_restart=allow_restart, notify=notify,
                      skip_backup=skip_backup).run()
    record(the_plan, changeset, live, report, skip_backup=skip_backup)
    return report


def record(the_plan: Plan, changeset: ChangeSet, live: LiveState, report: ApplyReport, *,
           skip_backup: bool = False) -> None:
    skipped = set(report.skipped)
    previous = live.snapshot.settings if live.snapshot else {}
    settings = {
        name: value for name, value in the_plan.settings.items() if f"setting.{name}" not in skipped
    }
    settings.update(
        {
            name: previous[name]
            for name in previous
            if f"setting.{name}" in skipped and name in previous
        }
    )
    roles = {
        name: {"login": r.login, "connection_limit": r.connection_limit, "settings": r.settings}
        for name, r in the_plan.roles.items()
    }
    with connection(the_plan, command="apply", autocommit=True) as conn:
        ledger.ensure_schema(conn)
        with conn.transaction():
            if report.result == "applied":
                # Migrations credited their changes to the snapshot as they ran; a first apply
                # adopts what exists.
                credited = ledger.credited_schema(conn, the_plan.environment)
                known = credited if credited is not None else schema_fingerprint(conn)
                ledger.write_snapshot(
                    conn,
                    ledger.Snapshot(
                        environment=the_plan.environment,
                        plan_hash=changeset.plan_hash,
                        applied_at=None,  # type: ignore[arg-type]  # the database sets now()
                        settings=settings,
                        roles=roles,
                        schema_fingerprint=known,
                    ),
                )
            ledger.audit(
                conn,
                environment=the_plan.environment,
                plan_hash=changeset.plan_hash,
                changes=[
                    {"address": c.address, "action": c.action, "before": c.before, "after": c.after}
                    for c in changeset.changes
                ],
                result=report.result,
                reason=_reason(report, skip_backup and bool(changeset.of_kind("migration"))),
            )


def _reason(report: ApplyReport, skipped_backup: bool) -> str:
    notes = [report.reason] if report.reason else []
    if skipped_backup:
        notes.append("before-migrate backup skipped (--skip-backup)")
    return "; ".join(notes)
