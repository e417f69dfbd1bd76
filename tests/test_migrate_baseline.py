"""`dbops migrate baseline ENV --from-database`: the live schema becomes the first migration,
recorded only once a scratch database rebuilt from it has the same fingerprint."""

from __future__ import annotations

from datetime import timedelta

from harness import Project, fresh_database

from dbops.connect import Endpoint
from dbops.local import Cluster
from dbops.migrate.baseline import FUNCTION_BODIES, clean, migration_text
from dbops.schema_facts import schema_fingerprint

SCHEMA = """
CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE,
                       created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     account_id bigint NOT NULL REFERENCES accounts,
                     total numeric(10, 2) CHECK (total >= 0));
CREATE INDEX orders_account ON orders (account_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
CREATE FUNCTION order_count(who bigint) RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT count(*) FROM orders WHERE account_id = who $$;
"""


def test_clean_drops_session_lines() -> None:
    dump = ("--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
            "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n"
            "SELECT pg_catalog.set_config('search_path', '', false);\n\n\n\n"
            "CREATE TABLE public.t (\n    id integer\n);\n\n"
            "SET default_table_access_method = heap;\n\\unrestrict abc123\n")
    assert clean(dump) == (FUNCTION_BODIES + "--\n-- PostgreSQL database dump\n--\n\n"
                           "CREATE TABLE public.t (\n    id integer\n);\n")
    ep = Endpoint("h", 5432, "shop", "u", "disable", timedelta(seconds=5))
    text = migration_text("CREATE TABLE t ();\n", ep)
    assert "\n-- dbops:baseline\n" in text and "\n-- migrate:up\nCREATE TABLE t ();\n" in text


def test_baseline_from_database(project: Project, pg_primary: Cluster) -> None:
    with project.database.connect() as conn:
        conn.execute(SCHEMA)
        conn.commit()
    result = project.run("migrate", "baseline", "test", "--from-database", "--yes")
    assert result.returncode == 0, result.stderr
    [path] = sorted((project.root / "migrations").glob("*_baseline.sql"))
    assert result.stdout == (f"wrote migrations/{path.name} from the live schema (rebuilds it "
                             "exactly) and recorded it as applied\n")
    text = path.read_text()
    assert "-- dbops:baseline" in text and "CREATE TABLE public.orders" in text
    for line in text.splitlines():
        assert not line.startswith(("\\", "SET ", "SELECT pg_catalog.set_config")) or (
            line == "SET LOCAL check_function_bodies = false;"), line

    with project.database.connect() as conn:
        rows = conn.execute("SELECT version, execution_mode FROM dbops.migration_history"
                            ).fetchall()
        live = schema_fingerprint(conn)
    assert rows == [(path.name[:14], "baseline")]
    assert project.run("migrate", "validate", "test").returncode == 0
    lint = project.run("migrate", "lint", str(path))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    status = project.run("migrate", "status", "test")
    assert status.returncode == 0, status.stderr
    assert "pending" not in status.stdout, status.stdout

    # Another environment's empty database gets the same schema by running the baseline.
    with fresh_database(pg_primary) as other:
        Project(project.root, other).write_plan(environment="fresh")
        fresh = project.run("migrate", "up", "fresh", "--yes")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        with other.connect() as conn:
            assert schema_fingerprint(conn) == live

    again = project.run("migrate", "baseline", "test", "--from-database", "--yes")
    assert again.returncode == 1
    assert again.stderr.startswith("error: migrations/ already has migrations: --from-database")


def test_baseline_needs_a_source(project: Project) -> None:
    result = project.run("migrate", "baseline", "test")
    assert result.returncode == 1  # a usage error
    assert "give --version VERSION or --from-database (one of them)" in result.stderr
    assert not list((project.root / "migrations").iterdir())
