"""`dbops backup ...`: the backup policy's commands."""

from __future__ import annotations

import sys

import click

from dbops.cli import pitr
from dbops.cli.common import (
    _audited,
    _backups,
    _confirm,
    _env_argument,
    _reporting,
    handle_errors,
    main,
)
from dbops.cli.exits import EXIT_ERROR
from dbops.connect import mask
from dbops.errors import UsageError


@main.group()
def backup() -> None:
    """Backups under the plan's policy (pg_dump, or pgBackRest with point-in-time recovery):
    create, list, verify, restore, prune."""


@backup.command("create")
@_env_argument
@click.option(
    "--reason",
    default="manual",
    show_default=True,
    help="Why: manual, scheduled, before-migrate, or a short text of your own.",
)
@click.option("--type", "kind", type=click.Choice(["full", "diff", "incr"]), default="full",
              show_default=True, help="engine pgbackrest: the kind of backup.")
@handle_errors
def backup_create(env: str | None, reason: str, kind: str) -> None:
    """Dump the database into a new backup (written atomically, with its manifest); with engine
    pgbackrest, a pgBackRest backup of --type."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.units import format_size

    backups = _backups(env)
    if (engine := backups.pgbackrest) is not None:
        pitr.create(engine, kind, reason)
        return
    with _audited(backups.plan, "backup create") as record:
        with _reporting(sys.stderr):
            manifest = backups.create(reason=reason)
        record.detail = (f"backup {manifest.id} created: {format_size(manifest.size)}, "
                         f"migration {manifest.migration_version or 'none'}, "
                         f"{manifest.duration_s:.1f}s")
    click.echo(record.detail)


@backup.command("list")
@_env_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def backup_list(env: str | None, fmt: str) -> None:
    """Backups, oldest first: id, age, size, reason, migration version, verified; a backup whose
    manifest is damaged is listed as CORRUPT with the reason."""
    from datetime import UTC, datetime

    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.render import backup_results

    backups = _backups(env)
    if (engine := backups.pgbackrest) is not None:
        pitr.listing(engine, fmt)
        return
    found, now = backups.catalog(), datetime.now(UTC)
    click.echo(
        backup_results.list_json(found.backups, now, found.damaged)
        if fmt == "json"
        else "\n".join(backup_results.list_table(found.backups, now, found.damaged))
    )


@backup.command("verify")
@click.argument("env")
@click.argument("backup_id", metavar="ID", required=False)
@click.option(
    "--restore-test",
    is_flag=True,
    help="Also restore into a scratch database, compare row counts, time it.",
)
@handle_errors
def backup_verify(env: str, backup_id: str, restore_test: bool) -> None:
    """Check every file's SHA-256 and pg_restore --list; exit 1 when the backup is damaged.
    Engine pgbackrest: pgbackrest verify (of set ID, or the whole repository); --restore-test
    restores to the end of the archive into a scratch directory and reports RTO and RPO."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.render import backup_results

    backups = _backups(env)
    if (engine := backups.pgbackrest) is not None:
        pitr.verify(engine, backup_id, restore_test)
        return
    if backup_id is None:
        raise click.UsageError("missing argument ID: the backup to verify")
    with _reporting(sys.stderr):
        result = backups.verify(backup_id, restore_test=restore_test)
    for line in backup_results.verify(result):
        click.echo(mask(line), err=not result.ok)
    if not result.ok:
        sys.exit(EXIT_ERROR)


@backup.command("restore")
@click.argument("env")
@click.argument("backup_id", metavar="ID", required=False)
@click.option("--into", help="The new database to restore into (default <db>_restore_<id>); "
              "engine pgbackrest: the new data directory.")
@click.option("--to-time", "to_time", metavar="TIMESTAMP",
              help="engine pgbackrest: recover to this moment (with a time zone), e.g. "
                   "'2026-12-01 10:42:00+00'; default the end of the archived WAL.")
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the live database with the backup (a safety backup is taken first).",
)
@click.option("--yes", is_flag=True, help="Do not ask before --replace.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@handle_errors
def backup_restore(env: str, backup_id: str | None, into: str | None, replace: bool, yes: bool,
                   dry_run: bool, to_time: str | None) -> None:
    """Restore into a new database; over the live database only with --replace. Engine
    pgbackrest: a point-in-time restore into a new data directory, started on a free port."""
    backups = _backups(env)
    if (engine := backups.pgbackrest) is not None:
        if replace or backup_id is not None or dry_run:
            raise click.UsageError("engine pgbackrest restores to a point in time into a new "
                                   "data directory: restore ENV [--to-time TS] --into DIR")
        pitr.restore(engine, to_time, into)
        return
    if backup_id is None:
        raise click.UsageError("missing argument ID: the backup to restore")
    if to_time is not None:
        raise click.UsageError("--to-time needs engine pgbackrest (point-in-time recovery); "
                               "pg_dump backups restore to the moment they were taken")
    live = backups.plan.database.name
    if replace and into is not None and into != live:
        raise click.UsageError("--replace restores over the live database: it takes no --into")
    if not replace and into == live:
        raise UsageError(f"{live} is the live database: replacing it needs --replace "
                         "(a safety backup is taken first)")
    if yes and not replace and into is None:
        raise UsageError(f"--yes only skips the question: restoring over the live database "
                         f"{live} needs --replace; without it, restore goes into a new "
                         "database (--into NAME, default <db>_restore_<id>)")
    if dry_run:
        result = backups.restore(backup_id, into=into, over_live=replace, dry_run=True)
        click.echo("\n".join(mask(line) for line in result.lines()))
        return
    if replace:
        _confirm(f"replace the live database {live} with backup {backup_id}",
                 backups.plan.environment, yes)
    with _audited(backups.plan, "backup restore", replaces_database=replace) as record:
        record.detail = f"backup {backup_id} " + (
            "over the live database" if replace else f"into {into or 'a new database'}")
        with _reporting(sys.stderr):
            result = backups.restore(backup_id, into=into, over_live=replace, dry_run=False)
        record.detail = "; ".join(result.lines())
    click.echo("\n".join(mask(line) for line in result.lines()))


@backup.command("prune")
@_env_argument
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@handle_errors
def backup_prune(env: str | None, dry_run: bool) -> None:
    """Delete what retention no longer keeps; never the newest verified backup. Engine
    pgbackrest: pgbackrest expire under the plan's retention."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.render import backup_results

    backups = _backups(env)
    if (engine := backups.pgbackrest) is not None:
        pitr.prune(engine, dry_run)
        return
    if dry_run:
        click.echo("\n".join(backup_results.prune(backups.prune(dry_run=True))))
        return
    with _audited(backups.plan, "backup prune") as record:
        lines = backup_results.prune(backups.prune(dry_run=False))
        record.detail = "; ".join(lines)
    click.echo("\n".join(lines))
