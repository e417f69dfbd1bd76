"""`dbops backup ...` and `dbops rollback --emergency` as a user runs them (the real command line
against a real PostgreSQL)."""

from __future__ import annotations

import json

from harness import Project
from test_backup_support import LATEST_MIGRATION, SECOND_MIGRATION, migrate, taskmaster_project

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


def test_a_failed_restore_test_fails_create_and_names_the_cause(project: Project) -> None:
    # pg_dump clears search_path: on restore, the check's function cannot see `helper`, so the
    # COPY fails in a parallel worker and pg_restore's last line only says a worker died.
    project.write_plan("backup: { directory: backups, jobs: 2, before_migrate: false,"
                       " verify: { restore_test: each } }\n")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE helper (n int); CREATE FUNCTION small(x int) RETURNS boolean"
                     " LANGUAGE sql AS $$ SELECT x > (SELECT count(*) FROM helper) $$;"
                     " CREATE TABLE t (x int CHECK (small(x))); INSERT INTO t VALUES (5)")
    created = project.run("backup", "create", "test")
    assert created.returncode == 1 and "created" not in created.stdout
    assert "FAILED its restore test and is not usable (kept, marked failed)" in created.stderr
    assert ('pg_restore: error: COPY failed for table "t": ERROR: relation "helper" does not '
            'exist' in created.stderr), created.stderr
    assert "worker process died" not in created.stderr and "/.tmp-" not in created.stderr
    listed = json.loads(project.run("backup", "list", "test", "--format", "json").stdout)
    assert [b["verified"] for b in listed["backups"]] == [False]


def test_restore_over_the_live_database_needs_replace(project: Project) -> None:
    project.write_plan("backup: { directory: backups, before_migrate: false }\n")
    backup_id = "20250101T000000Z-abcd"  # refused before the backup is looked for
    live = project.database.name
    old_spelling = project.run("backup", "restore", "test", backup_id, "--yes")
    assert old_spelling.returncode == 1
    assert (f"error: --yes only skips the question: restoring over the live database {live} "
            "needs --replace" in old_spelling.stderr)
    into_live = project.run("backup", "restore", "test", backup_id, "--into", live)
    assert into_live.returncode == 1
    assert f"{live} is the live database: replacing it needs --replace" in into_live.stderr
    unasked = project.run("backup", "restore", "test", backup_id, "--replace")
    assert unasked.returncode == 1 and "without --yes (no terminal to ask)" in unasked.stderr
