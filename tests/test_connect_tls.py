"""TLS to PostgreSQL from the plan, against a real server with `ssl = on` and a certificate for
`localhost` from a CA made here (trustme): verify-full with the plan's sslrootcert connects, a
wrong CA or host name is one clear line, `require` connects, and the pool, the health monitor,
backups (pg_dump, pg_restore) and migrations (the rehearsal's pg_dump and psql too) all use the
plan's TLS settings. The server refuses connections without TLS."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import trustme
from harness import TEST_SETTINGS, Project, TestDatabase, fresh_database, scratch_area

from dbops import connect
from dbops.backup import BackupManager
from dbops.backup.dump import Started
from dbops.config.load import load_plan
from dbops.health import HealthMonitor
from dbops.local import Cluster
from dbops.migrate.engine import MigrationEngine
from dbops.pool import PoolManager

REPO = Path(__file__).resolve().parents[1]
SECRET = "Tls-Secret-4b1d"

HBA = """local all all trust
hostssl all all 127.0.0.1/32 trust
hostssl all all ::1/128 trust
hostnossl all all 0.0.0.0/0 reject
hostnossl all all ::/0 reject
"""

# What a client tool may find in its environment: a few basics and libpq's own variables.
CHILD_VARIABLES = {"PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ",
                   "TMPDIR", "PGPASSFILE", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY",
                   "PGAPPNAME", "PGCONNECT_TIMEOUT", "PGPASSWORD"}


@dataclass(frozen=True)
class TlsServer:
    cluster: Cluster
    ca: Path
    """The CA that signed the server's certificate (for `localhost`)."""
    other_ca: Path
    """A CA that signed nothing the server has."""


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    """One server with ssl = on for the module; key files owned by the server's OS user."""
    if (Path.home() / ".postgresql" / "root.crt").exists():
        pytest.skip("~/.postgresql/root.crt exists: libpq's default CA would hide a missing one")
    with scratch_area("dbops-tls-") as base:
        certs = base / "certs"
        certs.mkdir(mode=0o755)
        ca = trustme.CA()
        issued = ca.issue_cert("localhost")
        for blob in issued.cert_chain_pems:
            blob.write_to_path(str(certs / "server.crt"), append=True)
        issued.private_key_pem.write_to_path(str(certs / "server.key"))
        ca.cert_pem.write_to_path(str(certs / "ca.crt"))
        trustme.CA().cert_pem.write_to_path(str(certs / "other-ca.crt"))
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for name in ("server.crt", "server.key"):
                os.chown(certs / name, account.pw_uid, account.pw_gid)
        (certs / "server.key").chmod(0o600)
        cluster = Cluster(base / "data", settings={
            **TEST_SETTINGS, "ssl": "on", "ssl_cert_file": str(certs / "server.crt"),
            "ssl_key_file": str(certs / "server.key")})
        try:
            cluster.up()
            (cluster.data_dir / "pg_hba.conf").write_text(HBA)
            with psycopg.connect(host=cluster.host, port=cluster.port, user="postgres",
                                 dbname="postgres", sslmode="require", autocommit=True) as conn:
                conn.execute("SELECT pg_reload_conf()")
            yield TlsServer(cluster, certs / "ca.crt", certs / "other-ca.crt")
        finally:
            cluster.down()


@pytest.fixture
def tls_project(tls_server: TlsServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project whose plans reach a fresh database on the TLS server; its CAs under tls/."""
    with fresh_database(tls_server.cluster) as db:
        root = tmp_path / "project"
        (root / "plans").mkdir(parents=True)
        (root / "tls").mkdir()
        shutil.copy(tls_server.ca, root / "tls" / "ca.crt")
        shutil.copy(tls_server.other_ca, root / "tls" / "other-ca.crt")
        shutil.copytree(REPO / "migrations", root / "migrations")
        monkeypatch.chdir(root)
        yield Project(root, TestDatabase("localhost", db.port, db.name))


def write_plan(project: Project, environment: str, *, host: str = "localhost",
               sslmode: str = "verify-full", rootcert: str | None = "tls/ca.crt",
               extra: str = "") -> None:
    db = project.database
    (project.root / "plans" / f"{environment}.yaml").write_text(
        "apiVersion: dbops/v1\n"
        f"environment: {environment}\n"
        "database:\n"
        f"  host: {host}\n  port: {db.port}\n  name: {db.name}\n  user: postgres\n"
        "  password: ${DB_PASSWORD:-}\n"
        f"  sslmode: {sslmode}\n"
        + (f"  sslrootcert: {rootcert}\n" if rootcert else "")
        + "pool: { instances: 1, min_size: 1, max_size: 2 }\n" + extra)


def ssl_in_use(conn: psycopg.Connection[object]) -> bool:
    row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    return bool(row and row[0])


def test_verify_full_with_the_plans_ca_connects_and_require_connects(
        tls_project: Project) -> None:
    write_plan(tls_project, "test")
    write_plan(tls_project, "required", sslmode="require", rootcert=None)
    for environment in ("test", "required"):
        plan = load_plan(environment, root=tls_project.root)
        with connect.connection(plan, command="status") as conn:
            assert ssl_in_use(conn)
    assert load_plan("test", root=tls_project.root).database.sslrootcert == \
        tls_project.root / "tls" / "ca.crt"


def test_a_wrong_ca_or_host_name_fails_in_one_clear_line(tls_project: Project) -> None:
    write_plan(tls_project, "wrongca", rootcert="tls/other-ca.crt")
    write_plan(tls_project, "byaddress", host="127.0.0.1")
    for environment, cause in (
            ("wrongca", "certificate verify failed"),
            ("byaddress", 'server certificate for "localhost" does not match host name '
                          '"127.0.0.1"')):
        result = tls_project.run("plan", environment)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        host = "localhost" if environment == "wrongca" else "127.0.0.1"
        assert lines[0].startswith(f"error: cannot connect to postgres@{host}:")
        assert cause in lines[0]
        rootcert = tls_project.root / "tls" / ("other-ca.crt" if environment == "wrongca"
                                                else "ca.crt")
        assert lines[0].endswith(f"(sslmode verify-full, sslrootcert {rootcert})")


def test_pool_health_backups_and_migrations_use_the_plans_tls(
        tls_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", SECRET)  # trust authentication: accepted and unused
    monkeypatch.setenv("UNRELATED_API_TOKEN", "not-for-children")
    write_plan(tls_project, "test", extra=(
        "backup: { directory: backups, before_migrate: true, verify: { restore_test: never } }\n"
        "migrations: { target: '20250603090000', rehearse: always }\n"))
    plan = load_plan("test", root=tls_project.root)

    # Migrations: the before-migrate backup (pg_dump), the rehearsal (pg_dump, psql), the run.
    result = MigrationEngine(plan).run_migrations()
    assert [e.migration.version for e in result.executions] == ["20250527100000", "20250603090000"]
    assert [m.reason for m in BackupManager(plan).list()] == ["before-migrate"]

    started: list[tuple[str, dict[str, str]]] = []

    def record(process: Started) -> None:
        """The environment each tool was given; and, while it still runs (a quick one may be
        gone already), what the kernel says it has: the same."""
        env = dict(process.env)
        os.kill(process.pid, signal.SIGSTOP)
        try:
            raw = Path(f"/proc/{process.pid}/environ").read_bytes()
        finally:
            os.kill(process.pid, signal.SIGCONT)
        seen = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        assert seen in ({}, env), process.tool
        started.append((process.tool, env))

    backups = BackupManager(plan, on_start=record)
    made = backups.create()
    assert backups.verify(made.id, restore_test=True).ok
    assert [tool for tool, _ in started] == ["pg_dump", "pg_restore", "pg_restore", "pg_restore"]
    for tool, env in started:
        assert set(env) <= CHILD_VARIABLES, (tool, sorted(set(env) - CHILD_VARIABLES))
        assert "DB_PASSWORD" not in env and "UNRELATED_API_TOKEN" not in env
    connecting = [env for tool, env in started if "PGSSLMODE" in env]
    assert len(connecting) == 2  # pg_dump and the restore test's pg_restore; --list reads a file
    for env in connecting:
        assert env["PGSSLMODE"] == "verify-full"
        assert env["PGSSLROOTCERT"] == str(tls_project.root / "tls" / "ca.crt")
        assert env["PGPASSWORD"] == SECRET

    with PoolManager.from_plan(plan) as pool, pool.connection() as conn:
        assert ssl_in_use(conn)

    with HealthMonitor(plan, persist=False, alerts=False) as monitor:
        report = monitor.force_health_check()
    assert report.error is None
    connectivity = report.result("connectivity")
    assert connectivity is not None and connectivity.status == "ok"
