"""What backup operations return: the results of verify, restore and prune, as values (their text
and the catalog listing are rendered by `dbops.render.backup_results`; a restore's own lines stay
here, where `dbops rollback --emergency` reads them). Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.backup.catalog import RetentionEffect
from dbops.backup.manifest import DamagedBackup, Manifest
from dbops.units import format_moment


@dataclass(frozen=True)
class VerifyResult:
    """One verification: checksums and pg_restore --list, and with a restore test the restore's
    duration and the tables whose row counts were compared."""

    id: str
    ok: bool
    problems: tuple[str, ...]
    files: int
    toc_entries: int
    restore_seconds: float | None = None
    tables_compared: int | None = None


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did (or, with dry_run, would do), and the state the database is in."""

    backup: Manifest
    database: str
    over_live: bool
    dry_run: bool
    migration_version: str | None
    previous_migration_version: str | None
    undone: tuple[str, ...]
    safety_backup: str | None
    seconds: float
    tables: int
    steps: tuple[str, ...]

    def lines(self) -> list[str]:
        b = self.backup
        taken = f"backup {b.id} ({b.reason}, taken {format_moment(b.started_at)})"
        if self.dry_run:
            return [f"would restore {taken}:", *(f"  {step}" for step in self.steps)]
        out = [f"restored {taken} into {self.database} in {self.seconds:.1f}s; "
               f"row counts of {self.tables} table(s) match the backup"]
        out.append(f"{self.database} is now at migration {self.migration_version or 'none'} "
                   "(its migration history was restored with its schema)")
        if self.over_live:
            if self.undone:
                out.append(f"undone: migration(s) {', '.join(self.undone)} applied after the "
                           "backup (they are pending again)")
            out.append(f"data written after {format_moment(b.started_at)} is not in it; the safety "
                       f"backup {self.safety_backup or '(none: the database did not exist)'} "
                       "holds the database as it was just before the restore")
        return out


@dataclass(frozen=True)
class PruneResult:
    """What a prune deleted (or, with dry_run, would delete)."""

    deleted: tuple[str, ...]
    kept: tuple[str, ...]
    floor: str | None
    abandoned: tuple[str, ...]
    dry_run: bool
    effect: RetentionEffect
    corrupt: tuple[DamagedBackup, ...] = ()
