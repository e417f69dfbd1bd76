"""Where PostgreSQL's programs are installed: the server binaries (initdb, pg_ctl, postgres) the
development cluster runs, and the newest bin directory, whose client tools (pg_dump, psql,
pg_restore) backups and migration rehearsals use. Imports nothing of dbops but its errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from dbops.errors import LocalClusterError

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_NOT_FOUND = (
    "PostgreSQL server binaries not found (initdb, pg_ctl, postgres): install the 'postgresql' "
    "package (apt-get install -y postgresql) or put its bin directory on PATH"
)


def find_bindir() -> Path:
    """Return the directory holding initdb, pg_ctl and postgres (preferring one with pg_basebackup).

    Searched in order: `pg_config --bindir`, /usr/lib/postgresql/*/bin (highest version first),
    then the directories of `postgres` and `initdb` on PATH (symlinks followed first).
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            result = None
        if result is not None and result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    candidates.extend(
        sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major_version_key, reverse=True)
    )
    for name in ("postgres", "initdb"):
        found = shutil.which(name)
        if found is not None:
            candidates.extend([Path(found).resolve().parent, Path(found).parent])

    complete = [c for c in candidates if _has_binaries(c, _REQUIRED_BINARIES)]
    if not complete:
        raise LocalClusterError(_NOT_FOUND)
    with_basebackup = [c for c in complete if _has_binaries(c, ("pg_basebackup",))]
    return (with_basebackup or complete)[0]


def _major_version_key(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit()) or (-1,)


def _has_binaries(directory: Path, names: Sequence[str]) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in names)
