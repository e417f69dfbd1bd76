"""What backup operations return, and how they read: the results of verify, restore and prune,
and the catalog listing as text or JSON. Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dbops.backup.catalog import RetentionEffect
from dbops.backup.manifest import DamagedBackup, Manifest

LIST_FORMAT_VERSION = 1


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

    def lines(self) -> list[str]:
        if not self.ok:
            return [f"backup {self.id} FAILED verification:", *(f"  {p}" for p in self.problems)]
        out = [f"backup {self.id} verified: {self.files} file(s) match their SHA-256, "
               f"pg_restore lists {self.toc_entries} entries"]
        if self.restore_seconds is not None:
            out.append(f"restore test: restored in {self.restore_seconds:.1f}s (recovery time), "
                       f"row counts of {self.tables_compared} table(s) match; scratch database "
                       "dropped")
        return out


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
        taken = f"backup {b.id} ({b.reason}, taken {_stamp(b.started_at)})"
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
            out.append(f"data written after {_stamp(b.started_at)} is not in it; the safety "
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

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        out = [f"{verb} {len(self.deleted)} backup(s), kept {len(self.kept)}"
               + (f" (floor: {self.floor})" if self.floor else "")]
        out += [f"  - {i}: {self.effect.why[i]}" for i in self.deleted]
        out += [f"  {verb} folder {name} left by an interrupted run" for name in self.abandoned]
        out += [f"  left alone: {d.id} is CORRUPT ({d.reason}); inspect it and delete it by hand"
                for d in self.corrupt]
        if self.effect.earliest_before != self.effect.earliest_after:
            out.append(f"earliest restorable point: {_stamp(self.effect.earliest_before)} -> "
                       f"{_stamp(self.effect.earliest_after)}")
        return out


def verified_label(manifest: Manifest) -> str:
    last = manifest.last_check
    if last is None:
        return "no"
    if not last.ok:
        return "FAILED"
    return "restore-tested" if last is manifest.restore_test else "checksums"


def list_table(manifests: Sequence[Manifest], now: datetime,
               damaged: Sequence[DamagedBackup] = ()) -> list[str]:
    """The catalog as aligned columns, oldest first; damaged backups after them as CORRUPT,
    each with its reason on a line of its own."""
    if not manifests and not damaged:
        return ["no backups"]
    rows = [("ID", "AGE", "SIZE", "REASON", "MIGRATION", "VERIFIED")]
    rows += [(m.id, age(now - m.started_at), size(m.size), m.reason,
              m.migration_version or "-", verified_label(m)) for m in manifests]
    rows += [(d.id, "-", "-", "-", "-", "CORRUPT") for d in damaged]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
           for r in rows]
    return out + [f"{d.id}: CORRUPT: {d.reason}" for d in damaged]


def list_json(manifests: Sequence[Manifest], now: datetime,
              damaged: Sequence[DamagedBackup] = ()) -> str:
    return json.dumps({
        "format_version": LIST_FORMAT_VERSION,
        "backups": [{
            "id": m.id, "age_seconds": round((now - m.started_at).total_seconds()),
            "size": m.size, "reason": m.reason, "migration_version": m.migration_version,
            "verified": m.verified, "verification": verified_label(m),
            "started_at": m.to_dict()["started_at"], "format": m.format,
            "path": str(m.folder),
        } for m in manifests],
        "corrupt": [{"id": d.id, "path": str(d.folder), "reason": d.reason} for d in damaged],
    }, indent=2)


def age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds // span}{unit}"
    return f"{seconds}s"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _stamp(moment: datetime | None) -> str:
    return "nothing" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
