"""`dbops migrate ...` and `dbops rollback`: the migration engine's commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from dbops.cli.common import (
    F,
    _audited,
    _backups,
    _confirm,
    _duration_option,
    _env_argument,
    _environment,
    _project,
    _reporting,
    fail,
    handle_errors,
    main,
)
from dbops.cli.exits import EXIT_ERROR
from dbops.config.source import display_path
from dbops.connect import mask

if TYPE_CHECKING:
    from dbops.migrate.engine import MigrationEngine, RunResult


def _engine(env: str | None) -> MigrationEngine:
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate.engine import MigrationEngine

    return MigrationEngine.from_plan(
        _environment(env),
        root=_project().root,
        notify=lambda message: click.echo(mask(message), err=True),
    )


def _directory(given: Path | None) -> Path:
    """--directory as typed (from the current directory), else the project's migrations/."""
    return given if given is not None else _project().root / "migrations"


@main.group()
def migrate() -> None:
    """Versioned SQL and YAML (expand/contract) migrations: create, hash, status, validate, up,
    complete, abort, baseline."""


@migrate.command("create")
@click.argument("description")
@click.option("--zero-downtime", is_flag=True, help="Mark the migration as written to run online.")
@click.option("--estimated-duration", help="How long it should take, e.g. '30 seconds' or 5m.")
@click.option(
    "--risk-level", type=click.Choice(["low", "medium", "high"]), default="low", show_default=True
)
@click.option("--requires", multiple=True, help="A version that must be applied first.")
@click.option(
    "--directory",
    type=click.Path(path_type=Path),
    help="The migrations directory (default: migrations/ in the project root).",
)
@handle_errors
def migrate_create(
    description: str,
    zero_downtime: bool,
    estimated_duration: str | None,
    risk_level: str,
    requires: tuple[str, ...],
    directory: Path | None,
) -> None:
    """Write a new migration from the template and update dbops.sum."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate.engine import create_migration

    path = create_migration(
        _directory(directory),
        description,
        zero_downtime=zero_downtime,
        estimated_duration=estimated_duration,
        risk=risk_level,
        requires=requires,
    )
    click.echo(f"created {display_path(path)}")


@migrate.command("hash")
@click.option(
    "--directory",
    type=click.Path(path_type=Path),
    help="The migrations directory (default: migrations/ in the project root).",
)
@handle_errors
def migrate_hash(directory: Path | None) -> None:
    """Write migrations/dbops.sum, the integrity file validate and up check."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate import files as migration_files

    folder = _directory(directory)
    migration_files.load(folder)
    click.echo(f"wrote {display_path(migration_files.write_sum(folder))}")


@migrate.command("status")
@_env_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def migrate_status(env: str | None, fmt: str) -> None:
    """Each migration: version, name, state (applied, pending, modified, missing-file, partial)."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate import listing

    engine = _engine(env)
    rows = engine.status()
    expansions = engine.expansions()
    if fmt == "json":
        click.echo(listing.status_json(rows, expansions))
    else:
        click.echo("\n".join(listing.status_table(rows, color=sys.stdout.isatty())))
        click.echo("\n".join(listing.expansion_lines(expansions)))


@migrate.command("validate")
@_env_argument
@handle_errors
def migrate_validate(env: str | None) -> None:
    """Check dbops.sum, SQL syntax, checksums against the history and dependencies."""
    problems = _engine(env).validate_migrations()
    for problem in problems:
        fail(problem)
    if problems:
        sys.exit(EXIT_ERROR)
    click.echo("migrations valid")


@migrate.command("up")
@_env_argument
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
@click.option(
    "--skip-backup", is_flag=True, help="Migrate without the policy's before-migrate backup."
)
@handle_errors
def migrate_up(
    env: str | None,
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
    with _audited(engine.plan, "migrate up") as record:
        if skip_backup:
            record.detail = "before-migrate backup skipped (--skip-backup)"
        with _reporting():
            result = engine.run_migrations(
                target=target,
                lock_wait=wait,
                allow_out_of_order=allow_out_of_order,
                skip_backup=skip_backup,
            )
        summary = (_versions(result, "applied") if result.executions
                   else "nothing to apply: the database is up to date")
        record.detail = "; ".join(filter(None, (summary, record.detail)))
    click.echo(summary)


def _finishing(command: F) -> F:
    """The arguments `migrate complete` and `migrate abort` share."""
    for option in reversed((
        _env_argument,
        click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
        click.option("--lock-wait",
                     help="How long to wait for another runner (default: the plan's)."),
        handle_errors,
    )):
        command = option(command)
    return command


@migrate.command("complete")
@_finishing
def migrate_complete(env: str | None, yes: bool, lock_wait: str | None) -> None:
    """Contract phase of expand/contract migrations: drop the old columns and triggers, rename
    the new columns into place. Old clients (base schema) must have moved to the version schema."""
    _finish_expansions(env, "complete", yes, lock_wait)


@migrate.command("abort")
@_finishing
def migrate_abort(env: str | None, yes: bool, lock_wait: str | None) -> None:
    """Undo expand/contract migrations in flight: drop the new columns, triggers and version
    schema; the old shape was never changed. The migrations become pending again."""
    _finish_expansions(env, "abort", yes, lock_wait)


def _finish_expansions(env: str | None, phase: Literal["complete", "abort"], yes: bool,
                       lock_wait: str | None) -> None:
    """Complete or abort the expansions in flight, confirmed and audited."""
    engine = _engine(env)
    dropped = "old" if phase == "complete" else "new"
    _confirm(f"{phase} the expansions in flight ({dropped} columns are dropped)",
             engine.plan.environment, yes)
    finish = engine.complete_expansion if phase == "complete" else engine.abort_expansion
    with _audited(engine.plan, f"migrate {phase}") as record:
        done = finish(lock_wait=_duration_option(lock_wait))
        verb = "completed" if phase == "complete" else "aborted"
        record.detail = (f"{verb}: {', '.join(m.version for m in done)}" if done
                         else "no expansion in flight")
    click.echo(record.detail)


@migrate.command("lint")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, exists=True, dir_okay=False,
                                                   allow_dash=True))
@click.option("--env", help="Plan whose live tables turn hazards into estimates (and lint policy).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text")
@handle_errors
def migrate_lint(files: tuple[Path, ...], env: str | None, fmt: str) -> None:
    """Hazards of each statement (locks, rewrites, destructive changes); exit 1 at fail_on.
    FILES may be any SQL files (a file without '-- migrate:up' is one up section) or - for
    standard input; none: every migration of the project."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate import files as migration_files
    from dbops.migrate.lint import lint
    from dbops.render import lint_report

    chosen = [migration_files.parse_any(Path("<stdin>"), sys.stdin.read()) if str(f) == "-"
              else migration_files.parse_any(f) for f in files]
    if env is not None:
        report = _engine(env).lint(chosen or None)
    else:
        migrations = chosen or list(migration_files.load(_directory(None)))
        report = lint(migrations, zero_downtime=True, fail_on="error", downs=True)
    render = {"sarif": lint_report.sarif, "json": lint_report.json, "text": lint_report.text}
    click.echo(render[fmt](report))
    if report.failing():
        sys.exit(EXIT_ERROR)


@migrate.command("explain")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--env", help="Plan whose live tables give the estimates (and zero-downtime policy).")
@handle_errors
def migrate_explain(file: Path, env: str | None) -> None:
    """The exact steps a migration will run, their locks and, with --env, live estimates."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate import files as migration_files
    from dbops.migrate.lint import explain
    from dbops.migrate.runner import prepare

    if env is not None:
        click.echo("\n".join(_engine(env).explain(file)))
    else:
        migration = migration_files.parse(file)
        click.echo("\n".join(explain(prepare(migration, "up", zero_downtime=True))))


@migrate.command("baseline")
@_env_argument
@click.option("--version", "version", help="Newest version the database has.")
@click.option("--from-database", is_flag=True,
              help="Write the first migration from the live schema (pg_dump --schema-only), "
              "checked by rebuilding it in a scratch database, and record it as applied.")
@click.option("--yes", is_flag=True)
@handle_errors
def migrate_baseline(env: str | None, version: str | None, from_database: bool, yes: bool) -> None:
    """Adopt an existing database: record migrations up to VERSION as applied, run nothing."""
    if (version is None) != from_database:
        raise click.UsageError("give --version VERSION or --from-database (one of them)")
    engine = _engine(env)
    if from_database:
        _confirm("baseline from the live schema", engine.plan.environment, yes)
        with _audited(engine.plan, "migrate baseline") as record:
            migration = engine.baseline_from_database()
            record.detail = f"{migration.version} written from the live schema, recorded as applied"
        click.echo(f"wrote {migration.file} from the live schema (rebuilds it exactly) and "
                   f"recorded it as applied")
        return
    if version is None:
        raise click.UsageError("give --version VERSION or --from-database (one of them)")
    _confirm(f"baseline at {version}", engine.plan.environment, yes)
    with _audited(engine.plan, "migrate baseline") as record:
        adopted = engine.baseline(version)
        record.detail = f"baselined at {version}: {len(adopted)} migration(s) recorded as applied"
    click.echo(record.detail)


@main.command()
@_env_argument
@click.option("--count", type=int, help="How many of the newest migrations to roll back.")
@click.option("--to", "to", help="Roll back every migration applied after this version.")
@click.option(
    "--emergency",
    is_flag=True,
    help="Restore the latest before-migrate backup over the database instead "
    "(when down migrations cannot help); a safety backup is taken first.",
)
@click.option("--dry-run", is_flag=True, help="Print the exact statements and steps; run nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--lock-wait", help="How long to wait for another runner (default: the plan's).")
@handle_errors
def rollback(
    env: str | None,
    count: int | None,
    to: str | None,
    emergency: bool,
    dry_run: bool,
    yes: bool,
    lock_wait: str | None,
) -> None:
    """Run down sections newest first (the last one by default), or with --emergency restore
    the latest before-migrate backup."""
    if emergency:
        if count is not None or to is not None:
            raise click.UsageError("--emergency restores a backup: it takes no --count or --to")
        backups = _backups(env)
        if not dry_run:
            _confirm(
                "restore the latest before-migrate backup over the database",
                backups.plan.environment,
                yes,
            )
        if dry_run:
            restored = backups.emergency_rollback(dry_run=True)
        else:
            with _audited(backups.plan, "rollback --emergency", replaces_database=True) as record:
                restored = backups.emergency_rollback(dry_run=False)
                record.detail = "; ".join(restored.lines())
        click.echo("\n".join(mask(line) for line in restored.lines()))
        return
    engine = _engine(env)
    if dry_run:
        preview = engine.rollback_migrations(count=count, to=to, dry_run=True)
        click.echo("\n".join(report_listing(preview)))
        return
    _confirm("roll back migrations", engine.plan.environment, yes)
    with _audited(engine.plan, "rollback") as record:
        with _reporting():
            result = engine.rollback_migrations(
                count=count, to=to, lock_wait=_duration_option(lock_wait)
            )
        record.detail = (_versions(result, "rolled back") if result.executions
                         else "nothing to roll back")
    click.echo(record.detail)


def _versions(result: RunResult, verb: str) -> str:
    """`3 migration(s) applied: 20250101000001, ..., 20250101000003` (the first and last two)."""
    versions = [e.migration.version for e in result.executions]
    shown = versions if len(versions) <= 4 else [*versions[:2], "...", *versions[-2:]]
    return f"{len(versions)} migration(s) {verb}: {', '.join(shown)}"


def report_listing(result: RunResult) -> list[str]:
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.migrate.listing import dry_run_listing

    return dry_run_listing(result)
