"""The backup reports as text (and the catalog listing as JSON): what `dbops backup verify`,
`prune`, `list` and (engine pgbackrest) `restore` print, and what apply records of a prune. The
results themselves are values in `dbops.backup.results` and `dbops.backup.pitr`. Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dbops.units import format_age, format_duration, format_moment, format_size

if TYPE_CHECKING:  # the results are only read here: rendering loads no backup machinery
    from dbops.backup.manifest import DamagedBackup, Manifest
    from dbops.backup.pitr import PitrResult, PitrVerification
    from dbops.backup.results import PruneResult, VerifyResult

LIST_FORMAT_VERSION = 1


def verify(result: VerifyResult) -> list[str]:
    """A verification in lines: what matched, or every problem found."""
    if not result.ok:
        return [f"backup {result.id} FAILED verification:", *(f"  {p}" for p in result.problems)]
    out = [f"backup {result.id} verified: {result.files} file(s) match their SHA-256, "
           f"pg_restore lists {result.toc_entries} entries"]
    if result.restore_seconds is not None:
        out.append(f"restore test: restored in {result.restore_seconds:.1f}s (recovery time), "
                   f"row counts of {result.tables_compared} table(s) match; scratch database "
                   "dropped")
    return out


def prune(result: PruneResult) -> list[str]:
    """A prune in lines: what was (or would be) deleted and why, what was left alone."""
    verb = "would delete" if result.dry_run else "deleted"
    out = [f"{verb} {len(result.deleted)} backup(s), kept {len(result.kept)}"
           + (f" (floor: {result.floor})" if result.floor else "")]
    out += [f"  - {i}: {result.effect.why[i]}" for i in result.deleted]
    out += [f"  {verb} folder {name} left by an interrupted run" for name in result.abandoned]
    out += [f"  left alone: {d.id} is CORRUPT ({d.reason}); inspect it and delete it by hand"
            for d in result.corrupt]
    effect = result.effect
    if effect.earliest_before != effect.earliest_after:
        out.append(f"earliest restorable point: {_moment(effect.earliest_before)} -> "
                   f"{_moment(effect.earliest_after)}")
    return out


def pitr_verify(found: PitrVerification) -> list[str]:
    """A pgbackrest verification in lines, the restore drill's after it when one ran."""
    if not found.ok:
        return [f"pgbackrest verify FAILED: {found.failure}"]
    head = f"pgbackrest verify of {found.what}: ok"
    return [head, *pitr_restore(found.drill)] if found.drill else [head]


def pitr_restore(result: PitrResult) -> list[str]:
    """A point-in-time restore (or drill) in lines: where to, how long, what was recovered."""
    target = (f"to {result.target.isoformat(sep=' ')}" if result.target
              else "to the end of the archived WAL")
    out = [f"restored stanza {result.stanza} from backup set {result.backup_set or '?'} {target} "
           f"into {result.data_directory} in {result.seconds:.1f}s (recovery time)",
           "recovered up to the transaction committed at "
           + (result.recovered_to.isoformat(sep=" ") if result.recovered_to else "unknown")
           + ("" if result.wal_bytes is None
              else f"; {format_size(result.wal_bytes)} of WAL replayed")]
    if result.rpo is not None:
        out.append(f"data-loss window proven: {format_duration(result.rpo, whole_seconds=True)} (writes "
                   "after the newest archived WAL segment would be lost)")
    if result.running:
        out.append(f"the restored copy runs on 127.0.0.1:{result.port}; stop it with "
                   f"pg_ctl -D {result.data_directory} stop")
    else:
        out.append("the drill's copy was stopped and removed")
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
    rows += [(m.id, format_age(now - m.started_at), format_size(m.size), m.reason,
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


def _moment(value: datetime | None) -> str:
    return "nothing" if value is None else format_moment(value)
