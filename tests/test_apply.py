"""`dbops apply` through pyinfra against real servers: stages, gates, automatic rollback, the
audit trail, multi-host settings, and errors that are one clear line."""

from __future__ import annotations

import json
import threading
import time

import psycopg
from harness import Project, role_name
from psycopg import sql

from dbops.local import Cluster


def migration(project: Project, version: str, up: str, down: str) -> None:
    (project.root / "migrations" / f"{version}_m{version[-2:]}.sql").write_text(
        f"-- migration {version}\n-- migrate:up\n{up}\n-- migrate:down\n{down}\n"
    )
    project.run("migrate", "hash")


def full_plan(project: Project, health: str = "") -> None:
    role = role_name(project)
    project.write_plan(
        'settings:\n  work_mem: 24MB\n  application_name: "it\'s; DROP TABLE x"\n'
        f"roles:\n  {role}:\n    connection_limit: 15\n    settings: {{ statement_timeout: 30s }}\n"
        + health
    )


def show(conn: psycopg.Connection[tuple[object, ...]], name: str) -> str:
    row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
    return str(row[0]) if row else ""


def audit(project: Project) -> list[tuple[str, str]]:
    with project.database.connect() as conn:
        rows = conn.execute("SELECT result, reason FROM dbops.apply_audit ORDER BY id")
        return [(r[0], r[1]) for r in rows.fetchall()]


def test_apply_then_plan_is_empty_and_audited(project: Project, server_reset: None) -> None:
    full_plan(project)
    migration(project, "20250101000001", "CREATE TABLE items (id int);", "DROP TABLE items;")
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stderr
    assert "apply applied" in result.stdout
    again = project.run("plan", "test", "--diff")
    assert again.returncode == 0, again.stdout
    assert "No changes." in again.stdout
    with project.database.connect() as conn:
        assert show(conn, "work_mem") == "24MB"
        assert show(conn, "application_name") == "it's; DROP TABLE x"
        role = conn.execute(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role_name(project),)
        ).fetchone()
        assert role == (15,)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
        snapshot = conn.execute("SELECT settings FROM dbops.applied_snapshot").fetchone()
    assert snapshot is not None and snapshot[0]["work_mem"] == "24MB"
    assert audit(project) == [("applied", "")]


def test_gate_failing_after_settings_rolls_everything_back(
    project: Project, server_reset: None
) -> None:
    full_plan(
        project,
        "health:\n  thresholds: { long_transaction: 1s }\n"
        "  gates: { before_apply: false, after_each_stage: true, settle: 1500ms }\n",
    )
    migration(project, "20250101000001", "CREATE TABLE items (id int);", "DROP TABLE items;")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE precious (id int); INSERT INTO precious VALUES (1), (2)")
        before = show(conn, "work_mem")
    done = threading.Event()

    def long_transaction() -> None:
        with psycopg.connect(project.database.conninfo, application_name="report-job") as c:
            c.execute("SELECT count(*) FROM precious")
            done.wait(30)

    holder = threading.Thread(target=long_transaction)
    holder.start()
    try:
        result = project.run("apply", "test", "--yes")
    finally:
        done.set()
        holder.join()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(
        "apply rolled back: gate: after settings failed: health gate after "
        "settings: long_transaction: oldest transaction: pid "
    )
    assert "(report-job) open for" in lines[0]
    assert "  rolled back: setting.work_mem on primary" in lines
    assert "Traceback" not in result.stderr
    with project.database.connect() as conn:
        assert show(conn, "work_mem") == before
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role_name(project),)
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM precious").fetchone() == (2,)
    assert audit(project)[0][0] == "rolled back"


def test_failing_migration_rolls_back_earlier_stages(project: Project, server_reset: None) -> None:
    full_plan(project)
    migration(project, "20250101000001", "CREATE TABLE items (id int);", "DROP TABLE items;")
    migration(project, "20250101000002", "INSERT INTO missing VALUES (1);", "SELECT 1;")
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 1
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(
        "apply rolled back: migrations failed: migration.20250101000002 up (transaction, "
        "1 step(s)): migrations/20250101000002_m02.sql:3: INSERT INTO missing VALUES (1)"
    )
    assert "(SQLSTATE 42P01)" in first
    with project.database.connect() as conn:
        assert show(conn, "work_mem") == "4MB"
        assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM dbops.migration_history").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role_name(project),)
        ).fetchone() == (0,)
    assert audit(project)[0][0] == "rolled back"


def test_dry_run_prints_operations_and_changes_nothing(
    project: Project, server_reset: None
) -> None:
    full_plan(project)
    result = project.run("apply", "test", "--dry-run", env={"DB_PASSWORD": "Sentinel-9"})
    assert result.returncode == 0, result.stderr
    assert "python.call [@local] setting.work_mem on primary" in result.stdout
    assert "    ALTER SYSTEM SET \"work_mem\" = '24MB'" in result.stdout
    assert "python.call [@local] health gate before apply" in result.stdout
    assert "Sentinel-9" not in result.stdout + result.stderr
    with project.database.connect() as conn:
        assert show(conn, "work_mem") == "4MB"


def test_unreachable_wrong_password_and_no_privileges_are_one_line(
    project: Project, scratch_dir: object, server_reset: None
) -> None:
    project.write_plan("settings:\n  work_mem: 24MB\n")
    down = project.run("apply", "test", "--yes", env={"DB_PORT": "1"})
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1
    assert down.stderr.startswith(
        f"error: cannot connect to postgres@127.0.0.1:1/{project.database.name}:"
    )
    weak = role_name(project)
    with project.database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(weak)))
    denied = project.run("apply", "test", "--yes", env={"DB_USER": weak})
    assert denied.returncode == 1
    assert "Traceback" not in denied.stderr and denied.stderr.count("\n") == 1
    # Refused before anything runs (dbops doctor's check), not half-way through.
    assert denied.stderr.startswith(f"error: apply refused, nothing was changed: {weak} lacks ")


def test_wrong_password_is_one_line(scratch_dir: object, tmp_path: object) -> None:
    from pathlib import Path

    from harness import make_project

    base = Path(str(scratch_dir))
    cluster = Cluster(base / "pw")
    cluster.up()
    try:
        with psycopg.connect(
            host=cluster.host,
            port=cluster.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute("CREATE ROLE secret_user LOGIN PASSWORD 'right-one'")
            conn.execute("CREATE DATABASE pwdb OWNER secret_user")
        hba = cluster.data_dir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        with psycopg.connect(
            host=cluster.host,
            port=cluster.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute("SELECT pg_reload_conf()")
        from harness import TestDatabase

        project = make_project(
            Path(str(tmp_path)) / "pw",
            TestDatabase(cluster.host, cluster.port, "pwdb", "secret_user"),
        )
        result = project.run("plan", "test", env={"DB_PASSWORD": "Wrong-Sentinel-77"})
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1
        assert 'password authentication failed for user "secret_user"' in result.stderr
        assert "Wrong-Sentinel-77" not in result.stdout + result.stderr
        assert project.run("plan", "test", env={"DB_PASSWORD": "right-one"}).returncode == 0
    finally:
        cluster.down()


def wait_for_database_on(replica: Cluster, name: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with psycopg.connect(
            host=replica.host, port=replica.port, user="postgres", dbname="postgres"
        ) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached the replica")


def test_multi_host_inventory_applies_to_each_server(
    project: Project, pg_replica: Cluster, server_reset: None
) -> None:
    (project.root / "inventories").mkdir()
    (project.root / "inventories" / "test.py").write_text(
        "primary = [('@local', {'pg_name': 'primary'})]\n"
        "replica = [('@chroot//', {'pg_name': 'replica1'})]\n"
    )
    project.write_plan(
        "inventory: inventories/test.py\nsettings:\n  work_mem: 12MB\n",
        database=f"  replicas:\n    - {{ name: replica1, host: 127.0.0.1, port: {pg_replica.port} }}\n",
    )
    wait_for_database_on(pg_replica, project.database.name)
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "  applied: setting.work_mem on primary" in result.stdout
    assert "  applied: setting.work_mem on replica1" in result.stdout
    assert "gate after apply: ok: replica1 is " in result.stdout
    with psycopg.connect(
        host=pg_replica.host, port=pg_replica.port, user="postgres", dbname="postgres"
    ) as conn:
        assert show(conn, "work_mem") == "12MB"
    assert project.run("plan", "test", "--diff").returncode == 0


def test_apply_json_plan_records_what_changed(project: Project, server_reset: None) -> None:
    project.write_plan("settings:\n  work_mem: 24MB\n")
    assert project.run("apply", "test", "--yes").returncode == 0
    with project.database.connect() as conn:
        changes = conn.execute("SELECT changes FROM dbops.apply_audit").fetchone()
    assert changes is not None
    assert json.loads(json.dumps(changes[0])) == [
        {"address": "setting.work_mem", "action": "~", "before": "4MB", "after": "24MB"}
    ]


def test_settle_is_honoured(project: Project, server_reset: None) -> None:
    project.write_plan(
        "settings:\n  work_mem: 24MB\nhealth:\n  gates: { before_apply: false, settle: 1s }\n"
    )
    started = time.monotonic()
    assert project.run("apply", "test", "--yes").returncode == 0
    assert time.monotonic() - started >= 1.0
