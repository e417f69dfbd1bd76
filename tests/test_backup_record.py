"""The backup catalog's copy in the database: written by every command that changes the
backups, read by plan and drift where the backup directory cannot be reached (a CI runner)."""

from __future__ import annotations

from harness import Project

from dbops.backup import BackupManager


def test_plan_and_drift_judge_backups_from_the_database_without_the_directory(
        project: Project) -> None:
    project.write_plan("backup: { directory: backups, schedule: '0 * * * *',"
                       " before_migrate: false, verify: { restore_test: never } }\n")
    backups = BackupManager.from_plan("test", root=project.root)
    made = backups.create(reason="scheduled")
    with project.database.connect() as conn:
        row = conn.execute(
            "SELECT id, reason, size, verified, restore_tested_at, location,"
            " manifest -> 'files' -> 0 ->> 'sha256' FROM dbops.backup_catalog").fetchone()
    assert row is not None
    assert row[:5] == (made.id, "scheduled", made.size, True, None)  # no restore test yet
    assert row[5].endswith(f":{(project.root / 'backups').resolve()}")
    assert row[6] == made.files[0].sha256

    (project.root / "backups").rename(project.root / "elsewhere")  # as a CI runner sees it
    planned = project.run("plan", "test")
    assert planned.returncode == 0, planned.stderr
    assert "backup.schedule" not in planned.stdout
    assert ("backups judged from the catalog recorded in the database (dbops.backup_catalog; "
            "backups is not reachable from here): 1 backup(s)") in planned.stdout
    drift = project.run("drift", "test")
    assert "backup.schedule" not in drift.stdout, drift.stdout
    assert "Backups judged from the catalog recorded in the database" in drift.stdout

    with project.database.connect() as conn:  # recorded, but too old: overdue, and says why
        conn.execute("UPDATE dbops.backup_catalog SET manifest = jsonb_set(manifest,"
                     " '{started_at}', '\"2025-01-01T00:00:00Z\"')")
    late = project.run("drift", "test")
    assert late.returncode == 2
    assert ("backup.schedule: the newest backup is" in late.stdout
            and "(judged from the catalog recorded in the database" in late.stdout), late.stdout

    (project.root / "elsewhere").rename(project.root / "backups")
    tested = backups.verify(made.id, restore_test=True)  # the record follows the directory
    with project.database.connect() as conn:
        assert conn.execute("SELECT verified, restore_tested_at IS NOT NULL"
                            " FROM dbops.backup_catalog").fetchone() == (tested.ok, True)
    (made.folder / "manifest.json").unlink()  # damaged: no longer a backup
    backups.prune()
    with project.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM dbops.backup_catalog").fetchone() == (0,)
