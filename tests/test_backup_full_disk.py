"""Backups on a full disk and with a damaged manifest, against a real PostgreSQL and a real full
file system (a small tmpfs mounted over the backup directory): the space check before a dump,
the disk filling up during the dump, before the manifest and during a verification, and a
truncated manifest listed as CORRUPT and never counted by retention."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import Project
from test_backup_support import aged, manager, migrate, seed, taskmaster_project

from dbops.backup import BackupError
from dbops.backup.dump import Started


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` for the block (the suite runs as root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write `directory`/filler until the file system is full; the filler's path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def fill_when(tool: str, directory: Path) -> Callable[[Started], None]:
    """An on_start hook that fills the disk as `tool` starts."""

    def hook(started: Started) -> None:
        if started.tool == tool:
            fill(directory)

    return hook


def leftovers(directory: Path) -> list[str]:
    """Every temporary file or folder under `directory`."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.name.startswith(".") or p.name.endswith(".tmp"))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_backup_that_cannot_fit_is_refused_before_the_dump(project: Project) -> None:
    taskmaster_project(project)
    with project.database.connect() as conn:  # about 5 MB of data for a 2 MB disk
        conn.execute("CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS payload"
                     " FROM generate_series(1, 60000) g")
    directory = project.root / "backups"
    with tmpfs(directory, "2m"):
        with pytest.raises(BackupError) as caught:
            manager(project).create()
        message = str(caught.value)
        assert message.startswith(f"not enough space in {directory}: 2.0 MB free, a backup "
                                  "needs about ")
        assert message.endswith("of data plus 10% and 1.0 MB); free space or prune old backups")

        migrated = project.run("migrate", "up", "test", "--yes")
        line = one_error_line(migrated)
        assert line.startswith("error: refusing to migrate: the before-migrate backup failed: "
                               f"not enough space in {directory}: ")
        assert list(directory.iterdir()) == []
    with project.database.connect() as conn:  # the refusal came before any migration
        assert conn.execute("SELECT to_regclass('public.tasks')").fetchone() == (None,)


def test_a_disk_that_fills_up_publishes_nothing_and_leaves_nothing(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    seed(project.database, runs=20, tasks=100, logs=100)
    directory = project.root / "backups"
    with tmpfs(directory, "4m"):
        backups = manager(project)
        earlier = backups.create()
        manifest_bytes = (earlier.folder / "manifest.json").read_bytes()

        backups.on_start = fill_when("pg_dump", directory)  # the disk fills during the dump
        with pytest.raises(BackupError) as caught:
            backups.create()
        message = str(caught.value)
        assert message.startswith("pg_dump failed (exit 1) writing ")
        assert "/.tmp-" in message and message.endswith("No space left on device")
        assert "\n" not in message
        assert sorted(p.name for p in directory.iterdir()) == [earlier.id, "filler"]
        assert leftovers(directory) == []
        (directory / "filler").unlink()

        # Full after the dump, when only the manifest is left to write.
        backups.on_start = fill_when("pg_restore", directory)
        with pytest.raises(BackupError, match=r"^cannot write .*/\.tmp-[^/]+/manifest\.json: "
                                              r"No space left on device$"):
            backups.create()
        assert sorted(p.name for p in directory.iterdir()) == [earlier.id, "filler"]
        assert leftovers(directory) == []
        assert [m.id for m in backups.list()] == [earlier.id]

        # A verification on a full disk cannot record its outcome: the manifest stays whole.
        fill(directory)  # the failed backup's files were removed: full again
        verified = project.run("backup", "verify", "test", earlier.id)
        assert one_error_line(verified) == (
            f"error: backup {earlier.id} verified, but the outcome could not be recorded: "
            f"cannot write {earlier.folder}/manifest.json: No space left on device")
        assert (earlier.folder / "manifest.json").read_bytes() == manifest_bytes
        assert leftovers(directory) == []

        (directory / "filler").unlink()
        backups.on_start = None
        later = backups.create()
        assert [m.id for m in backups.list()] == [earlier.id, later.id]
        assert backups.verify(later.id).ok


def test_a_damaged_manifest_is_listed_as_corrupt_and_never_counted(project: Project) -> None:
    taskmaster_project(project, keep_last=1, max_age="1s")
    migrate(project)
    backups = manager(project)
    now = datetime.now(UTC)
    made = [backups.create() for _ in range(3)]
    aged(made[0], now - timedelta(days=10), verified=True)
    aged(made[1], now - timedelta(days=5), verified=False)
    aged(made[2], now - timedelta(days=1), verified=True)
    damaged = made[2].folder / "manifest.json"
    damaged.write_bytes(damaged.read_bytes()[:200])  # truncated, as a crash or full disk leaves it

    listed = project.run("backup", "list", "test")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[3].split() == [made[2].id, "-", "-", "-", "-", "CORRUPT"]
    assert rows[4].startswith(f"{made[2].id}: CORRUPT: manifest.json is unreadable: "
                              "not valid JSON (")
    as_json = json.loads(project.run("backup", "list", "test", "--format", "json").stdout)
    assert [b["id"] for b in as_json["backups"]] == [made[0].id, made[1].id]
    assert [c["id"] for c in as_json["corrupt"]] == [made[2].id]
    assert as_json["corrupt"][0]["reason"].startswith("manifest.json is unreadable")

    verified = project.run("backup", "verify", "test", made[2].id)
    assert one_error_line(verified).startswith(
        f"error: backup {made[2].id} is CORRUPT: manifest.json is unreadable")

    # The failed backup takes no keep_last place and is no floor; the damaged one is left alone.
    pruned = project.run("backup", "prune", "test")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines()[0] == f"deleted 1 backup(s), kept 1 (floor: {made[0].id})"
    assert f"  - {made[1].id}: 5 days old, beyond max_age 1s (its verification FAILED)" \
        in pruned.stdout
    assert f"left alone: {made[2].id} is CORRUPT (manifest.json is unreadable" in pruned.stdout
    assert sorted(p.name for p in (project.root / "backups").iterdir()) == sorted(
        [made[0].id, made[2].id])
