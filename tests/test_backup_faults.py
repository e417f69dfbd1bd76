"""Backups under bad input and faults, against a real PostgreSQL: a directory that is not
writable, pg_dump killed half-way, a corrupted file, an unknown id, a policy that would delete
everything, a restore killed half-way, folders left by a killed run."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import Project
from test_backup_support import (
    LATEST_MIGRATION,
    aged,
    database_names,
    manager,
    migrate,
    seed,
    taskmaster_project,
)

from dbops.backup import BackupError, CorruptBackup, UnknownBackup
from dbops.backup.dump import Started
from dbops.render import backup_results as backup_report


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def kill_when_written(threshold: int, sizes: list[int]) -> Callable[[Started], None]:
    """An on_start hook that SIGKILLs the tool once its output holds `threshold` bytes."""

    def watch(started: Started) -> None:
        def run() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                written = _size(started.path)
                if written >= threshold:
                    sizes.append(written)
                    os.kill(started.pid, signal.SIGKILL)
                    return
                time.sleep(0.005)

        if started.tool in ("pg_dump", "pg_restore"):
            threading.Thread(target=run, daemon=True).start()

    return watch


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def test_backup_directory_under_a_file_is_a_clear_error(project: Project) -> None:
    taskmaster_project(project)
    (project.root / "afile").write_text("not a directory\n")
    project.write_plan("backup: { directory: afile/backups }\n")
    with pytest.raises(BackupError, match=r"backup directory .*afile/backups is not writable: "
                                          r"Not a directory"):
        manager(project).create()
    with pytest.raises(BackupError, match="refusing to migrate: the before-migrate backup failed"):
        manager(project).before_migrate()


def test_read_only_backup_directory_fails_and_keeps_earlier_backups(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    backups = manager(project)
    earlier = backups.create()
    directory = project.root / "backups"
    directory.chmod(0o500)
    immutable = os.geteuid() == 0 and subprocess.run(
        ["chattr", "+i", str(directory)], capture_output=True, check=False).returncode == 0
    try:
        probe = directory / "probe"
        try:
            probe.touch()
            probe.unlink()
            pytest.skip("this user can write into a mode 0500 directory and chattr is unavailable")
        except OSError:
            pass
        with pytest.raises(BackupError, match=f"backup directory {directory} is not writable"):
            backups.create()
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o700)
    assert entries(directory) == [earlier.id]
    assert [m.id for m in backups.list()] == [earlier.id]
    assert backups.verify(earlier.id).ok


def test_pg_dump_killed_half_way_leaves_no_complete_looking_backup(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    backups = manager(project)
    earlier = backups.create()
    with project.database.connect() as conn:  # big enough that the dump takes a while
        conn.execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text)"
                     " || md5((g * 13)::text) AS payload FROM generate_series(1, 400000) g")
    killed_at: list[int] = []
    backups.on_start = kill_when_written(256 * 1024, killed_at)

    with pytest.raises(BackupError, match="pg_dump was killed by SIGKILL"):
        backups.create()

    assert killed_at and killed_at[0] >= 256 * 1024  # it was killed mid-data
    directory = project.root / "backups"
    assert entries(directory) == [earlier.id]  # no .tmp- folder, nothing else touched
    assert [m.id for m in backups.list()] == [earlier.id]
    assert backups.verify(earlier.id).ok


def test_corrupted_file_fails_verify_naming_both_checksums_and_restore_refuses(
        project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    seed(project.database, tasks=300, logs=300)
    backups = manager(project)
    backup = backups.create()
    dump = backup.folder / "dump.pgdump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    expected = backup.files[0].sha256

    result = backups.verify(backup.id)

    assert not result.ok
    assert result.problems == (f"dump.pgdump: SHA-256 mismatch: manifest {expected} "
                               f"({len(data)} bytes), file {actual} ({len(data)} bytes)",)
    assert "FAILED" in backup_report.verify(result)[0]
    recorded = backups.get(backup.id)
    assert recorded.failed and backup_report.verified_label(recorded) == "FAILED"
    before = database_names(project.database)
    with pytest.raises(CorruptBackup, match=f"refusing to restore.*{expected}.*{actual}"):
        backups.restore(backup.id)
    with pytest.raises(CorruptBackup):
        backups.restore(backup.id, over_live=True)
    assert database_names(project.database) == before
    assert [m.reason for m in backups.list()] == ["manual"]  # no safety backup was taken either
    (backup.folder / "stray.txt").write_text("x")
    dump.unlink()
    problems = backups.verify(backup.id).problems
    assert problems == (f"dump.pgdump: missing (manifest sha256 {expected})",
                        "stray.txt: not in the manifest")


def test_unknown_id_lists_the_nearest_ids(project: Project) -> None:
    taskmaster_project(project)
    backups = manager(project)
    with pytest.raises(UnknownBackup, match="there are no backups yet"):
        backups.verify("20250101T000000Z-abcd")
    migrate(project)
    made = [backups.create(), backups.create()]
    wrong = made[0].id[:-1] + ("0" if made[0].id[-1] != "0" else "1")
    with pytest.raises(UnknownBackup) as caught:
        backups.restore(wrong)
    assert made[0].id in caught.value.nearest
    assert f"no backup {wrong!r}; nearest: " in str(caught.value)
    with pytest.raises(UnknownBackup) as far:
        backups.get("nonsense")
    assert set(far.value.nearest) <= {m.id for m in made} and far.value.nearest
    with pytest.raises(UnknownBackup):  # an ambiguous prefix names no backup either
        backups.get(made[0].id[:4])


def test_prune_floor_keeps_the_newest_verified_backup(project: Project) -> None:
    """keep_last 1 and max_age 1s: the newest backup failed its check, so it takes no keep_last
    place and is no floor; the newest verified one is kept, the failed one deleted."""
    taskmaster_project(project, keep_last=1, max_age="1s")
    migrate(project)
    backups = manager(project)
    now = datetime.now(UTC)
    made = [backups.create() for _ in range(3)]
    oldest = aged(made[0], now - timedelta(days=10), verified=True)
    aged(made[1], now - timedelta(days=5), verified=True)
    aged(made[2], now - timedelta(days=1), verified=False)  # the newest failed its check
    assert oldest.verified

    result = backups.prune()

    assert result.floor == made[1].id
    assert result.deleted == (made[2].id, made[0].id)
    assert "its verification FAILED" in result.effect.why[made[2].id]
    assert [m.id for m in backups.list()] == [made[1].id]
    assert "floor" in backup_report.prune(result)[0]


def test_killed_restore_over_live_leaves_the_live_database_as_it_was(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    seed(project.database)
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) AS payload"
                     " FROM generate_series(1, 200000) g")
    backups = manager(project)
    backup = backups.create()
    killed: list[int] = []

    def kill_restore(started: Started) -> None:
        if started.tool == "pg_restore" and "--list" not in started.argv:
            os.kill(started.pid, signal.SIGKILL)
            killed.append(started.pid)

    backups.on_start = kill_restore
    before = database_names(project.database)
    with pytest.raises(BackupError, match="pg_restore was killed by SIGKILL"):
        backups.restore(backup.id, over_live=True)
    assert killed
    assert database_names(project.database) == before  # the half-restored copy is dropped
    with project.database.connect() as conn:
        assert conn.execute("SELECT max(version) FROM dbops.migration_history").fetchone() == (
            LATEST_MIGRATION,)
        assert conn.execute("SELECT count(*) FROM big").fetchone() == (200000,)
    assert [m.reason for m in backups.list()] == ["manual", "before-restore"]


def test_folders_of_killed_runs_are_ignored_and_pruned_unless_still_written(
        project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    backups = manager(project)
    kept = backups.create()
    directory = project.root / "backups"
    dead = directory / ".tmp-20250101T000000Z-dead"
    dead.mkdir()
    (dead / "dump.pgdump").write_bytes(b"PGDMP half")
    (dead / "manifest.json").write_text("{}")
    live = directory / ".tmp-20250101T000001Z-live"
    live.mkdir()
    held = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)  # a backup still being written by another process
    no_manifest = directory / "20250101T000002Z-gone"
    no_manifest.mkdir()
    try:
        assert [m.id for m in backups.list()] == [kept.id]
        result = backups.prune()
        assert result.abandoned == (dead.name,)
        assert not dead.exists() and live.exists()
    finally:
        os.close(held)
        shutil.rmtree(live)
    assert kept.folder.exists() and no_manifest.exists()  # not a backup: not dbops's to delete
