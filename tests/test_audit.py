"""The audit log: every command that changes something leaves one record (in the database, else
in the project's local log), and `dbops audit` reads both."""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

from harness import Project

from dbops import __version__
from dbops.migrate import files


def migration(project: Project, version: str, up: str, down: str) -> None:
    path = project.root / "migrations" / f"{version}_m{version[-4:]}.sql"
    path.write_text(f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n")
    files.write_sum(project.root / "migrations")


def audit(project: Project, *args: str) -> list[dict[str, Any]]:
    result = project.run("audit", "test", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    records: list[dict[str, Any]] = json.loads(result.stdout)
    return records


def ok(project: Project, *args: str) -> str:
    result = project.run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_changing_command_leaves_one_record(project: Project) -> None:
    project.write_plan("backup: { directory: backups, before_migrate: false }\n")
    migration(project, "20250101000001", "CREATE TABLE a (id int);", "DROP TABLE a;")
    migration(project, "20250101000002", "CREATE TABLE b (id int);", "DROP TABLE b;")
    ok(project, "apply", "test", "--yes")
    ok(project, "rollback", "test", "--yes")
    ok(project, "migrate", "up", "test", "--yes")
    created = ok(project, "backup", "create", "test").split()[1]
    ok(project, "backup", "restore", "test", created, "--into", f"{project.database.name}_copy")
    ok(project, "backup", "prune", "test")
    ok(project, "migrate", "up", "test", "--dry-run")  # changes nothing: no record
    ok(project, "plan", "test")  # neither

    records = audit(project)
    assert [(r["action"], r["result"]) for r in records] == [
        ("apply", "applied"), ("rollback", "done"), ("migrate up", "done"),
        ("backup create", "done"), ("backup restore", "done"), ("backup prune", "done")]
    assert records[1]["detail"] == "1 migration(s) rolled back: 20250101000002"
    assert records[2]["detail"] == "1 migration(s) applied: 20250101000002"
    assert records[3]["detail"].startswith(f"backup {created} created")
    for record in records:
        assert record["os_user"] == getpass.getuser()
        assert record["host"] == socket.gethostname()
        assert record["role"] == "postgres"
        assert record["dbops_version"] == __version__
        assert record["stored"] == "database"
        assert len(record["plan_hash"]) == 16
    assert len({r["record_id"] for r in records}) == len(records)
    assert not (project.root / ".dbops" / "audit.jsonl").exists()

    text = ok(project, "audit", "test")
    assert f"migrate up           done        {getpass.getuser()}@{socket.gethostname()} as " \
           "postgres" in text
    assert "    1 migration(s) applied: 20250101000002" in text
    assert audit(project, "--since", "1h") == records
    with project.database.connect() as conn:
        conn.execute("UPDATE dbops.apply_audit SET at = at - interval '2 days'"
                     " WHERE action <> 'backup prune'")
    assert [r["action"] for r in audit(project, "--since", "1d")] == ["backup prune"]


def test_a_failed_operation_is_recorded_with_its_reason(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);\nSELECT 1/0;", "DROP TABLE a;")
    result = project.run("migrate", "up", "test", "--yes", "--skip-backup")
    assert result.returncode == 1
    [record] = audit(project)
    assert (record["action"], record["result"]) == ("migrate up", "failed")
    assert "division by zero" in record["detail"]
    assert record["detail"].endswith("before-migrate backup skipped (--skip-backup)")
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regclass('a')").fetchone() == (None,)


def test_an_unreachable_database_is_recorded_locally(project: Project) -> None:
    project.plan.write_text(
        project.plan.read_text().replace(f"port: {project.database.port}", "port: 1"))
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    local = project.root / ".dbops" / "audit.jsonl"
    [line] = local.read_text().splitlines()
    record = json.loads(line)
    assert (record["action"], record["result"]) == ("apply", "failed")
    assert record["stored"].startswith("local: cannot connect")
    assert oct(local.stat().st_mode & 0o777) == "0o600"

    listed = project.run("audit", "test", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert "local log only" in listed.stderr
    assert [r["record_id"] for r in json.loads(listed.stdout)] == [record["record_id"]]


def test_a_restore_over_the_live_database_keeps_the_audit_trail_everywhere(
        project: Project) -> None:
    project.write_plan("backup: { directory: backups, before_migrate: false }\n")
    migration(project, "20250101000001", "CREATE TABLE a (id int);", "DROP TABLE a;")
    ok(project, "migrate", "up", "test", "--yes")
    created = ok(project, "backup", "create", "test").split()[1]
    ok(project, "backup", "restore", "test", created, "--replace", "--yes")
    # The dump was taken before its own record was written: the restore would have lost that
    # record, so it was kept in the local log first, then written into the restored database
    # with the restore's own record.
    local = [json.loads(line) for line in (project.root / ".dbops" / "audit.jsonl").open()]
    assert [(r["action"], r["stored"]) for r in local] == [
        ("migrate up", "local: kept before the database was replaced"),
        ("backup create", "local: kept before the database was replaced"),
        ("backup restore", "local: the operation replaces the database")]
    (project.root / ".dbops" / "audit.jsonl").unlink()  # as another machine sees it
    records = audit(project)
    assert [(r["action"], r["stored"], r["record_id"]) for r in records] == [
        (r["action"], "database", r["record_id"]) for r in local]
    assert records[1]["os_user"] == local[1]["os_user"] and records[2]["result"] == "done"
