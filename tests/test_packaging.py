"""dbops as a user installs it: the built wheel in a fresh virtual environment, run from elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from harness import TestDatabase, fresh_database

from dbops.config.schema import packaged_schema
from dbops.local import Cluster

REPO = Path(__file__).resolve().parents[1]


def test_packaged_schemas_are_the_published_ones() -> None:
    for published in sorted((REPO / "schemas").glob("*.json")):
        assert packaged_schema(published.name) == published.read_bytes(), published.name
    assert sorted(p.name for p in (REPO / "dbops" / "schemas").glob("*.json")) == sorted(
        p.name for p in (REPO / "schemas").glob("*.json")
    )


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )


def _pgbench() -> str:
    found = shutil.which("pgbench") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)),
        None)
    assert found, "pgbench is installed with the PostgreSQL server package"
    return found


def _their_database(db: TestDatabase, name: str) -> None:
    """A team's existing database: pgbench tables, an enum, a table and a view of their own, two
    roles, three settings away from their defaults."""
    subprocess.run([_pgbench(), "-i", "-s", "1", "-q", "-h", db.host, "-p", str(db.port),
                    "-U", db.user, db.name], check=True, capture_output=True)
    with db.connect() as conn:
        for statement in (
            "CREATE TYPE ticket_state AS ENUM ('open', 'closed')",
            "CREATE TABLE tickets (id bigint PRIMARY KEY, state ticket_state NOT NULL)",
            "CREATE VIEW open_tickets AS SELECT id FROM tickets WHERE state = 'open'",
            f"CREATE ROLE {name}_web LOGIN CONNECTION LIMIT 40",
            f"ALTER ROLE {name}_web SET statement_timeout = '30s'",
            f"CREATE ROLE {name}_report NOLOGIN CONNECTION LIMIT 3",
            "ALTER SYSTEM SET work_mem = '24MB'",
            "ALTER SYSTEM SET log_min_duration_statement = '250ms'",
            "ALTER SYSTEM SET idle_in_transaction_session_timeout = '10min'",
            "SELECT pg_reload_conf()",
        ):
            conn.execute(statement)


def test_a_team_adopts_dbops_with_the_installed_wheel(
    pg_primary: Cluster, server_reset: None, tmp_path: Path
) -> None:
    """The README's "Use dbops on your own database", as a user runs it: the built wheel in a fresh
    virtual environment, a project outside the checkout, once from the project root and once from
    a subdirectory (each on its own live database)."""
    # Build from a copy: the checkout's build/ stays untouched by a test.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "dbops", source / "dbops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DBOPS_PROJECT_DIR")
           and not k.startswith("DB_")}
    wheels = tmp_path / "wheels"
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps",
                 "-q", "-w", wheels, source, cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("dbops-*.whl")
    catalogs = {f"dbops/data/settings/{p.name}"
                for p in (REPO / "dbops" / "data" / "settings").glob("pg*.json")}
    assert catalogs and catalogs <= set(zipfile.ZipFile(wheel).namelist())

    # Dependencies already installed are reused (or fetched from PyPI); dbops comes from the wheel.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path, env=env)
    python, dbops = venv / "bin" / "python", venv / "bin" / "dbops"
    for extra in (["--no-deps", "--force-reinstall"], []):
        installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                         *extra, wheel, cwd=tmp_path, env=env)
        assert installed.returncode == 0, installed.stderr
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    where = _run(python, "-c", "import dbops; print(dbops.__file__)", cwd=tmp_path, env=env)
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(Path(site.stdout.strip())), where.stdout
    version = _run(dbops, "--version", cwd=tmp_path, env=env)
    assert (version.returncode, version.stdout.strip()) == (0, "dbops, version 0.1.0")
    assert _run(python, "-m", "dbops", "--version", cwd=tmp_path, env=env).stdout == version.stdout

    for place in ("root", "subdirectory"):
        with fresh_database(pg_primary) as db:
            _their_database(db, "app_" + db.name.removeprefix("t_"))
            db_env = {**env, "DB_HOST": db.host, "DB_PORT": str(db.port), "DB_NAME": db.name,
                      "DB_USER": db.user, "DB_PASSWORD": "never-written", "DB_SSL_MODE": "disable"}
            home = tmp_path / place
            home.mkdir()
            assert _run(dbops, "init", "project", cwd=home, env=db_env).returncode == 0
            root = home / "project"
            here = root if place == "root" else root / "migrations"

            def run(*args: str, cwd: Path = here) -> subprocess.CompletedProcess[str]:
                result = _run(dbops, *args, cwd=cwd, env=db_env)  # noqa: B023
                assert "Traceback" not in result.stderr, result.stderr
                return result

            for args, code in [
                (("import", "prod", "--from-database"), 0),
                (("validate",), 0),
                (("migrate", "baseline", "prod", "--from-database", "--yes"), 0),
                (("plan", "prod", "--diff"), 0),
                (("drift", "prod"), 0),
            ]:
                result = run(*args)
                assert result.returncode == code, (place, args, result.stdout, result.stderr)
            assert "never-written" not in (root / "plans" / "prod.yaml").read_text()
            (root / "migrations" / "20990101000000_notes.sql").write_text(
                "-- notes on tickets\n-- migrate:up\nCREATE TABLE notes (id bigint PRIMARY KEY,"
                " ticket bigint REFERENCES tickets);\n-- migrate:down\nDROP TABLE notes;\n")
            for args, code in [
                (("migrate", "hash"), 0),
                (("plan", "prod", "--diff"), 2),
                (("apply", "prod", "--yes"), 0),
                (("plan", "prod", "--diff"), 0),
                (("drift", "prod"), 0),
            ]:
                result = run(*args)
                assert result.returncode == code, (place, args, result.stdout, result.stderr)
            with db.connect() as conn:
                assert conn.execute("SELECT to_regclass('notes') IS NOT NULL,"
                                    " to_regclass('pgbench_accounts') IS NOT NULL").fetchone() == (
                    True, True)
