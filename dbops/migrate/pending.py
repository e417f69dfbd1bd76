"""Which migrations to apply or revert, and the status of each: pure functions of the files
(MigrationSet) and the history (AppliedMigration rows). No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dbops.errors import MigrationError
from dbops.migrate.files import Migration, MigrationSet
from dbops.migration_history import AppliedMigration, JournalEntry

State = Literal["applied", "pending", "modified", "missing-file", "partial"]


@dataclass(frozen=True)
class MigrationStatus:
    version: str
    name: str
    state: State
    applied_at: datetime | None
    duration_ms: float | None
    file: str | None
    detail: str = ""


def status(
    source: MigrationSet, applied: list[AppliedMigration], journal: list[JournalEntry]
) -> list[MigrationStatus]:
    """One row per migration known to the files or the history, in version order."""
    done = {a.version: a for a in applied}
    partial = {j.version for j in journal}
    rows = []
    for version in sorted({m.version for m in source} | set(done)):
        migration, record = source.get(version), done.get(version)
        if record is None:
            assert migration is not None
            state: State = "partial" if version in partial else "pending"
            detail = "interrupted: the next run resumes it" if state == "partial" else ""
            rows.append(
                MigrationStatus(version, migration.name, state, None, None, migration.file, detail)
            )
            continue
        if migration is None:
            rows.append(
                MigrationStatus(
                    version,
                    record.name,
                    "missing-file",
                    record.applied_at,
                    record.duration_ms,
                    None,
                    "applied, but no file has it",
                )
            )
            continue
        state = "applied" if migration.checksum == record.checksum else "modified"
        detail = _modified(migration, record) if state == "modified" else ""
        rows.append(
            MigrationStatus(
                version,
                migration.name,
                state,
                record.applied_at,
                record.duration_ms,
                migration.file,
                detail,
            )
        )
    return rows


def _modified(migration: Migration, record: AppliedMigration) -> str:
    return (
        f"{migration.file} was modified after it was applied "
        f"(applied sha256:{record.checksum[:12]}, file sha256:{migration.checksum[:12]})"
    )


def check_history(source: MigrationSet, applied: list[AppliedMigration]) -> None:
    """Refuse when an applied migration's file changed or disappeared."""
    for record in applied:
        migration = source.get(record.version)
        if migration is None:
            raise MigrationError(
                f"applied migration {record.version} {record.name} has no file in "
                f"{source.directory.name}/ (restore it, or baseline the database)"
            )
        if record.execution_mode != "baseline" and migration.checksum != record.checksum:
            raise MigrationError(_modified(migration, record))


def to_apply(
    source: MigrationSet, applied: list[AppliedMigration], *, target: str, allow_out_of_order: bool
) -> list[Migration]:
    """Pending migrations up to `target` (a version or 'latest'), dependencies first."""
    check_history(source, applied)
    done = {a.version for a in applied}
    if target != "latest" and source.get(target) is None:
        raise MigrationError(
            f"unknown target version {target}: no file in {source.directory.name}/"
        )
    limit = (source.latest or "") if target == "latest" else target
    pending = [m for m in source if m.version not in done and m.version <= limit]
    chosen = {m.version for m in pending}
    newest = max(done, default="")
    for migration in pending:
        for required in migration.requires:
            if required not in done and required not in chosen:
                raise MigrationError(
                    f"{migration.file} requires {required}, which is neither "
                    f"applied nor within the target {target}"
                )
        if migration.version < newest and not allow_out_of_order:
            raise MigrationError(
                f"{migration.file} is older than the newest applied migration {newest}: "
                "applying it out of order needs --allow-out-of-order"
            )
    return pending


def to_revert(
    source: MigrationSet, applied: list[AppliedMigration], *, count: int | None, to: str | None
) -> list[Migration]:
    """Applied migrations to roll back, newest first; refuses before anything runs when one of
    them has no down section or its file changed, or a remaining migration requires it."""
    newest_first = sorted(applied, key=lambda a: a.applied_order, reverse=True)
    if to is not None:
        versions = [a.version for a in newest_first]
        if to not in versions:
            raise MigrationError(f"cannot roll back to {to}: it is not applied")
        chosen = newest_first[: versions.index(to)]
    else:
        chosen = newest_first[: count if count is not None else 1]
    migrations = []
    for record in chosen:
        migration = source.get(record.version)
        if migration is None:
            raise MigrationError(
                f"cannot roll back {record.version} {record.name}: its file is missing"
            )
        if migration.checksum != record.checksum and record.execution_mode != "baseline":
            raise MigrationError(f"cannot roll back: {_modified(migration, record)}")
        if migration.down is None:
            raise MigrationError(
                f"cannot roll back: {migration.file} has no '-- migrate:down' section"
            )
        migrations.append(migration)
    leaving = {m.version for m in migrations}
    for record in applied:
        remaining = source.get(record.version)
        if record.version in leaving or remaining is None:
            continue
        for required in remaining.requires:
            if required in leaving:
                raise MigrationError(
                    f"cannot roll back {required}: {remaining.file} requires it and stays applied"
                )
    return migrations
