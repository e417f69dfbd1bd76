"""`dbops backup ...` for engine pgbackrest: the same commands and audit as dump backups, driving
pgBackRest (create, list, verify, restore to a point in time, prune)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from dbops.backup.pitr import PgBackRestBackups
from dbops.cli.common import _audited, _reporting
from dbops.cli.exits import EXIT_ERROR
from dbops.connect import mask
from dbops.errors import DbopsError
from dbops.render import backup_results
from dbops.units import format_age, format_size


def create(engine: PgBackRestBackups, kind: str, reason: str) -> None:
    with _audited(engine.plan, "backup create") as record:
        with _reporting(sys.stderr):
            made = engine.create(kind, reason)
        record.detail = (f"backup {made.label} created: pgbackrest {made.type}, "
                         f"{format_size(made.size)} of data, {format_size(made.repository_size)} in the "
                         f"repository, {(made.finished_at - made.started_at).total_seconds():.0f}s")
    click.echo(record.detail)


def listing(engine: PgBackRestBackups, fmt: str) -> None:
    info = engine.info()
    if fmt == "json":
        click.echo(json.dumps({"engine": "pgbackrest", "stanza": info.stanza,
                               "status": info.status,
                               "archive": {"min": info.archive_min, "max": info.archive_max},
                               "backups": [b.to_dict() for b in info.backups]}, indent=2))
        return
    now = datetime.now(UTC)
    lines = [f"stanza {info.stanza}: {info.status}; WAL archive "
             f"{info.archive_min or '-'} .. {info.archive_max or '-'}"]
    if not info.backups:
        lines.append("no backups yet")
    for b in info.backups:
        age = (now - b.started_at).total_seconds()
        lines.append(f"{b.label:<32} {b.type:<4} {format_age(age):>10} {format_size(b.size):>10} "
                     f"{format_size(b.repository_size):>10} {b.reason or '-':<16}"
                     f"{' ERROR' if b.error else ''}")
    click.echo("\n".join(lines))


def verify(engine: PgBackRestBackups, label: str | None, restore_test: bool) -> None:
    with _audited(engine.plan, "backup verify") as record:
        with _reporting(sys.stderr):
            found = engine.verify(label, restore_test=restore_test)
        lines = backup_results.pitr_verify(found)
        record.detail = "; ".join(lines)
    for line in lines:
        click.echo(mask(line), err=not found.ok)
    if not found.ok:
        sys.exit(EXIT_ERROR)


def restore(engine: PgBackRestBackups, to_time: str | None, into: str | None) -> None:
    if into is None:
        raise click.UsageError("--into DIR: the new data directory to restore into")
    moment = _moment(to_time) if to_time is not None else None
    with _audited(engine.plan, "backup restore") as record:
        record.detail = (f"point-in-time restore to {to_time or 'the end of the archive'} into "
                         f"{into}")
        with _reporting(sys.stderr):
            result = engine.restore(moment, Path(into))
        record.detail = "; ".join(backup_results.pitr_restore(result))
    click.echo("\n".join(mask(line) for line in backup_results.pitr_restore(result)))


def prune(engine: PgBackRestBackups, dry_run: bool) -> None:
    if dry_run:
        click.echo("\n".join(engine.prune(dry_run=True)))
        return
    with _audited(engine.plan, "backup prune") as record:
        lines = engine.prune(dry_run=False)
        record.detail = "; ".join(lines)
    click.echo("\n".join(lines))


def _moment(text: str) -> datetime:
    """A --to-time value: ISO 8601 with a time zone (a restore target without one is ambiguous)."""
    if len(text) > 64:
        raise DbopsError("--to-time: at most 64 characters")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DbopsError(f"--to-time {text!r}: not a timestamp; write e.g. "
                         "'2026-12-01 10:42:00+00'") from None
    if moment.tzinfo is None:
        raise DbopsError(f"--to-time {text!r} has no time zone: add one (e.g. +00 for UTC)")
    if moment > datetime.now(UTC):
        raise DbopsError(f"--to-time {text!r} is in the future: nothing is archived there yet")
    return moment
