"""The before-migrate backup as `migrate up` takes it (the engine calls backup_before_migrate
under the runner lock). Skipped until the engine has its `skip_backup` parameter."""

from __future__ import annotations

import pytest
from harness import Project
from test_backup_support import LATEST_MIGRATION, manager, taskmaster_project

from dbops.backup import BackupError
from dbops.migrate.engine import MigrationEngine


def applied(project: Project) -> list[str]:
    with project.database.connect() as conn:
        if conn.execute("SELECT to_regclass('dbops.migration_history')").fetchone() == (None,):
            return []
        return [r[0] for r in conn.execute(
            "SELECT version FROM dbops.migration_history ORDER BY applied_order").fetchall()]


def test_migrate_up_takes_a_before_migrate_backup_when_something_is_pending(
        project: Project) -> None:
    taskmaster_project(project)
    engine = MigrationEngine.from_plan("test", root=project.root)
    engine.run_migrations(target="20250603090000")
    engine.run_migrations()
    engine.run_migrations()  # nothing pending: no backup
    backups = manager(project).list()
    assert [(b.reason, b.migration_version) for b in backups] == [
        ("before-migrate", None), ("before-migrate", "20250603090000")]
    assert applied(project)[-1] == LATEST_MIGRATION


def test_migrate_up_refuses_when_the_backup_fails_and_skip_backup_skips_it(
        project: Project) -> None:
    taskmaster_project(project)
    (project.root / "afile").write_text("x")
    project.write_plan("backup: { directory: afile/backups }\n"
                       "migrations: { rehearse: never }\n")
    engine = MigrationEngine.from_plan("test", root=project.root)
    with pytest.raises(BackupError, match="refusing to migrate: the before-migrate backup failed"):
        engine.run_migrations()
    assert applied(project) == []
    engine.run_migrations(skip_backup=True)
    assert applied(project)[-1] == LATEST_MIGRATION
