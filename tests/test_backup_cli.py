"""`dbops backup ...` and `dbops rollback --emergency` as a user runs them (the real command line
against a real PostgreSQL). Skipped until the commands are wired into dbops/cli.py."""

from __future__ import annotations

import json

import pytest
from harness import Project
from test_backup_support import LATEST_MIGRATION, SECOND_MIGRATION, migrate, taskmaster_project

from dbops.cli import main

pytestmark = pytest.mark.skipif("backup" not in main.commands,
                                reason="dbops backup is not wired into the CLI yet")
SENTINEL = "s3ntinel-Cli-Backup-Pw"


def test_create_list_verify_prune(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    env = {"DB_PASSWORD": SENTINEL}
    created = project.run("backup", "create", "test", "--reason", "scheduled", env=env)
    assert created.returncode == 0, created.stderr
    backup_id = created.stdout.split()[1]
    assert created.stdout.startswith(f"backup {backup_id} created: ")
    listed = project.run("backup", "list", "test", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)["backups"]}
    assert (rows[backup_id]["reason"], rows[backup_id]["migration_version"]) == (
        "scheduled", LATEST_MIGRATION)
    table = project.run("backup", "list", "test", env=env).stdout.splitlines()
    assert table[0].split()[0] == "ID" and backup_id in table[-1]
    verified = project.run("backup", "verify", "test", backup_id, "--restore-test", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "recovery time" in verified.stdout
    pruned = project.run("backup", "prune", "test", "--dry-run", env=env)
    assert pruned.returncode == 0 and "would delete 0 backup(s)" in pruned.stdout
    unknown = project.run("backup", "verify", "test", "nope", env=env)
    assert unknown.returncode == 1 and "error: no backup 'nope'; nearest: " in unknown.stderr
    assert backup_id in unknown.stderr
    for result in (created, listed, verified, pruned, unknown):
        assert SENTINEL not in result.stdout + result.stderr


def test_corrupt_backup_fails_verify_with_exit_1(project: Project) -> None:
    taskmaster_project(project)
    migrate(project)
    backup_id = project.run("backup", "create", "test").stdout.split()[1]
    dump = project.root / "backups" / backup_id / "dump.pgdump"
    dump.write_bytes(dump.read_bytes()[:-10])
    verified = project.run("backup", "verify", "test", backup_id)
    assert verified.returncode == 1
    assert "dump.pgdump: SHA-256 mismatch: manifest" in verified.stderr
    restored = project.run("backup", "restore", "test", backup_id)
    assert restored.returncode == 1 and "refusing to restore" in restored.stderr


def test_restore_into_new_then_over_live_and_emergency_rollback(project: Project) -> None:
    taskmaster_project(project)
    migrate(project, SECOND_MIGRATION)
    backup_id = project.run("backup", "create", "test", "--reason", "before-migrate").stdout.split()[1]
    migrate(project)
    name = f"{project.database.name}_cli"
    into = project.run("backup", "restore", "test", backup_id, "--into", name)
    assert into.returncode == 0, into.stderr
    assert f"into {name}" in into.stdout and f"{name} is now at migration {SECOND_MIGRATION}" \
        in into.stdout
    with project.database.connect() as conn:
        conn.execute(f'DROP DATABASE "{name}"')

    preview = project.run("rollback", "test", "--emergency", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "would restore" in preview.stdout and "safety backup" in preview.stdout
    refused = project.run("rollback", "test", "--emergency")
    assert refused.returncode == 1 and "without --yes" in refused.stderr
    rolled = project.run("rollback", "test", "--emergency", "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert f"is now at migration {SECOND_MIGRATION}" in rolled.stdout
    with project.database.connect() as conn:
        assert conn.execute("SELECT max(version) FROM dbops.migration_history").fetchone() == (
            SECOND_MIGRATION,)
