"""MigrationEngine: the migration commands as a Python API (what the CLI and applications call).
Wires the files (source), the database (history, runner) and the plan together; holds no SQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import psycopg

from dbops import ledger
from dbops import migration_history as history
from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.config.source import display_path
from dbops.connect import endpoint, open_connection
from dbops.errors import MigrationError, StalePlan
from dbops.migrate import files, pending
from dbops.migrate.expand.state import check_none_in_flight
from dbops.migrate.files import Migration, MigrationSet
from dbops.migration_history import Direction
from dbops.progress import step as progress_step
from dbops.schema_facts import has_objects, table_stats

if TYPE_CHECKING:
    from dbops.changes import MigrationRun
    from dbops.migrate.expand.state import Expansion
    from dbops.migrate.lint import LintReport
    from dbops.migrate.runner import Execution, Notify, RunSettings
    from dbops.migrate.runstate import RunState
    from dbops.schema_facts import TableStats

Progress = Callable[[int, int, Migration, float], None]

_SLUG = re.compile(r"[^a-z0-9]+")
_SPOKEN_DURATION = re.compile(
    r"^(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)$"
)


@dataclass(frozen=True)
class RunResult:
    """What a run did (or, with dry_run, would do): one Execution per migration, in order."""

    direction: Direction
    executions: tuple[Execution, ...]
    durations_ms: tuple[float, ...]
    dry_run: bool


class MigrationEngine:
    """Apply, roll back, inspect and create migrations for one plan's database."""

    def __init__(self, plan: Plan, *, notify: Notify | None = None) -> None:
        self.plan = plan
        self._notify = notify

    @classmethod
    def from_plan(
        cls, plan: Plan | str, *, root: Path | None = None, notify: Notify | None = None
    ) -> MigrationEngine:
        """From a Plan, or an environment name / plan path resolved like the CLI does."""
        return cls(plan if isinstance(plan, Plan) else load_plan(plan, root=root), notify=notify)

    @property
    def directory(self) -> Path:
        return self.plan.migrations.directory

    @cached_property
    def migrations(self) -> MigrationSet:
        """The migration files, parsed and ordered (loaded once)."""
        return files.load(self.directory)

    def _connect(self, command: str, **kwargs: Any) -> psycopg.Connection[Any]:
        return open_connection(endpoint(self.plan), command=command, **kwargs)

    def _read(self) -> tuple[list[history.AppliedMigration], list[history.JournalEntry]]:
        with self._connect("migrate-status", autocommit=True) as conn:
            conn.read_only = True
            return history.read(conn), history.read_journal(conn)

    def status(self) -> list[pending.MigrationStatus]:
        """Every migration with its state: applied, pending, modified, missing-file or partial."""
        applied, journal = self._read()
        return pending.status(self.migrations, applied, journal)

    get_migration_status = status
    """The seed's name for `status()`, kept as an alias."""

    def validate_migrations(self) -> list[str]:
        """Every problem found: integrity file, SQL that does not parse, checksums against the
        history, dependencies. Empty when all is well."""
        problems: list[str] = []
        try:
            files.check_sum(self.directory)
        except MigrationError as exc:
            problems.append(str(exc))
        try:
            migrations = self.migrations
        except MigrationError as exc:
            return [*problems, str(exc)]
        for migration in migrations:
            for section in (migration.up, migration.down):
                try:
                    if section is not None:
                        section.statements(migration.path)
                except MigrationError as exc:
                    problems.append(str(exc))
        applied, _ = self._read()
        rows = pending.status(self.migrations, applied, [])
        problems += [row.detail for row in rows if row.state == "modified"]
        problems += [
            f"applied migration {row.version} {row.name} has no file"
            for row in rows
            if row.state == "missing-file"
        ]
        return problems

    def run_migrations(
        self,
        *,
        target: str | None = None,
        dry_run: bool = False,
        allow_out_of_order: bool | None = None,
        lock_wait: timedelta | None = None,
        progress: Progress | None = None,
        skip_backup: bool = False,
    ) -> RunResult:
        """Apply pending migrations up to `target` (default: the plan's target), after the
        plan's before-migrate backup (unless `skip_backup`); refused when that backup fails."""
        files.check_sum(self.directory, self.migrations)
        settings = self.plan.migrations
        out_of_order = (
            settings.allow_out_of_order if allow_out_of_order is None else allow_out_of_order
        )

        def choose(applied: list[history.AppliedMigration]) -> list[Migration]:
            return pending.to_apply(
                self.migrations,
                applied,
                target=target or settings.target,
                allow_out_of_order=out_of_order,
            )

        return self._run("up", choose, dry_run=dry_run, lock_wait=lock_wait, progress=progress,
                         skip_backup=skip_backup)

    def rollback_migrations(
        self,
        *,
        count: int | None = None,
        to: str | None = None,
        dry_run: bool = False,
        lock_wait: timedelta | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Run down sections newest first: the last `count` (default 1), or all after `to`."""
        if count is not None and to is not None:
            raise MigrationError("give either count or to, not both")
        if count is not None and count < 1:
            raise MigrationError(f"count must be at least 1 (got {count})")

        def choose(applied: list[history.AppliedMigration]) -> list[Migration]:
            return pending.to_revert(self.migrations, applied, count=count, to=to)

        return self._run("down", choose, dry_run=dry_run, lock_wait=lock_wait, progress=progress)

    def _run(
        self,
        direction: Direction,
        choose: Callable[[list[history.AppliedMigration]], list[Migration]],
        *,
        dry_run: bool,
        lock_wait: timedelta | None,
        progress: Progress | None,
        skip_backup: bool = False,
    ) -> RunResult:
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.runner import Runner, RunSettings

        if dry_run:
            applied, _ = self._read()
            chosen = choose(applied)
            stats = self.table_stats(chosen) if direction == "up" and chosen else {}
            executions = self._prepare_run(chosen, self._states(chosen, direction, stats))
            return RunResult(direction, executions, (), dry_run=True)
        settings = self.plan.migrations
        with self._runner_session(direction, lock_wait) as conn:
            applied = history.read(conn)
            chosen = choose(applied)
            stats = (_live_stats(conn, chosen, settings.lock_timeout, settings.lint_max_blocking)
                     if direction == "up" and chosen else {})
            # Parse everything before running anything: a syntax error refuses the whole run.
            states = self._states(chosen, direction, stats)
            executions = self._prepare_run(chosen, states)
            journal = history.read_journal(conn)
            if direction == "up" and executions:
                self._prevalidate(executions, stats, states, session=conn)
                if self.plan.backup is not None and self.plan.backup.before_migrate:
                    # lazy: pg_dump's machinery only when the policy takes a backup
                    from dbops.backup import backup_before_migrate

                    # Under the runner lock, so no other runner migrates between backup and run.
                    backup_before_migrate(self.plan, skip=skip_backup, notify=self._notify)
            runner = Runner(
                conn,
                RunSettings(settings.lock_timeout, settings.statement_timeout, settings.retries,
                            settings.role),
                self._notify,
            )
            durations: list[float] = []
            if direction == "up" and executions:
                check_none_in_flight(conn, executions[0].migration.version)
            # What dbops itself changes is not drift, nor what a killed run changed before.
            with ledger.crediting(conn):
                index, alone = 0, False  # alone: the one a shared message stopped at
                while index < len(executions):
                    execution, number = executions[index], index + 1
                    together = 0 if alone else runner.together(executions[index:])
                    if together > 1:
                        shared = executions[index:index + together]
                        with progress_step(f"migrations {shared[0].migration.version} to "
                                           f"{shared[-1].migration.version} {direction} "
                                           f"[{number}-{index + together}/{len(executions)}]"):
                            done = runner.run_together(shared)
                        for offset, duration in enumerate(done):
                            durations.append(duration)
                            if progress:
                                progress(number + offset, len(executions),
                                         shared[offset].migration, duration)
                        index, alone = index + len(done), len(done) < together
                        continue
                    index, alone = index + 1, False
                    if execution.migration.expand is not None and direction == "up":
                        from dbops.migrate.expand.run import expand

                        durations.append(expand(
                            conn, self._runner_settings(), execution.migration,
                            settings.complete, self._notify,
                            self.plan.health.thresholds.replication_lag))
                        if progress:
                            progress(number, len(executions), execution.migration,
                                     durations[-1])
                        if settings.complete == "manual":
                            executions = executions[:number]  # later ones wait for complete
                            break
                        continue
                    steps = {
                        j.step: j.status
                        for j in journal
                        if j.version == execution.migration.version
                        and j.direction == direction
                    }
                    with progress_step(f"migration {execution.migration.version} "
                                       f"{execution.migration.name} {direction} "
                                       f"[{number}/{len(executions)}]"):
                        durations.append(runner.run(execution, steps))
                    if progress:
                        progress(number, len(executions), execution.migration, durations[-1])
            if durations:
                # lazy: pglast only once migrations run; `migrate status` stays light
                from dbops.migrate.rehearsal import post_validate

                post_validate(conn, self._notify or (lambda message: None))
        return RunResult(direction, executions, tuple(durations), dry_run=False)

    def run_planned(self, run: MigrationRun, *, lock_wait: timedelta | None = None,
                    progress: Progress | None = None) -> float:
        """Run exactly one planned migration run (a ChangeSet's) under the runner lock; returns
        its duration in milliseconds. Refused as stale, before anything runs, when the history
        or the file no longer is what the plan assumed."""
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.runner import Runner, RunSettings, from_run

        settings = self.plan.migrations
        address = f"migration.{run.version}"
        migration = self.migrations.get(run.version)
        if migration is None:
            raise StalePlan(f"{address}: its file {run.file} is gone since the plan was made")
        try:
            execution = from_run(run, migration)
        except MigrationError as exc:
            raise StalePlan(f"{address}: {exc}") from None
        with self._runner_session(run.direction, lock_wait) as conn:
            applied = {a.version: a for a in history.read(conn)}
            if run.direction == "up" and run.version in applied:
                raise StalePlan(f"{address}: already applied since the plan was made "
                                f"(at {applied[run.version].applied_at:%Y-%m-%d %H:%M:%S})")
            if run.direction == "down" and run.version not in applied:
                raise StalePlan(f"{address}: no longer applied; nothing to roll back")
            steps = {j.step: j.status for j in history.read_journal(conn)
                     if j.version == run.version and j.direction == run.direction}
            runner = Runner(conn, RunSettings(settings.lock_timeout, settings.statement_timeout,
                                              settings.retries, settings.role), self._notify)
            with ledger.crediting(conn):  # what dbops itself changes is not drift
                if migration.expand is not None and run.direction == "up":
                    from dbops.migrate.expand.run import expand

                    check_none_in_flight(conn, migration.version)
                    duration = expand(conn, self._runner_settings(), migration, settings.complete,
                                      self._notify, self.plan.health.thresholds.replication_lag)
                else:
                    duration = runner.run(execution, steps)
            if progress:
                progress(1, 1, migration, duration)
        return duration

    def prevalidate_planned(self, runs: list[MigrationRun]) -> None:
        """The pre-validation of planned up runs: lint at the plan's fail_on, then rehearsal on
        a schema copy when the policy asks for it."""
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.runner import from_run

        executions = []
        for run in runs:
            migration = self.migrations.get(run.version)
            if migration is None:
                raise StalePlan(f"migration.{run.version}: its file {run.file} is gone since "
                                "the plan was made")
            executions.append(from_run(run, migration))
        if executions:
            self._prevalidate(tuple(executions),
                              self.table_stats([e.migration for e in executions]))

    def expansions(self) -> list[Expansion]:
        """Expand/contract migrations in flight (expanding or expanded), oldest first."""
        from dbops.migrate.expand import state

        with self._connect("migrate-status", autocommit=True) as conn:
            conn.read_only = True
            return state.in_flight(conn)

    def complete_expansion(self, *, lock_wait: timedelta | None = None) -> list[Migration]:
        """Contract every expanded migration into its new shape; returns those completed."""
        return self._expansion_phase("complete", lock_wait)

    def abort_expansion(self, *, lock_wait: timedelta | None = None) -> list[Migration]:
        """Undo every expansion in flight (the old shape stays); returns those undone."""
        return self._expansion_phase("abort", lock_wait)

    @contextmanager
    def _runner_session(self, what: str,
                        lock_wait: timedelta | None) -> Iterator[psycopg.Connection[Any]]:
        """The runner lock (one runner a database), then a connection with schema dbops in
        place: where every run, planned run and expansion phase works."""
        wait = self.plan.migrations.lock_wait if lock_wait is None else lock_wait
        with (
            history.runner_lock(endpoint(self.plan), wait=wait, command="migrate-lock"),
            self._connect(f"migrate-{what}", autocommit=True) as conn,
        ):
            ledger.ensure_schema(conn)
            yield conn

    def _expansion_phase(self, phase: str, lock_wait: timedelta | None) -> list[Migration]:
        from dbops.migrate.expand.run import finish

        with self._runner_session(phase, lock_wait) as conn, ledger.crediting(conn):
            return finish(conn, self.migrations, phase, self._runner_settings(),
                          self._notify)

    def _runner_settings(self) -> RunSettings:
        from dbops.migrate.runner import RunSettings

        s = self.plan.migrations
        return RunSettings(s.lock_timeout, s.statement_timeout, s.retries, s.role)

    def post_validate(self) -> None:
        """After migrations: no INVALID index left; constraints left NOT VALID are reported."""
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.rehearsal import post_validate

        with self._connect("migrate-check", autocommit=True) as conn:
            post_validate(conn, self._notify or (lambda message: None))

    def _prevalidate(self, executions: tuple[Execution, ...], stats: dict[str, TableStats],
                     states: list[RunState] | None = None, *,
                     session: psycopg.Connection[Any] | None = None) -> None:
        """Lint the pending run at the plan's fail_on (each migration against what the earlier
        ones leave behind: `states`, when the caller has them), then (when the policy says)
        rehearse on a schema copy (`session`: the run's connection, when it has one)."""
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.lint import lint
        from dbops.migrate.rehearsal import rehearse
        from dbops.migrate.runner import RunSettings

        settings = self.plan.migrations
        migrations = [e.migration for e in executions]
        blocking = settings.lint_max_blocking.total_seconds()
        report = lint(migrations, zero_downtime=settings.zero_downtime,
                      fail_on=settings.lint_fail_on, stats=stats,
                      states=states or self._states(migrations, "up", stats),
                      max_blocking=blocking)
        failing = report.failing()
        if failing:
            raise MigrationError(f"{failing[0]} (lint fails at {settings.lint_fail_on}: fix it, "
                                 f"or accept it with '-- dbops:ignore {failing[0].rule} <reason>')")
        wanted = settings.rehearse == "always" or (
            settings.rehearse == "auto" and any(e.mode == "steps" for e in executions))
        if wanted:
            rehearse(endpoint(self.plan), executions,
                     RunSettings(settings.lock_timeout, settings.statement_timeout,
                                 settings.retries), self._notify or (lambda message: None),
                     always=settings.rehearse == "always", session=session)

    def _prepare(self, migration: Migration, direction: Direction,
                 state: RunState | None = None) -> Execution:
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.runner import prepare

        online = self.plan.migrations.zero_downtime or migration.zero_downtime
        return prepare(migration, direction, zero_downtime=online, state=state)

    def _states(self, migrations: list[Migration], direction: Direction,
                stats: dict[str, TableStats]) -> list[RunState] | None:
        """Going up, the state each migration starts from: what the earlier pending ones leave
        behind (None going down)."""
        if direction == "down":
            return None
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.runstate import run_states

        return run_states(migrations, stats, self.plan.migrations.lint_max_blocking.total_seconds())

    def _prepare_run(self, migrations: list[Migration],
                     states: list[RunState] | None) -> tuple[Execution, ...]:
        """Every migration's Execution; going up (with `states`), each judged against the state
        the earlier pending migrations leave behind."""
        if states is None:
            return tuple(self._prepare(m, "down") for m in migrations)
        return tuple(self._prepare(m, "up", state)
                     for m, state in zip(migrations, states, strict=True))

    def table_stats(self, migrations: list[Migration]) -> dict[str, TableStats]:
        """Live statistics of the tables these migrations touch (read-only)."""
        with self._connect("migrate-lint", autocommit=True) as conn:
            conn.read_only = True
            return _live_stats(conn, migrations, self.plan.migrations.lock_timeout,
                               self.plan.migrations.lint_max_blocking)

    def lint(self, chosen: list[Migration] | None = None, *, live: bool = True) -> LintReport:
        """Findings for the given migrations (default: every migration), with live estimates."""
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.lint import lint

        migrations = chosen if chosen else list(self.migrations)
        settings = self.plan.migrations
        return lint(migrations, zero_downtime=settings.zero_downtime, fail_on=settings.lint_fail_on,
                    stats=self.table_stats(migrations) if live else None,
                    max_blocking=settings.lint_max_blocking.total_seconds(), downs=True)

    def explain(self, path: Path, *, live: bool = True) -> list[str]:
        """The exact steps a migration file will run, with locks and live estimates."""
        # lazy: pglast only once migrations run; `migrate status` stays light
        from dbops.migrate.lint import explain

        migration = files.parse(path)
        return explain(self._prepare(migration, "up"),
                       self.table_stats([migration]) if live else None)

    def baseline(self, version: str) -> list[Migration]:
        """Adopt an existing database: record every migration up to `version` as applied
        without running it. Refused when the history already has entries."""
        if self.migrations.get(version) is None:
            raise MigrationError(
                f"unknown baseline version {version}: no file in {self.directory.name}/"
            )
        adopted = [m for m in self.migrations if m.version <= version]
        with (
            history.runner_lock(
                endpoint(self.plan), wait=self.plan.migrations.lock_wait, command="migrate-lock"
            ),
            self._connect("migrate-baseline", autocommit=True) as conn,
        ):
            ledger.ensure_schema(conn)
            if history.read(conn):
                raise MigrationError("cannot baseline: the database already has migration history")
            with conn.transaction():
                for migration in adopted:
                    history.record(
                        conn,
                        version=migration.version,
                        name=migration.name,
                        checksum=migration.checksum,
                        duration_ms=0,
                        mode="baseline",
                    )
        return adopted

    def baseline_from_database(self) -> Migration:
        """Adopt a database that has a schema but no migration files: dump the schema into the
        first migration, prove that file rebuilds it in a scratch database (same fingerprint),
        write it and dbops.sum, then record it as applied."""
        # lazy: pg_dump's machinery only for a baseline
        from dbops.migrate import baseline as dumped

        if files.migration_files(self.directory):
            raise MigrationError(f"{display_path(self.directory)}/ already has migrations: "
                                 "--from-database writes the first one (use --version VERSION "
                                 "to baseline at an existing file)")
        if self._read()[0]:
            raise MigrationError("cannot baseline: the database already has migration history")
        ep = endpoint(self.plan)
        schema = dumped.clean(dumped.dump_schema(ep))
        dumped.verify(ep, schema)
        version = files.new_version(self.directory)
        dumped.write(self.directory, version, dumped.migration_text(schema, ep))
        files.write_sum(self.directory)
        self.__dict__.pop("migrations", None)  # the cached set was read before the file existed
        return self.baseline(version)[-1]

    def write_sum(self) -> Path:
        files.load(self.directory)  # refuse to bless a directory that does not parse
        return files.write_sum(self.directory)

    def create_migration(self, description: str, **options: Unpack[NewMigration]) -> Path:
        """Write a new migration from the template and update dbops.sum; returns its path."""
        return create_migration(self.directory, description, **options)


class NewMigration(TypedDict, total=False):
    """The options of a new migration file (see create_migration)."""

    zero_downtime: bool
    estimated_duration: str | None
    risk: str
    requires: tuple[str, ...]


def create_migration(
    directory: Path,
    description: str,
    *,
    zero_downtime: bool = False,
    estimated_duration: str | None = None,
    risk: str = "low",
    requires: tuple[str, ...] = (),
) -> Path:
    """A new `<version>_<slug>.sql` in `directory` (no database needed), dbops.sum updated."""
    slug = _SLUG.sub("_", description.lower()).strip("_")[:60].strip("_")
    if not slug:
        raise MigrationError(f"cannot make a file name from the description {description!r}")
    if risk not in ("low", "medium", "high"):
        raise MigrationError(f"risk level must be low, medium or high (got {risk!r})")
    # lazy: jinja2 only when a migration file is created
    import jinja2

    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("dbops", "templates"), keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{files.new_version(directory)}_{slug}.sql"
    path.write_text(
        templates.get_template("migration.sql.j2").render(
            description=description.strip(),
            risk=risk,
            zero_downtime=zero_downtime,
            estimated_duration=_duration(estimated_duration),
            requires=requires,
        ),
        encoding="utf-8",
    )
    files.write_sum(directory)
    return path


def _duration(spoken: str | None) -> str | None:
    """'30 seconds' -> '30s'; plan-style durations pass through."""
    if spoken is None:
        return None
    match = _SPOKEN_DURATION.match(spoken.strip().lower())
    if not match:
        raise MigrationError(
            f"estimated duration {spoken!r} is not a duration (e.g. '30 seconds', '5m', '1h')"
        )
    number, unit = match.groups()
    short = "ms" if unit.startswith("milli") or unit == "ms" else unit[0]
    return f"{number}{short}"


def _live_stats(conn: psycopg.Connection[Any], migrations: list[Migration],
                lock_timeout: timedelta, max_blocking: timedelta) -> dict[str, TableStats]:
    """Live statistics of the tables these migrations touch. Measuring a table's size waits for
    a lock another session may hold: after `lock_timeout` they are judged without statistics
    (assumed large and busy) rather than waited for. A database with no objects yet has no
    statistics to read: every table the run touches is one it creates, so the migrations are not
    parsed for table names at all (the run's analysis parses them once, with these same empty
    statistics, and caches the result)."""
    # lazy: pglast only once migrations run; `migrate status` stays light
    from dbops.migrate.analyze import sample_from
    from dbops.migrate.lint import planned_of, tables_of

    if not has_objects(conn):
        return {}
    names = tables_of(migrations)
    if not names:
        return {}
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)",
                         (f"{int(lock_timeout.total_seconds() * 1000)}ms",))
            return table_stats(conn, names, sample_from=sample_from(max_blocking),
                               planned=planned_of(migrations))
    except psycopg.errors.LockNotAvailable:
        return {}
