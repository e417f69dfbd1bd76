"""Backups against a real PostgreSQL: create (manifest, modes, snapshot counts, formats, globals),
verify with a restore test, the round trip of a seeded TaskMaster dataset, restore over the live
database with its migration history, emergency rollback, before-migrate, prune, listing."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from harness import Project
from test_backup_support import (
    LATEST_MIGRATION,
    SECOND_MIGRATION,
    TASKMASTER_TABLES,
    aged,
    contents,
    database_names,
    drop_database,
    manager,
    migrate,
    other_database,
    seed,
    taskmaster_project,
)

from dbops.backup import BackupError, BackupManager, read_manifests
from dbops.backup.dump import Started
from dbops.migrate.engine import MigrationEngine
from dbops.render import backup_results as backup_report


def live_counts(project: Project) -> dict[str, int]:
    with project.database.connect() as conn:
        return {f"public.{t}": int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                for t in TASKMASTER_TABLES}


def test_create_writes_a_private_complete_backup_with_its_manifest(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    seed(project.database)
    messages: list[str] = []
    backups = manager(project, messages)

    backup = backups.create()

    folder = project.root / "backups" / backup.id
    assert backup.folder == folder and (folder / "manifest.json").is_file()
    assert stat.S_IMODE((project.root / "backups").stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    data = json.loads((folder / "manifest.json").read_text())
    assert data["id"] == backup.id and data["status"] == "complete"
    assert data["environment"] == "test" and data["database"] == project.database.name
    assert data["reason"] == "manual" and data["format"] == "custom"
    assert data["migration_version"] == LATEST_MIGRATION
    assert data["server_version"].startswith("15")
    assert data["started_at"] <= data["finished_at"] and data["duration_s"] > 0
    assert [f["path"] for f in data["files"]] == ["dump.pgdump"]
    assert data["size"] == (folder / "dump.pgdump").stat().st_size == data["files"][0]["size"]
    assert len(data["files"][0]["sha256"]) == 64
    counts = live_counts(project)
    assert {k: v for k, v in data["row_counts"].items() if k.startswith("public.")} == counts
    assert data["row_counts"]["dbops.migration_history"] == 4
    assert data["archive_check"]["ok"] is True  # verify.checksums: true
    assert [m.id for m in backups.list()] == [backup.id]
    assert not [p for p in (project.root / "backups").iterdir() if p.name.startswith(".")]
    assert any("complete" in m for m in messages)


def test_row_counts_are_the_dumps_snapshot_not_later_writes(project: Project) -> None:
    """Rows committed while pg_dump runs are in neither the dump nor the counts."""
    taskmaster_project(project)
    migrate(project)
    seed(project.database, tasks=500, logs=500)
    backups = manager(project)
    written: list[int] = []

    def write_during_dump(started: Started) -> None:
        if started.tool == "pg_dump":
            with project.database.connect() as conn:
                conn.execute("INSERT INTO pipelines (name, repository) VALUES ('late', 'r')")
            written.append(started.pid)

    backups.on_start = write_during_dump
    backup = backups.create()
    assert written
    assert backup.row_counts["public.pipelines"] == 20
    restored = backups.restore(backup.id)
    try:
        with other_database(project.database, restored.database).connect() as conn:
            assert conn.execute("SELECT count(*) FROM pipelines").fetchone() == (20,)
    finally:
        drop_database(project.database, restored.database)


def test_password_reaches_pg_dump_through_the_environment_only(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = "s3ntinel-Backup-Pw"
    monkeypatch.setenv("DB_PASSWORD", sentinel)
    taskmaster_project(project, globals_=True)
    migrate(project)
    seen: list[Started] = []
    backups = manager(project)
    backups.on_start = seen.append
    backup = backups.create()
    backups.verify(backup.id, restore_test=True)
    assert {s.tool for s in seen} == {"pg_dump", "pg_dumpall", "pg_restore"}
    for started in seen:
        assert not any(sentinel in arg for arg in started.argv), started.argv
    for path in backup.folder.rglob("*"):
        if path.is_file():
            assert sentinel.encode() not in path.read_bytes(), path
    from dbops.backup.dump import environment
    from dbops.connect import endpoint

    assert environment(endpoint(backups.plan), "x")["PGPASSWORD"] == sentinel


def test_directory_format_with_jobs_and_globals(project: Project) -> None:
    taskmaster_project(project, fmt="directory", jobs=2, globals_=True)
    migrate(project)
    seed(project.database, tasks=1000, logs=1000)
    backups = manager(project)
    backup = backups.create()
    paths = [f.path for f in backup.files]
    assert "dump/toc.dat" in paths and "globals.sql" in paths
    assert sum(p.endswith(".dat.gz") for p in paths) >= len(TASKMASTER_TABLES)
    assert stat.S_IMODE((backup.folder / "dump").stat().st_mode) == 0o700
    globals_sql = (backup.folder / "globals.sql").read_text()
    assert "CREATE ROLE postgres" in globals_sql and "PASSWORD" not in globals_sql
    result = backups.verify(backup.id, restore_test=True)
    assert result.ok, result.problems
    assert result.tables_compared == len(backup.row_counts)


def test_round_trip_restores_every_row_of_a_dropped_table(project: Project) -> None:
    """create -> drop a table -> restore into a new database -> every table's contents match."""
    taskmaster_project(project)
    migrate(project)
    seed(project.database)
    with project.database.connect() as conn:
        original = {t: contents(conn, t) for t in TASKMASTER_TABLES}
    backups = manager(project)
    backup = backups.create()
    with project.database.connect() as conn:
        conn.execute("DROP TABLE task_logs")

    result = backups.restore(backup.id)

    try:
        assert not result.over_live and result.database != project.database.name
        assert result.migration_version == LATEST_MIGRATION
        with other_database(project.database, result.database).connect() as conn:
            restored = {t: contents(conn, t) for t in TASKMASTER_TABLES}
        assert restored == original
        assert original["task_logs"][0] == 5000
        assert any("now at migration" in line for line in result.lines())
    finally:
        drop_database(project.database, result.database)
    with project.database.connect() as conn:  # the live database was not touched
        assert conn.execute("SELECT to_regclass('task_logs')").fetchone() == (None,)


def test_restore_into_a_named_database_and_refusals(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    backups = manager(project)
    backup = backups.create()
    name = f"{project.database.name}_copy"
    result = backups.restore(backup.id[:10], into=name)  # a unique prefix names it
    try:
        assert result.database == name and name in database_names(project.database)
        with pytest.raises(BackupError, match="already exists"):
            backups.restore(backup.id, into=name)
    finally:
        drop_database(project.database, name)
    with pytest.raises(BackupError, match="is the live database"):
        backups.restore(backup.id, into=project.database.name)


def test_verify_restore_test_records_the_recovery_time(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    seed(project.database, tasks=500, logs=500)
    backups = manager(project)
    backup = backups.create()
    before = database_names(project.database)

    result = backups.verify(backup.id, restore_test=True)

    assert result.ok and result.restore_seconds is not None and result.restore_seconds > 0
    assert result.files == 1 and result.toc_entries > 20
    assert database_names(project.database) == before  # the scratch database is gone
    recorded = backups.get(backup.id)
    assert recorded.restore_test is not None and recorded.restore_test.ok
    assert recorded.restore_test.restore_seconds == result.restore_seconds
    assert recorded.restore_test.tables_compared == len(backup.row_counts)
    assert backup_report.verified_label(recorded) == "restore-tested"
    assert "recovery time" in "\n".join(backup_report.verify(result))


def test_restore_over_live_brings_history_back_with_the_schema(project: Project) -> None:
    """Backed up at the second migration, migrated to the latest, restored over the live
    database: the history says the second migration and the schema agrees; up works again."""
    taskmaster_project(project)
    migrate(project, SECOND_MIGRATION)
    seed(project.database, tasks=300, logs=300)
    db = project.database
    with db.connect() as conn:
        conn.execute(f'ALTER DATABASE "{db.name}" SET work_mem = \'8MB\'')
        conn.execute(f'ALTER DATABASE "{db.name}" SET search_path = "$user", public')
        conn.execute(f'COMMENT ON DATABASE "{db.name}" IS \'TaskMaster under test\'')
    backups = manager(project)
    backup = backups.before_migrate()
    assert backup is not None and backup.reason == "before-migrate"
    assert backup.migration_version == SECOND_MIGRATION
    migrate(project)
    with db.connect() as conn:
        conn.execute("INSERT INTO pipelines (name, repository) VALUES ('after', 'r')")
    idle = psycopg.connect(db.conninfo, autocommit=True)  # a session the swap must end

    result = backups.restore(backup.id, over_live=True)

    assert result.over_live and result.database == db.name
    assert result.migration_version == SECOND_MIGRATION
    assert result.previous_migration_version == LATEST_MIGRATION
    assert result.undone == ("20250610120000", LATEST_MIGRATION)
    safety = backups.get(result.safety_backup or "")
    assert safety.reason == "before-restore" and safety.migration_version == LATEST_MIGRATION
    assert safety.row_counts["public.pipelines"] == 21
    with db.connect() as conn:
        versions = [r[0] for r in conn.execute(
            "SELECT version FROM dbops.migration_history ORDER BY applied_order").fetchall()]
        assert versions[-1] == SECOND_MIGRATION and len(versions) == 2
        assert conn.execute("SELECT to_regclass('tasks_queue_idx')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_constraint"
                            " WHERE conname = 'tasks_attempt_positive'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pipelines").fetchone() == (20,)
        assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)
        assert conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                            " WHERE datname = current_database()").fetchone() == (
            "TaskMaster under test",)
    with pytest.raises(psycopg.OperationalError):
        idle.execute("SELECT 1")
    idle.close()
    assert not [n for n in database_names(db) if n.startswith(db.name + "_")]
    engine = MigrationEngine.from_plan("test", root=project.root)
    pending = [s.version for s in engine.get_migration_status() if s.state == "pending"]
    assert pending == ["20250610120000", LATEST_MIGRATION]
    assert len(engine.run_migrations().executions) == 2  # history and schema agree


def test_emergency_rollback_dry_run_then_real(project: Project) -> None:
    taskmaster_project(project)
    migrate(project, SECOND_MIGRATION)
    backups = manager(project)
    with pytest.raises(BackupError, match="no before-migrate backup"):
        backups.emergency_rollback()
    backup = backups.before_migrate()
    assert backup is not None
    migrate(project)

    preview = backups.emergency_rollback(dry_run=True)
    assert preview.dry_run and preview.backup.id == backup.id
    text = "\n".join(preview.lines())
    assert "safety backup" in text and f"at migration {SECOND_MIGRATION}" in text
    assert "20250610120000, 20250617080000 will be undone" in text
    assert len(backups.list()) == 1  # nothing happened
    with project.database.connect() as conn:
        assert conn.execute("SELECT max(version) FROM dbops.migration_history").fetchone() == (
            LATEST_MIGRATION,)

    result = backups.emergency_rollback()
    lines = "\n".join(result.lines())
    assert f"is now at migration {SECOND_MIGRATION}" in lines
    assert f"safety backup {result.safety_backup}" in lines
    assert [m.reason for m in backups.list()] == ["before-migrate", "before-restore"]


def test_policy_restore_tests_after_creating_when_due(project: Project) -> None:
    taskmaster_project(project, restore_test="weekly", checksums=False)
    migrate(project)
    backups = manager(project)
    first = backups.create()
    assert first.restore_test is not None and first.restore_test.ok and first.verified
    second = backups.create(reason="scheduled")  # one passed this week: not due
    assert second.restore_test is None and not second.verified
    safety = backups.before_migrate()  # never delayed by a restore test
    assert safety is not None and safety.restore_test is None


def test_before_migrate_follows_the_policy(project: Project) -> None:
    taskmaster_project(project)
    messages: list[str] = []
    backups = manager(project, messages)
    assert backups.before_migrate(skip=True) is None
    assert "before-migrate backup skipped (--skip-backup)" in messages
    assert backups.list() == []
    project.write_plan("backup: { directory: backups, before_migrate: false }\n")
    assert manager(project).before_migrate() is None
    project.write_plan("")
    assert manager(project).before_migrate() is None  # no backup section: nothing to do
    with pytest.raises(BackupError, match="no backup section"):
        manager(project).list()


def test_prune_applies_retention_and_reports_the_earliest_restorable_point(
        project: Project) -> None:
    taskmaster_project(project, keep_last=2, max_age="7d")
    migrate(project)
    backups = manager(project)
    now = datetime.now(UTC)
    made = [backups.create() for _ in range(4)]
    for days, backup in zip((30, 20, 10, 1), made, strict=True):
        aged(backup, now - timedelta(days=days))
    (project.root / "backups" / ".tmp-20200101T000000Z-dead").mkdir()  # left by a killed run

    preview = backups.prune(dry_run=True)
    assert preview.deleted == (made[1].id, made[0].id)
    assert preview.abandoned == (".tmp-20200101T000000Z-dead",)
    assert len(backups.list()) == 4
    assert "earliest restorable point" in "\n".join(backup_report.prune(preview))

    result = backups.prune()
    assert result.deleted == preview.deleted
    assert [m.id for m in backups.list()] == [made[2].id, made[3].id]
    assert sorted(p.name for p in (project.root / "backups").iterdir()) == sorted(
        [made[2].id, made[3].id])


def test_list_as_table_and_json(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    backups = manager(project)
    first = backups.create(reason="scheduled")
    second = backups.create(reason="before the import")
    now = datetime.now(UTC)
    listed = backups.list()
    assert [m.id for m in listed] == [first.id, second.id]
    table = backup_report.list_table(listed, now)
    assert table[0].split() == ["ID", "AGE", "SIZE", "REASON", "MIGRATION", "VERIFIED"]
    assert first.id in table[1] and "scheduled" in table[1] and LATEST_MIGRATION in table[1]
    assert "checksums" in table[1] and "before the import" in table[2]
    data = json.loads(backup_report.list_json(listed, now))
    assert data["format_version"] == 1
    assert [b["id"] for b in data["backups"]] == [first.id, second.id]
    assert data["backups"][0]["verified"] is True and data["backups"][0]["size"] == first.size
    assert read_manifests(project.root / "backups") == listed
    with pytest.raises(BackupError, match="reason"):
        backups.create(reason="two\nlines")


def test_from_plan_accepts_a_plan_and_an_environment(project: Project) -> None:
    taskmaster_project(project)
    by_name = BackupManager.from_plan("test", root=project.root)
    assert by_name.directory == project.root / "backups"
    assert BackupManager.from_plan(by_name.plan).directory == by_name.directory
    assert by_name.latest() is None and by_name.list() == []
