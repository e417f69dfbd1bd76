"""The one path plan, apply and drift share: load -> inspect -> plan, then render, execute or
classify. Because apply executes the very ChangeSet that plan renders, "plan showed X but apply
did Y" cannot happen by construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from dbops import ledger, locks, privileges
from dbops.changes import ChangeSet
from dbops.config.model import Plan
from dbops.connect import KeptSession, connection, endpoint, mask
from dbops.drift import (
    DriftReport,
    adopted_by_apply,
    as_applied,
    declared_roles,
    describe,
    detect,
    unmanaged_baseline,
)
from dbops.errors import (
    DbopsError,
    MigrationError,
    PlanError,
    PrivilegeMissing,
    Problem,
    StalePlan,
)
from dbops.inspect import LiveState, inspect
from dbops.migrate import files, pending
from dbops.migrate.files import Migration
from dbops.planner import make_changeset, target_problem
from dbops.schema_facts import schema_fingerprint, table_stats

if TYPE_CHECKING:
    from dbops.execute import ApplyReport, Notify, Operation
    from dbops.migrate.analyze import Finding
    from dbops.schema_facts import TableStats


@dataclass(frozen=True)
class Planned:
    changeset: ChangeSet
    live: LiveState
    privileges: tuple[privileges.Finding, ...] = ()  # what the plan asks of the connecting role


def plan(the_plan: Plan, *, command: str = "plan") -> Planned:
    """Inspect the live database (read-only) and compute the ChangeSet; what the connecting role
    lacks for this plan (as `dbops doctor` judges it) is added to its notes."""
    migrations = load_migrations(the_plan)
    live = inspect(the_plan, command=command, fingerprint=command != "plan")
    # Replicas: inspect has just reached each of them, or failed.
    findings = privileges.judge(the_plan, privileges.probe(the_plan, replicas=False,
                                                                    command=command))
    files.check_sum(the_plan.migrations.directory, migrations)
    waiting = _waiting(the_plan, live, migrations)
    stats = _table_stats(the_plan, waiting)
    notes = _analysis(the_plan, waiting, stats)
    changeset = make_changeset(the_plan, live, migrations, analysis=notes, stats=stats)
    adopted = adopted_by_apply(the_plan, live) if not changeset.empty else []
    if adopted:
        changeset = dataclasses.replace(changeset, notes=changeset.notes + tuple(
            f"changed outside the plan since the last apply, and this apply takes it as the new "
            f"baseline (declare it, or add a drift.ignore, to say otherwise): {describe(i)}"
            for i in adopted))
    lacking = privileges.missing(findings)
    if lacking:
        changeset = dataclasses.replace(changeset, notes=changeset.notes + tuple(
            f"missing privilege: {finding}" for finding in lacking))
    if live.expansions:
        changeset = dataclasses.replace(changeset, notes=changeset.notes + tuple(
            f"expand/contract in flight: migration {e.version} {e.name} {e.phase} since "
            f"{e.started_at:%Y-%m-%d %H:%M:%S}, backfill {e.progress()}; next: {e.next_phase}"
            for e in live.expansions))
    return Planned(changeset, live, findings)


def check_privileges(planned: Planned, *, doctor: str) -> None:
    """Refuse (PrivilegeMissing) when the connecting role lacks something the plan needs: an
    apply stops before the first change rather than half-way through."""
    lacking = privileges.missing(planned.privileges)
    if lacking:
        needs = "; ".join(f"{f.subject}: {f.need}" for f in lacking)
        raise PrivilegeMissing(f"apply refused, nothing was changed: {planned.live.current_user} "
                               f"lacks {needs} (`{doctor}` prints the GRANT statements)")


def load_migrations(the_plan: Plan) -> files.MigrationSet:
    """The plan's migration files. A missing directory is an error, never an empty one: running
    from the wrong directory must not look like "in sync"."""
    directory = the_plan.migrations.directory
    if not directory.is_dir():
        raise PlanError([the_plan.document.problem(
            ("migrations", "directory"),
            f"{directory.resolve()} is not a directory (the plan's migrations directory, "
            "resolved from the project root)")])
    return files.load(directory)


def file_problems(the_plan: Plan) -> list[Problem]:
    """What `validate` checks on disk: the migrations directory exists and the target names one
    of its files."""
    try:
        migrations = load_migrations(the_plan)
    except PlanError as exc:
        return exc.problems
    problem = target_problem(the_plan, migrations)
    return [problem] if problem else []


def _waiting(the_plan: Plan, live: LiveState, migrations: files.MigrationSet) -> list[Migration]:
    """The pending migrations the plan applies, in order (the planner reports why when none can
    be chosen)."""
    settings = the_plan.migrations
    try:
        return pending.to_apply(migrations, list(live.applied), target=settings.target,
                                allow_out_of_order=settings.allow_out_of_order)
    except MigrationError:
        return []


def _table_stats(the_plan: Plan, waiting: list[Migration]) -> dict[str, TableStats]:
    """Live statistics of the tables the pending migrations touch (read-only)."""
    if not waiting:
        return {}
    # lazy: pglast only when migrations are pending
    from dbops.migrate.analyze import sample_from
    from dbops.migrate.lint import planned_of, tables_of

    names = tables_of(waiting)
    if not names:
        return {}
    with connection(the_plan, command="plan", autocommit=True) as conn:
        conn.read_only = True
        return table_stats(conn, names,
                           sample_from=sample_from(the_plan.migrations.lint_max_blocking),
                           planned=planned_of(waiting))


def _analysis(
    the_plan: Plan, waiting: list[Migration], stats: dict[str, TableStats]
) -> dict[str, tuple[str, ...]]:
    """Per pending migration: its findings and what it will do to the live tables, each judged
    against the state the earlier pending migrations leave behind."""
    if not waiting:
        return {}
    # lazy: pglast only when migrations are pending
    from dbops.migrate.lint import lint
    from dbops.migrate.runner import prepare
    from dbops.migrate.runstate import run_states

    settings = the_plan.migrations
    blocking = settings.lint_max_blocking.total_seconds()
    states = run_states(waiting, stats, blocking)
    report = lint(waiting, zero_downtime=settings.zero_downtime, fail_on=settings.lint_fail_on,
                  stats=stats, states=states, max_blocking=blocking)
    findings: dict[str, list[Finding]] = {}
    for finding in report.findings:
        findings.setdefault(finding.file, []).append(finding)
    notes = {}
    for migration, state in zip(waiting, states, strict=True):
        online = settings.zero_downtime or migration.zero_downtime
        try:
            execution = prepare(migration, "up", zero_downtime=online, state=state)
        except MigrationError:
            continue  # the planner reports it as the plan's problem
        lines = ["runs in one transaction" if execution.mode == "transaction"
                 else f"runs as {len(execution.steps)} journaled step(s)"
                 + (" (rewritten online)" if online else "")]
        if migration.expand is not None:
            lines = [f"expand/contract: expands now (version schema "
                     f"{migration.expand.version_schema(migration.version)}), then "
                     + ("completes in the same run (migrations.complete: auto)"
                        if settings.complete == "auto" else
                        "waits for `dbops migrate complete` (migrations.complete: manual)")]
        for finding in findings.get(migration.file, []):
            lines.append(
                f"line {finding.line}: {finding.severity} {finding.rule}: {finding.message}"
            )
            lines += [f"  {e}" for e in report.estimates.get(f"{finding.file}:{finding.line}", ())]
        notes[migration.version] = tuple(lines)
    return notes


def drift(the_plan: Plan, *, today: date | None = None) -> DriftReport:
    """Classify the differences. Unlike plan, an edited applied migration or a stale dbops.sum
    is drift reported beside the rest, not an error that hides it."""
    migrations, stale_sum = load_migrations(the_plan), ""
    # lazy: the operations log (and the backup catalog it reads) only for drift
    from dbops.health.operations import record_drift

    live = inspect(the_plan, command="drift")
    try:
        files.check_sum(the_plan.migrations.directory, migrations)
    except MigrationError as exc:
        stale_sum = str(exc)
    changeset = make_changeset(the_plan, live, as_applied(migrations, live.applied))
    report = detect(the_plan, live, changeset, today=today or date.today(),
                    migrations=migrations, stale_sum=stale_sum)
    record_drift(the_plan, len(report.active("out-of-band")), len(report.active("pending")))
    return report


def check_saved(saved: ChangeSet, fresh: ChangeSet, name: str) -> None:
    """A saved plan file is applied only when it is, change for change (statements and steps
    included), what the plan and the live database make now: a stale or edited file is refused,
    naming the first change that differs."""
    if saved.environment != fresh.environment:
        raise StalePlan(f"{name} was made for {saved.environment}, not {fresh.environment}")
    if saved.executable() == fresh.executable():
        return
    if saved.plan_hash != fresh.plan_hash:
        raise StalePlan(f"{name} was made from another version of the plan: plan again")
    ours = {c.address: c for c in fresh.changes}
    theirs = {c.address: c for c in saved.changes}
    for address in [*theirs, *ours]:
        if address not in ours:
            raise StalePlan(f"{name}: {address} is not a change the plan makes now (the file was "
                            "edited, or the live database changed since): plan again")
        if address not in theirs:
            raise StalePlan(f"{name}: {address} is missing from the file: plan again")
        if theirs[address].fingerprint != ours[address].fingerprint:
            raise StalePlan(f"the plan file is stale: {address} changed in the live database "
                            "since the plan was made; plan again")
        if theirs[address].executable() != ours[address].executable():
            raise StalePlan(f"{name}: {address} is not what the plan makes now (its statements, "
                            "steps or values differ: the file was edited); nothing was applied")
    raise StalePlan(f"{name}: its gates, backup or order differ from what the plan makes now: "
                    "plan again")


def dry_run(the_plan: Plan, changeset: ChangeSet, *, allow_restart: bool,
            skip_backup: bool = False) -> list[Operation]:
    # lazy: apply's machinery (pyinfra, backups, the runner) only for apply and dry runs
    from dbops.execute import Executor

    executor = Executor(the_plan, changeset, allow_restart=allow_restart, skip_backup=skip_backup)
    return [op for _, ops in executor.stages() for op in ops]


@contextmanager
def apply_lock(the_plan: Plan, wait: timedelta) -> Iterator[int]:
    """One apply at a time per database: held from before the plan is made until the audit row
    is written; yields the holding session's pid. Another holder is waited for up to `wait`."""
    with locks.advisory_lock(endpoint(the_plan), locks.APPLY_LOCK, holder="another dbops apply",
                             wait=wait, command="apply-lock", option="--lock-wait") as conn:
        yield conn.info.backend_pid


def apply(the_plan: Plan, changeset: ChangeSet, live: LiveState, *, allow_restart: bool,
          notify: Notify, lock_pid: int, skip_backup: bool = False,
          plan_file_sha256: str | None = None,
          halted: Callable[[], str] | None = None) -> ApplyReport:
    """Execute through pyinfra. The audit row is written first (result 'running') and kept up
    to date after each stage, so an apply that dies leaves a trace; at the end it gets the
    result, and on success the snapshot is recorded."""
    # lazy: apply's machinery (pyinfra, backups, the runner) only for apply and dry runs
    from dbops.execute import Executor

    bookkeeping = KeptSession(endpoint(the_plan), command="apply")  # one session for all of it
    try:
        def begin(conn: psycopg.Connection[Any]) -> int:
            ledger.ensure_schema(conn)
            return ledger.begin_apply(
                conn, environment=the_plan.environment, plan_hash=changeset.plan_hash,
                changes=[{"address": c.address, "action": c.action, "before": c.before,
                          "after": c.after} for c in changeset.changes],
                plan_file_sha256=plan_file_sha256, lock_pid=lock_pid)

        audit_id = bookkeeping.run(begin)

        def progress(done: list[str]) -> None:
            try:
                bookkeeping.run(lambda conn: ledger.progress_apply(conn, audit_id, done))
            except (DbopsError, psycopg.OperationalError) as exc:
                notify(f"could not record progress in the audit log: {mask(str(exc))}")

        report = Executor(the_plan, changeset, allow_restart=allow_restart, notify=notify,
                          skip_backup=skip_backup, progress=progress, halted=halted,
                          bookkeeping=bookkeeping).run()
        bookkeeping.run(lambda conn: record(conn, the_plan, changeset, live, report, audit_id,
                                            skip_backup=skip_backup))
    finally:
        bookkeeping.close()
    return report


def record(conn: psycopg.Connection[Any], the_plan: Plan, changeset: ChangeSet,
           live: LiveState, report: ApplyReport, audit_id: int, *,
           skip_backup: bool = False) -> None:
    """The apply's end in one transaction: its audit row's result and, when it applied, the
    snapshot drift compares against."""
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
    roles = {name: r.snapshot() for name, r in the_plan.roles.items()}
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
                    roles=declared_roles(roles, live),
                    schema_fingerprint=known,
                    unmanaged=unmanaged_baseline(the_plan, live),
                ),
            )
        ledger.finish_apply(
            conn, audit_id, result=report.result,
            reason=_reason(report, skip_backup and changeset.backup_first is not None),
            done=list(report.applied), undone=list(report.rolled_back),
            not_undone=list(report.not_undone))


def _reason(report: ApplyReport, skipped_backup: bool) -> str:
    notes = [report.reason] if report.reason else []
    if skipped_backup:
        notes.append("before-migrate backup skipped (--skip-backup)")
    return "; ".join(notes)
