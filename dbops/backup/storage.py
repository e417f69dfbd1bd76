"""The backup directory on disk: private folders, atomic publication, durable writes, checksums.

A backup is written into `.tmp-<id>` and becomes visible only when, with every file fsynced and
its manifest written last, the folder is renamed to `<id>` and the parent directory fsynced. The
writer holds an exclusive flock on the temporary folder for its whole life, so a folder whose
lock can be taken was left by a run that died: only then may it be removed.

Every failure to write (a full disk above all) is a BackupError naming the path and the cause,
and leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dbops.errors import BackupError

TEMP_PREFIX = ".tmp-"
DELETING_PREFIX = ".deleting-"
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Digest:
    path: str
    size: int
    sha256: str


def failure(action: str, path: Path | str, exc: OSError) -> BackupError:
    """The one-line error for an OSError: `cannot <action> <path>: <cause>`."""
    return BackupError(f"cannot {action} {path}: {exc.strerror or type(exc).__name__}")


def free_space(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `directory`."""
    try:
        info = os.statvfs(directory)
    except OSError as exc:
        raise failure("read the free space of", directory, exc) from None
    return info.f_bavail * info.f_frsize


def ensure_directory(directory: Path) -> None:
    """Create the backup directory (mode 0700) if needed and prove it is writable."""
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o777 != DIR_MODE:
            directory.chmod(DIR_MODE)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackupError(f"backup directory {directory} is not writable: {reason}") from None


class TempFolder:
    """A locked `.tmp-<id>` folder; `publish()` renames it to `<id>`, otherwise leaving the
    block removes it (a failed or interrupted backup leaves nothing that looks complete)."""

    def __init__(self, directory: Path, backup_id: str) -> None:
        self.directory = directory
        self.final = directory / backup_id
        self.path = directory / f"{TEMP_PREFIX}{backup_id}"
        self._fd: int | None = None
        self.published = False

    def __enter__(self) -> TempFolder:
        try:
            self.path.mkdir(mode=DIR_MODE)
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._close()
            raise BackupError(f"cannot create {self.path}: {exc.strerror}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self.published:
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._close()

    def publish(self) -> Path:
        """Make the backup visible: fsync the folder, rename it, fsync the parent. On failure it
        is not published (and leaving the block removes it)."""
        if self.final.exists():
            raise BackupError(f"{self.final} already exists")
        try:
            fsync_directory(self.path)
            os.rename(self.path, self.final)
        except OSError as exc:
            raise failure("publish", self.final, exc) from None
        try:
            fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):  # back out of sight, for __exit__ to remove
                os.rename(self.final, self.path)
            raise failure("publish", self.final, exc) from None
        self.published = True
        return self.final

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def seal(folder: Path, *, skip: tuple[str, ...] = ()) -> list[Digest]:
    """Make every file under `folder` private (0600, folders 0700), durable (fsync) and return
    its SHA-256 and size, sorted by path. The hash is read back from the file as written."""
    try:
        return _seal(folder, skip)
    except OSError as exc:
        raise failure("seal", exc.filename or folder, exc) from None


def _seal(folder: Path, skip: tuple[str, ...]) -> list[Digest]:
    digests: list[Digest] = []
    for root, dirs, files in os.walk(folder, onerror=_raise):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            if relative in skip:
                continue
            os.chmod(path, FILE_MODE)
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
                os.fsync(handle.fileno())
                size = os.fstat(handle.fileno()).st_size
            digests.append(Digest(relative, size, digest))
        for name in dirs:
            os.chmod(Path(root) / name, DIR_MODE)
        fsync_directory(Path(root))
    return sorted(digests, key=lambda d: d.path)


def _raise(exc: OSError) -> None:
    raise exc


def digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of one file."""
    with path.open("rb") as handle:
        return os.fstat(handle.fileno()).st_size, hashlib.file_digest(handle, "sha256").hexdigest()


def files_under(folder: Path) -> list[str]:
    """Every file under `folder`, as POSIX paths relative to it."""
    return sorted(
        (Path(root) / name).relative_to(folder).as_posix()
        for root, _, files in os.walk(folder) for name in files
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` (mode 0600) through a temporary file: fsync, rename, fsync the folder. On
    failure `path` is as it was, the temporary file is removed, and BackupError names the cause."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise failure("write", path, exc) from None
    try:
        fsync_directory(path.parent)
    except OSError as exc:
        raise failure("write", path, exc) from None


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(folder: Path) -> None:
    """Delete a backup folder: renamed out of the catalog first, so a crash half-way never
    leaves a backup that looks complete with files missing."""
    doomed = folder.with_name(f"{DELETING_PREFIX}{folder.name}")
    try:
        os.rename(folder, doomed)
        fsync_directory(folder.parent)
        shutil.rmtree(doomed)
    except OSError as exc:
        raise failure("delete", exc.filename or folder, exc) from None


def abandoned(directory: Path) -> list[Path]:
    """Temporary and half-deleted folders whose writer is gone (their lock can be taken)."""
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(directory.iterdir()):
        if not entry.is_dir() or not entry.name.startswith((TEMP_PREFIX, DELETING_PREFIX)):
            continue
        if entry.name.startswith(DELETING_PREFIX) or not _locked(entry):
            found.append(entry)
    return found


def _locked(folder: Path) -> bool:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False

