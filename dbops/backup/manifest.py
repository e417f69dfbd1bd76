"""The manifest: one `manifest.json` per backup folder, the catalog's only record of a backup.

Layout of the policy's directory (mode 0700; every file 0600):

    <directory>/<id>/manifest.json      written last; its presence makes the folder a backup
    <directory>/<id>/dump.pgdump        pg_dump custom format, or
    <directory>/<id>/dump/              pg_dump directory format (toc.dat, <n>.dat.gz)
    <directory>/<id>/globals.sql        pg_dumpall --globals-only --no-role-passwords (policy.globals)
    <directory>/.tmp-<id>/              a backup being written (or left by a killed run): never read
    <directory>/.deleting-<id>/         a backup being deleted: never read

manifest.json (format_version 1), times in ISO 8601 UTC:

    id, environment, database, server ("host:port"), server_version, pg_dump_version,
    dbops_version, migration_version (newest applied migration in the dump's snapshot, or null),
    reason ("manual", "before-migrate", "scheduled", "before-restore" or a user's text),
    started_at (the dump's snapshot), finished_at, duration_s, size (bytes of every file),
    format ("custom" | "directory"), jobs, globals, encoding, lc_collate, lc_ctype,
    files: [{path, size, sha256}], row_counts: {"schema.table": rows} (exact, the dump's snapshot),
    status ("complete"), archive_check and restore_test: null or {at, ok, problems,
    restore_seconds, tables_compared} (the latest verification of each kind).

A visible folder (`<id>`, not starting with a dot) only ever appears with its manifest written,
so one whose manifest.json is missing, does not parse or is not "complete" was damaged after the
fact: the catalog lists it as CORRUPT with the reason and never uses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from dbops.backup import storage
from dbops.errors import BackupError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CUSTOM_ARCHIVE = "dump.pgdump"
DIRECTORY_ARCHIVE = "dump"
GLOBALS = "globals.sql"

Format = Literal["custom", "directory"]
KNOWN_REASONS = ("manual", "before-migrate", "scheduled", "before-restore")
REASON = re.compile(r"^[\w .,:;/()+'#@-]{1,100}$")
"""What a backup's reason may be: one of KNOWN_REASONS or a short text of the user's own."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a backup: its path inside the backup folder (POSIX), size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification: an archive check (checksums and pg_restore --list) or a
    restore test (restored into a scratch database, row counts compared)."""

    at: datetime
    ok: bool
    problems: tuple[str, ...] = ()
    restore_seconds: float | None = None
    tables_compared: int | None = None


@dataclass(frozen=True)
class Manifest:
    """One complete backup, as its manifest.json records it. `folder` is where it was read from."""

    id: str
    environment: str
    database: str
    server: str
    server_version: str
    pg_dump_version: str
    dbops_version: str
    migration_version: str | None
    reason: str
    started_at: datetime
    finished_at: datetime
    duration_s: float
    size: int
    format: Format
    jobs: int
    globals: bool
    encoding: str
    lc_collate: str
    lc_ctype: str
    files: tuple[FileEntry, ...]
    row_counts: Mapping[str, int]
    status: str = "complete"
    archive_check: Verification | None = None
    restore_test: Verification | None = None
    folder: Path = field(default=Path(), compare=False)

    @property
    def archive(self) -> Path:
        """What pg_restore reads: the custom-format file or the directory-format folder."""
        return self.folder / (CUSTOM_ARCHIVE if self.format == "custom" else DIRECTORY_ARCHIVE)

    @property
    def last_check(self) -> Verification | None:
        """The most recent verification of either kind."""
        checks = [c for c in (self.archive_check, self.restore_test) if c is not None]
        return max(checks, key=lambda c: c.at) if checks else None

    @property
    def verified(self) -> bool:
        """Its most recent verification passed."""
        last = self.last_check
        return last is not None and last.ok

    @property
    def failed(self) -> bool:
        """Its most recent verification failed: not a backup to count on."""
        last = self.last_check
        return last is not None and not last.ok

    def with_check(self, check: Verification, *, restore: bool) -> Manifest:
        if restore:
            return replace(self, restore_test=check)
        return replace(self, archive_check=check)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION,
                **{name: to_json(getattr(self, name)) for name, (_, to_json) in _FIELDS.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], folder: Path) -> Manifest:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {data.get('format_version')!r}")
        values = {name: from_json(data.get(name) if name in _OPTIONAL else data[name])
                  for name, (from_json, _) in _FIELDS.items()}
        return cls(**values, folder=folder)


@dataclass(frozen=True)
class DamagedBackup:
    """A backup folder whose manifest is missing, unreadable or not complete: listed as CORRUPT
    with `reason`, never restored, never counted by retention, never deleted by prune."""

    id: str
    folder: Path
    reason: str


@dataclass(frozen=True)
class Catalog:
    """What the backup directory holds: the complete backups (oldest first) and the damaged."""

    backups: tuple[Manifest, ...]
    damaged: tuple[DamagedBackup, ...]


def write(manifest: Manifest, folder: Path) -> None:
    """Write (or replace) `folder`/manifest.json atomically and durably."""
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    storage.write_atomically(folder / MANIFEST, text.encode())


def read(folder: Path) -> Manifest:
    """The manifest of one backup folder; BackupError when it is missing or unreadable."""
    path = folder / MANIFEST
    try:
        return Manifest.from_dict(json.loads(path.read_text()), folder)
    except FileNotFoundError:
        raise BackupError(f"{folder} has no {MANIFEST}: not a complete backup") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{path} is unreadable: {_why(exc)}") from None


def read_catalog(directory: Path) -> Catalog:
    """Every backup folder under `directory`: the complete ones oldest first (by started_at),
    and the damaged ones (manifest missing, unreadable or not "complete") with the reason.

    Folders being written or deleted (`.tmp-*`, `.deleting-*`) and plain files are not backups.
    A missing directory has none. No I/O beyond reading the manifests.
    """
    if not directory.is_dir():
        return Catalog((), ())
    found: list[Manifest] = []
    damaged: list[DamagedBackup] = []
    for folder in sorted(directory.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            manifest = read(folder)
        except BackupError as exc:
            reason = (f"no {MANIFEST}" if not (folder / MANIFEST).exists()
                      else str(exc).replace(f"{folder / MANIFEST} is", f"{MANIFEST} is"))
            damaged.append(DamagedBackup(folder.name, folder, reason))
            continue
        if manifest.status != "complete":
            damaged.append(DamagedBackup(folder.name, folder,
                                         f"{MANIFEST} says status {manifest.status!r}, "
                                         "not complete"))
        else:
            found.append(manifest)
    return Catalog(tuple(sorted(found, key=lambda m: (m.started_at, m.id))), tuple(damaged))


def read_manifests(directory: Path) -> list[Manifest]:
    """Every complete backup under `directory`, oldest first (by started_at); what is damaged is
    left out here (`read_catalog` names it)."""
    return list(read_catalog(directory).backups)


def _why(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError) and not exc.doc.strip():
        return "empty file"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_dict(check: Verification | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {"at": _time(check.at), "ok": check.ok, "problems": list(check.problems),
            "restore_seconds": check.restore_seconds, "tables_compared": check.tables_compared}


def _check(data: Mapping[str, Any] | None) -> Verification | None:
    if data is None:
        return None
    return Verification(at=_parse_time(data["at"]), ok=bool(data["ok"]),
                        problems=tuple(data.get("problems", ())),
                        restore_seconds=data.get("restore_seconds"),
                        tables_compared=data.get("tables_compared"))


def _as_is(value: Any) -> Any:
    return value


def _files(data: Any) -> tuple[FileEntry, ...]:
    return tuple(FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data)


# manifest.json's fields, in the file's order: how each is read from JSON and written to it.
_FIELDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "id": (str, _as_is),
    "environment": (str, _as_is),
    "database": (str, _as_is),
    "server": (str, _as_is),
    "server_version": (str, _as_is),
    "pg_dump_version": (str, _as_is),
    "dbops_version": (str, _as_is),
    "migration_version": (_as_is, _as_is),
    "reason": (str, _as_is),
    "started_at": (_parse_time, _time),
    "finished_at": (_parse_time, _time),
    "duration_s": (float, lambda seconds: round(seconds, 3)),
    "size": (int, _as_is),
    "format": (_as_is, _as_is),
    "jobs": (int, _as_is),
    "globals": (bool, _as_is),
    "encoding": (str, _as_is),
    "lc_collate": (str, _as_is),
    "lc_ctype": (str, _as_is),
    "status": (str, _as_is),
    "files": (_files, lambda files: [{"path": f.path, "size": f.size, "sha256": f.sha256}
                                     for f in files]),
    "row_counts": (lambda counts: {str(k): int(v) for k, v in counts.items()}, dict),
    "archive_check": (_check, _check_dict),
    "restore_test": (_check, _check_dict),
}
_OPTIONAL = frozenset({"archive_check", "restore_test"})  # absent in a manifest: never verified
