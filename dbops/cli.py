"""The dbops command line: parse, call one pipeline function, render, pick the exit code. No logic."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import psycopg

from dbops import __version__
from dbops.config.load import plan_files, resolve_plan_path, validate_file
from dbops.config.source import display_path
from dbops.config.units import parse_duration
from dbops.connect import mask
from dbops.errors import DbopsError, PlanError

if TYPE_CHECKING:
    from dbops.backup import BackupManager
    from dbops.changes import ChangeSet
    from dbops.config.model import Plan
    from dbops.execute import ApplyReport
    from dbops.migrate.engine import MigrationEngine, Progress, RunResult
    from dbops.migrate.source import Migration

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def fail(message: str) -> None:
    click.echo(mask(message), err=True)


def handle_errors(func: F) -> F:
    """Turn dbops errors into masked one-line messages and exit code 1; nothing else catches."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlanError as exc:
            for problem in exc.problems:
                fail(str(problem))
            sys.exit(EXIT_ERROR)
        except DbopsError as exc:
            fail(f"error: {exc}")
            sys.exit(EXIT_ERROR)
        except psycopg.Error as exc:  # a server refusal dbops did not anticipate: still one line
            reason = (exc.diag.message_primary or str(exc)).splitlines()[0]
            fail(f"error: {reason} (SQLSTATE {exc.sqlstate or 'unknown'})")
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbops")
def main() -> None:
    """Declarative PostgreSQL operations: validate, plan, apply, drift, migrate, back up, monitor."""


@main.command()
@click.argument("plans", nargs=-1)
@handle_errors
def validate(plans: tuple[str, ...]) -> None:
    """Check plan files (every file in plans/ when none is named): exit 1 on any problem."""
    root = Path.cwd()
    paths = [resolve_plan_path(ref, root) for ref in plans] if plans else plan_files(root)
    if not paths:
        raise DbopsError("no plan files in plans/")
    problems = [p for path in paths for p in validate_file(path, root=root)]
    for problem in problems:
        fail(str(problem))
    if problems:
        sys.exit(EXIT_ERROR)
    click.echo(f"{len(paths)} plan(s) valid: {', '.join(display_path(p) for p in paths)}")


def _engine(env: str) -> MigrationEngine:
    from dbops.migrate.engine import MigrationEngine

    return MigrationEngine.from_plan(
        env, notify=lambda message: click.echo(mask(message), err=True)
    )


def _confirm(action: str, environment: str, yes: bool) -> None:
    """Changing a database needs --yes, or a yes at the prompt (development needs neither)."""
    if yes or environment == "development":
        return
    if not sys.stdin.isatty():
        raise DbopsError(
            f"refusing to {action} on {environment} without --yes (no terminal to ask)"
        )
    if not click.confirm(f"{action} on {environment}?", default=False):
        raise DbopsError("cancelled")


@contextmanager
def _progress(verb: str, total_hint: str) -> Iterator[Progress]:
    """Live progress on a terminal, one plain line per migration otherwise."""
    if not sys.stdout.isatty():

        def line(done: int, total: int, migration: Migration, ms: float) -> None:
            click.echo(
                f"{verb} {migration.version} {migration.name} ({ms:.0f} ms) [{done}/{total}]"
            )

        yield line
        return
    from rich.progress import Progress as Bar

    with Bar(transient=False) as bar:
        task = bar.add_task(total_hint, total=None)

        def advance(done: int, total: int, migration: Migration, ms: float) -> None:
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"{verb} {migration.version} {migration.name}",
            )

        yield advance


def _duration_option(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.group()
def migrate() -> None:
    """Versioned SQL migrations: create, hash, status, validate, up, baseline."""


@migrate.command("create")
@click.argument("description")
@click.option("--zero-downtime", is_flag=True, help="Mark the migration as written to run online.")
@click.option("--estimated-duration", help="How long it should take, e.g. '30 seconds' or 5m.")
@click.option(
    "--risk-level", type=click.Choice(["low", "medium", "high"]), default="low", show_default=True
)
@click.option("--requires", multiple=True, help="A version that must be applied first.")
@click.option(
    "--directory", type=click.Path(path_type=Path), default=Path("migrations"), show_default=True
)
@handle_errors
def migrate_create(
    description: str,
    zero_downtime: bool,
    estimated_duration: str | None,
    risk_level: str,
    requires: tuple[str, ...],
    directory: Path,
) -> None:
    """Write a new migration from the template and update dbops.sum."""
    from dbops.migrate.engine import create_migration

    path = create_migration(
        directory,
        description,
        zero_downtime=zero_downtime,
        estimated_duration=estimated_duration,
        risk=risk_level,
        requires=requires,
    )
    click.echo(f"created {display_path(path)}")


@migrate.command("hash")
@click.option(
    "--directory", type=click.Path(path_type=Path), default=Path("migrations"), show_default=True
)
@handle_errors
def migrate_hash(directory: Path) -> None:
    """Write migrations/dbops.sum, the integrity file validate and up check."""
    from dbops.migrate import source

    source.load(directory)
    click.echo(f"wrote {display_path(source.write_sum(directory))}")


@migrate.command("status")
@click.argument("env")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def migrate_status(env: str, fmt: str) -> None:
    """Each migration: version, name, state (applied, pending, modified, missing-file, partial)."""
    from dbops.migrate import report

    rows = _engine(env).get_migration_status()
    if fmt == "json":
        click.echo(report.status_json(rows))
    else:
        click.echo("\n".join(report.status_table(rows, color=sys.stdout.isatty())))


@migrate.command("validate")
@click.argument("env")
@handle_errors
def migrate_validate(env: str) -> None:
    """Check dbops.sum, SQL syntax, checksums against the history and dependencies."""
    problems = _engine(env).validate_migrations()
    for problem in problems:
        fail(problem)
    if problems:
        sys.exit(EXIT_ERROR)
    click.echo("migrations valid")


@migrate.command("up")
@click.argument("env")
@click.option("--target", help="Version to migrate to (default: the plan's migrations.target).")
@click.option("--dry-run", is_flag=True, help="Print the exact statements and steps; run nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--lock-wait", help="How long to wait for another runner (default: the plan's).")
@click.option(
    "--allow-out-of-order",
    is_flag=True,
    default=None,
    help="Apply a version older than the newest applied one.",
)
@click.option("--skip-backup", is_flag=True,
              help="Migrate without the policy's before-migrate backup.")
@handle_errors
def migrate_up(
    env: str,
    target: str | None,
    dry_run: bool,
    yes: bool,
    lock_wait: str | None,
    allow_out_of_order: bool | None,
    skip_backup: bool,
) -> None:
    """Apply pending migrations."""
    engine = _engine(env)
    wait = _duration_option(lock_wait)
    if dry_run:
        preview = engine.run_migrations(
            target=target, dry_run=True, allow_out_of_order=allow_out_of_order
        )
        click.echo("\n".join(report_listing(preview)))
        return
    _confirm("apply pending migrations", engine.plan.environment, yes)
    with _progress("applied", "applying migrations") as progress:
        result = engine.run_migrations(
            target=target, lock_wait=wait, progress=progress,
            allow_out_of_order=allow_out_of_order, skip_backup=skip_backup,
        )
    click.echo(
        f"{len(result.executions)} migration(s) applied"
        if result.executions
        else "nothing to apply: the database is up to date"
    )


@migrate.command("lint")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--env", help="Plan whose live tables turn hazards into estimates (and lint policy).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def migrate_lint(files: tuple[Path, ...], env: str | None, fmt: str) -> None:
    """Hazards of each statement (locks, rewrites, destructive changes); exit 1 at fail_on."""
    from dbops.migrate import source
    from dbops.migrate.lint import lint

    if env is not None:
        report = _engine(env).lint(list(files) or None)
    else:
        migrations = [source.parse(f) for f in files] if files else list(
            source.load(Path("migrations")))
        report = lint(migrations, zero_downtime=True, fail_on="error")
    click.echo(report.to_json() if fmt == "json" else "\n".join(report.lines()))
    if report.failing():
        sys.exit(EXIT_ERROR)


@migrate.command("explain")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--env", help="Plan whose live tables give the estimates (and zero-downtime policy).")
@handle_errors
def migrate_explain(file: Path, env: str | None) -> None:
    """The exact steps a migration will run, their locks and, with --env, live estimates."""
    from dbops.migrate import source
    from dbops.migrate.lint import explain
    from dbops.migrate.runner import prepare

    if env is not None:
        click.echo("\n".join(_engine(env).explain(file)))
    else:
        migration = source.parse(file)
        click.echo("\n".join(explain(prepare(migration, "up", zero_downtime=True))))


@migrate.command("baseline")
@click.argument("env")
@click.option("--version", "version", required=True, help="Newest version the database has.")
@click.option("--yes", is_flag=True)
@handle_errors
def migrate_baseline(env: str, version: str, yes: bool) -> None:
    """Adopt an existing database: record migrations up to VERSION as applied, run nothing."""
    engine = _engine(env)
    _confirm(f"baseline at {version}", engine.plan.environment, yes)
    adopted = engine.baseline(version)
    click.echo(f"baselined at {version}: {len(adopted)} migration(s) recorded as applied")


@main.command()
@click.argument("env")
@click.option("--count", type=int, help="How many of the newest migrations to roll back.")
@click.option("--to", "to", help="Roll back every migration applied after this version.")
@click.option("--emergency", is_flag=True,
              help="Restore the latest before-migrate backup over the database instead "
                   "(when down migrations cannot help); a safety backup is taken first.")
@click.option("--dry-run", is_flag=True, help="Print the exact statements and steps; run nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--lock-wait", help="How long to wait for another runner (default: the plan's).")
@handle_errors
def rollback(
    env: str, count: int | None, to: str | None, emergency: bool, dry_run: bool, yes: bool,
    lock_wait: str | None,
) -> None:
    """Run down sections newest first (the last one by default), or with --emergency restore
    the latest before-migrate backup."""
    if emergency:
        if count is not None or to is not None:
            raise click.UsageError("--emergency restores a backup: it takes no --count or --to")
        backups = _backups(env)
        if not dry_run:
            _confirm("restore the latest before-migrate backup over the database",
                     backups.plan.environment, yes)
        restored = backups.emergency_rollback(dry_run=dry_run)
        click.echo("\n".join(mask(line) for line in restored.lines()))
        return
    engine = _engine(env)
    if dry_run:
        preview = engine.rollback_migrations(count=count, to=to, dry_run=True)
        click.echo("\n".join(report_listing(preview)))
        return
    _confirm("roll back migrations", engine.plan.environment, yes)
    with _progress("rolled back", "rolling back") as progress:
        result = engine.rollback_migrations(
            count=count, to=to, progress=progress, lock_wait=_duration_option(lock_wait)
        )
    click.echo(
        f"{len(result.executions)} migration(s) rolled back"
        if result.executions
        else "nothing to roll back"
    )


def report_listing(result: RunResult) -> list[str]:
    from dbops.migrate.report import dry_run_listing

    return dry_run_listing(result)


def _load(env: str, overrides: tuple[str, ...]) -> Plan:
    from dbops.config.load import load_plan

    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: use --set key.path=value", param_hint="--set")
        pairs[key] = value
    return load_plan(env, overrides=pairs)


_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a plan setting (highest precedence), e.g. pool.max_size=30.")


def _render(changeset: ChangeSet, fmt: str) -> str:
    from dbops import render

    if fmt == "json":
        return render.json(changeset)
    if fmt == "markdown":
        return render.markdown(changeset)
    return render.text(changeset, color=sys.stdout.isatty())


@main.command()
@click.argument("env")
@click.option("--diff", "--detailed-exitcode", "diff", is_flag=True,
              help="Exit 2 when there are changes (the pull-request check).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option("--out", type=click.Path(path_type=Path), help="Save the plan to apply it later.")
@_set_option
@handle_errors
def plan(env: str, diff: bool, fmt: str, out: Path | None, overrides: tuple[str, ...]) -> None:
    """Show what apply would change; never writes (one read-only transaction)."""
    from dbops import pipeline

    planned = pipeline.plan(_load(env, overrides))
    click.echo(_render(planned.changeset, fmt))
    if out is not None:
        out.write_text(planned.changeset.to_json() + "\n", encoding="utf-8")
        click.echo(f"saved the plan to {display_path(out)}", err=True)
    if diff and not planned.changeset.empty:
        sys.exit(EXIT_CHANGES)


@main.command()
@click.argument("env")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--plan-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Apply a plan saved with `dbops plan --out`, if still fresh.")
@click.option("--dry-run", is_flag=True, help="Print the exact pyinfra operations; run nothing.")
@click.option("--allow-restart", is_flag=True, help="Apply settings that need a restart.")
@click.option("--skip-backup", is_flag=True,
              help="Migrate without the policy's before-migrate backup (recorded in the audit).")
@_set_option
@handle_errors
def apply(env: str, yes: bool, plan_file: Path | None, dry_run: bool, allow_restart: bool,
          skip_backup: bool, overrides: tuple[str, ...]) -> None:
    """Plan, confirm, then execute through pyinfra with health gates and automatic rollback."""
    from dbops import pipeline
    from dbops.changes import ChangeSet

    the_plan = _load(env, overrides)
    planned = pipeline.plan(the_plan, command="apply")
    changeset = planned.changeset
    if plan_file is not None:
        try:
            changeset = ChangeSet.from_json(plan_file.read_text(encoding="utf-8"))
        except (ValueError, TypeError, KeyError) as exc:
            raise DbopsError(f"{display_path(plan_file)}: not a dbops plan file: {exc}") from None
        if changeset.environment != the_plan.environment:
            raise DbopsError(f"{display_path(plan_file)} was made for {changeset.environment}, "
                             f"not {the_plan.environment}")
        pipeline.check_fresh(changeset, planned.changeset)
    click.echo(_render(changeset, "text"))
    if changeset.empty:
        return
    if dry_run:
        for op in pipeline.dry_run(the_plan, changeset, allow_restart=allow_restart):
            kind = "server.shell" if op.run is None else "python.call"
            click.echo(mask(f"{kind} [{op.target.host}] {op.name}"))
            for command in op.commands:
                click.echo(mask(f"    {command}"))
        return
    _confirm(f"apply these changes to {the_plan.environment}", the_plan.environment, yes)
    report = pipeline.apply(the_plan, changeset, planned.live, allow_restart=allow_restart,
                            skip_backup=skip_backup,
                            notify=lambda message: click.echo(mask(message)))
    for line in _report_lines(report):
        click.echo(mask(line), err=report.result != "applied")
    if report.result != "applied":
        sys.exit(EXIT_ERROR)


def _report_lines(report: ApplyReport) -> list[str]:
    lines = [f"apply {report.result}" + (f": {report.reason}" if report.reason else "")]
    lines += [f"  applied: {item}" for item in report.applied]
    lines += [f"  rolled back: {item}" for item in report.rolled_back]
    lines += [f"  skipped: {item} (needs --allow-restart)" for item in report.skipped]
    return lines


@main.command()
@click.argument("env")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@_set_option
@handle_errors
def drift(env: str, fmt: str, overrides: tuple[str, ...]) -> None:
    """Out-of-band drift (exit 2) vs pending configuration (exit 3); 0 in sync. Read-only."""
    from dbops import pipeline

    report = pipeline.drift(_load(env, overrides))
    click.echo(report.to_json() if fmt == "json" else "\n".join(report.lines()))
    sys.exit(report.exit_code)


@main.command()
@click.argument("env")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--watch", is_flag=True,
              help="Check again every few seconds (a live table on a terminal) until Ctrl-C.")
@click.option("--serve", "address", metavar="HOST:PORT",
              help="Monitor (alerts, recovery) and serve /health, /ready and /metrics, "
                   "e.g. 127.0.0.1:9187.")
@_set_option
@handle_errors
def health(env: str, fmt: str, watch: bool, address: str | None,
           overrides: tuple[str, ...]) -> None:
    """Check the database: exit 0 healthy, 2 warning, 3 critical, 1 could not check."""
    from dbops.health import command

    the_plan = _load(env, overrides)

    def echo(line: str) -> None:
        click.echo(mask(line))

    if address is not None:
        if watch:
            raise DbopsError("--serve runs until stopped: it does not go with --watch")
        sys.exit(command.serve(the_plan, address, echo=echo))
    sys.exit(command.run_health(the_plan, fmt, watch, echo=echo))


def _backups(env: str) -> BackupManager:
    from dbops.backup import BackupManager

    return BackupManager.from_plan(
        env, notify=lambda message: click.echo(mask(message), err=True)
    )


@main.group()
def backup() -> None:
    """pg_dump backups under the plan's policy: create, list, verify, restore, prune."""


@backup.command("create")
@click.argument("env")
@click.option("--reason", default="manual", show_default=True,
              help="Why: manual, scheduled, before-migrate, or a short text of your own.")
@handle_errors
def backup_create(env: str, reason: str) -> None:
    """Dump the database into a new backup (written atomically, with its manifest)."""
    from dbops.backup.report import size

    manifest = _backups(env).create(reason=reason)
    click.echo(f"backup {manifest.id} created: {size(manifest.size)}, "
               f"migration {manifest.migration_version or 'none'}, {manifest.duration_s:.1f}s")


@backup.command("list")
@click.argument("env")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def backup_list(env: str, fmt: str) -> None:
    """Backups, oldest first: id, age, size, reason, migration version, verified."""
    from datetime import UTC, datetime

    from dbops.backup import report

    backups, now = _backups(env).list(), datetime.now(UTC)
    click.echo(report.list_json(backups, now) if fmt == "json"
               else "\n".join(report.list_table(backups, now)))


@backup.command("verify")
@click.argument("env")
@click.argument("backup_id", metavar="ID")
@click.option("--restore-test", is_flag=True,
              help="Also restore into a scratch database, compare row counts, time it.")
@handle_errors
def backup_verify(env: str, backup_id: str, restore_test: bool) -> None:
    """Check every file's SHA-256 and pg_restore --list; exit 1 when the backup is damaged."""
    result = _backups(env).verify(backup_id, restore_test=restore_test)
    for line in result.lines():
        click.echo(mask(line), err=not result.ok)
    if not result.ok:
        sys.exit(EXIT_ERROR)


@backup.command("restore")
@click.argument("env")
@click.argument("backup_id", metavar="ID")
@click.option("--into", help="The new database to restore into (default <db>_restore_<id>).")
@click.option("--yes", is_flag=True,
              help="Restore over the live database (a safety backup is taken first).")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@handle_errors
def backup_restore(env: str, backup_id: str, into: str | None, yes: bool, dry_run: bool) -> None:
    """Restore into a new database; over the live database only with --yes."""
    result = _backups(env).restore(backup_id, into=into, over_live=yes and into is None,
                                   dry_run=dry_run)
    click.echo("\n".join(mask(line) for line in result.lines()))


@backup.command("prune")
@click.argument("env")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@handle_errors
def backup_prune(env: str, dry_run: bool) -> None:
    """Delete what retention no longer keeps; never the newest verified backup."""
    click.echo("\n".join(_backups(env).prune(dry_run=dry_run).lines()))


@main.group()
def local() -> None:
    """The embedded development database under .dbops/ (what plans/development.yaml uses)."""


def _print_status(action: str) -> None:
    from dbops import local as embedded

    cluster = embedded.development_cluster(Path.cwd())
    status = getattr(cluster, action)()
    if status.running:
        click.echo(
            f"running: PostgreSQL {status.version} on 127.0.0.1:{status.port} "
            f"(pid {status.pid}, data {status.data_dir})"
        )
    else:
        state = "stopped" if status.initialized else "not created"
        click.echo(f"{state}: {status.data_dir}")


@local.command("up")
@handle_errors
def local_up() -> None:
    """Create (first time) and start the development cluster; does nothing when it runs."""
    from dbops import local as embedded
    from dbops.config.load import load_plan

    _print_status("up")
    plan = load_plan("development")
    if embedded.development_cluster(Path.cwd()).ensure_database(plan.database.name):
        click.echo(f"created database {plan.database.name}")


@local.command("down")
@handle_errors
def local_down() -> None:
    """Stop the development cluster (its data stays under .dbops/)."""
    _print_status("down")


@local.command("status")
@handle_errors
def local_status() -> None:
    """Show whether the development cluster runs, where, and which version."""
    _print_status("status")
