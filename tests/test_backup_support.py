"""Shared by the backup tests (no tests here): a TaskMaster project with a backup policy, a seeded
dataset, and ways to look at tables and their contents."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from harness import Project, TestDatabase
from psycopg import sql

from dbops.backup import BackupManager, Manifest
from dbops.backup import manifest as manifests
from dbops.migrate.engine import MigrationEngine

REPO = Path(__file__).resolve().parents[1]
TASKMASTER_TABLES = ("pipelines", "pipeline_runs", "tasks", "task_contexts", "task_logs")
SECOND_MIGRATION = "20250603090000"
LATEST_MIGRATION = "20250617080000"

SEED = """
INSERT INTO pipelines (name, repository)
  SELECT 'pipeline-' || g, 'git@example.com:team/repo-' || g FROM generate_series(1, 20) g;
INSERT INTO pipeline_runs (pipeline_id, status, trigger, commit_sha, started_at, finished_at)
  SELECT 1 + g % 20, (ARRAY['pending','running','succeeded','failed'])[1 + g % 4],
         (ARRAY['push','pull_request','schedule'])[1 + g % 3], md5(g::text) || '00000000',
         timestamptz '2025-06-01' + g * interval '1 minute',
         timestamptz '2025-06-01' + g * interval '1 minute' + interval '30 seconds'
  FROM generate_series(1, {runs}) g;
INSERT INTO tasks (pipeline_id, run_id, name, status, attempt)
  SELECT 1 + g % 20, 1 + g % {runs}, 'task-' || g,
         (ARRAY['pending','queued','running','succeeded'])[1 + g % 4], g % 3
  FROM generate_series(1, {tasks}) g;
INSERT INTO task_contexts (task_id, key, value)
  SELECT g, 'env', jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b'))
  FROM generate_series(1, {tasks}) g;
INSERT INTO task_logs (task_id, level, message)
  SELECT 1 + g % {tasks}, (ARRAY['debug','info','warn','error'])[1 + g % 4], 'line ' || md5(g::text)
  FROM generate_series(1, {logs}) g;
"""

POLICY = """
backup:
  directory: backups
  format: {format}
  jobs: {jobs}
  globals: {globals}
  before_migrate: true
  retention: {{ keep_last: {keep_last}, max_age: {max_age} }}
  verify: {{ checksums: {checksums}, restore_test: {restore_test} }}
"""


def taskmaster_project(project: Project, *, target: str = "latest", fmt: str = "custom",
                       jobs: int = 1, globals_: bool = False, keep_last: int = 3,
                       max_age: str = "7d", checksums: bool = True, restore_test: str = "never",
                       extra: str = "") -> None:
    """Copy the TaskMaster migrations in and write a plan with a backup policy."""
    shutil.copytree(REPO / "migrations", project.root / "migrations", dirs_exist_ok=True)
    project.write_plan(
        POLICY.format(format=fmt, jobs=jobs, globals=str(globals_).lower(), keep_last=keep_last,
                      max_age=max_age, checksums=str(checksums).lower(), restore_test=restore_test)
        + f"migrations: {{ target: '{target}', rehearse: never }}\n" + extra)


def migrate(project: Project, target: str | None = None) -> None:
    """Bring the schema up as test set-up: without the policy's before-migrate backup, so the
    tests count only the backups they take themselves."""
    engine = MigrationEngine.from_plan("test", root=project.root)
    engine.run_migrations(target=target, skip_backup=True)


def seed(db: TestDatabase, *, runs: int = 200, tasks: int = 2000, logs: int = 5000) -> None:
    with db.connect() as conn:
        conn.execute(SEED.format(runs=runs, tasks=tasks, logs=logs))


def manager(project: Project, messages: list[str] | None = None) -> BackupManager:
    notify = messages.append if messages is not None else None
    return BackupManager.from_plan("test", root=project.root, notify=notify)


def contents(conn: psycopg.Connection[Any], table: str) -> tuple[int, str]:
    """Rows and an md5 of every row's text, in a stable order: equal means equal contents."""
    row = conn.execute(sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
        " FROM {} t").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def database_names(db: TestDatabase) -> set[str]:
    admin = TestDatabase(db.host, db.port, "postgres")
    with admin.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def drop_database(db: TestDatabase, name: str) -> None:
    admin = TestDatabase(db.host, db.port, "postgres")
    with admin.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def aged(backup: Manifest, started_at: datetime, *, verified: bool | None = None) -> Manifest:
    """Rewrite a backup's manifest as if it had been taken at `started_at` (and, when `verified`
    is given, with its archive check passed or failed)."""
    changed = replace(backup, started_at=started_at, finished_at=started_at)
    if verified is not None:
        check = manifests.Verification(started_at, verified, () if verified else ("broken",))
        changed = replace(changed, archive_check=check, restore_test=None)
    manifests.write(changed, backup.folder)
    return changed


def other_database(db: TestDatabase, name: str) -> TestDatabase:
    return TestDatabase(db.host, db.port, name)
