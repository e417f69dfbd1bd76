"""`dbops plan`: the ChangeSet against a real server, its renderings, exit codes, errors that stop
a plan before anything runs, and proof that planning never writes."""

from __future__ import annotations

import json

import psycopg
import pytest
from harness import Project, role_name
from psycopg import sql

from dbops.changes import ChangeSet

SETTINGS = "settings:\n  work_mem: 24MB\n  log_min_duration_statement: 1s\n"


def role_plan(project: Project, limit: int = 20) -> str:
    role = role_name(project)
    return (
        f"roles:\n  {role}:\n    connection_limit: {limit}\n"
        f"    settings: {{ statement_timeout: 30s }}\n"
    )


def add_migration(
    project: Project,
    version: str = "20250101000001",
    up: str = "CREATE TABLE items (id int PRIMARY KEY, name text);",
    down: str = "DROP TABLE items;",
) -> None:
    (project.root / "migrations" / f"{version}_m.sql").write_text(
        f"-- a migration\n-- migrate:up\n{up}\n-- migrate:down\n{down}\n"
    )
    project.run("migrate", "hash")


def test_plan_lists_settings_roles_and_migrations(project: Project, server_reset: None) -> None:
    project.write_plan(SETTINGS + role_plan(project))
    add_migration(project)
    result = project.run("plan", "test")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  ~ setting.work_mem: 4MB -> 24MB (reload)" in out
    assert "  ~ setting.log_min_duration_statement: -1 -> 1s (reload)" in out
    assert f"  + role.{role_name(project)}" in out
    assert "  + migration.20250101000001: m" in out
    assert out.rstrip().endswith("Plan: 2 to add, 2 to change, 0 to remove, 0 needs restart")


def test_diff_exit_codes(project: Project, server_reset: None) -> None:
    assert project.run("plan", "test", "--diff").returncode == 0
    project.write_plan(SETTINGS)
    assert project.run("plan", "test", "--diff").returncode == 2
    assert project.run("plan", "test", "--detailed-exitcode").returncode == 2
    assert project.run("plan", "test").returncode == 0


def test_unit_normalisation_means_no_change(project: Project, server_reset: None) -> None:
    with project.database.connect() as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '1GB'")
        conn.execute("ALTER SYSTEM SET log_min_duration_statement = 2000")
        conn.execute("SELECT pg_reload_conf()")
    project.write_plan("settings:\n  work_mem: 1048576kB\n  log_min_duration_statement: 2s\n")
    result = project.run("plan", "test", "--diff")
    assert result.returncode == 0, result.stdout


def test_json_and_markdown_formats(project: Project, server_reset: None) -> None:
    project.write_plan(SETTINGS)
    data = json.loads(project.run("plan", "test", "--format", "json").stdout)
    assert data["format_version"] == 2
    assert [c["address"] for c in data["changes"]] == [
        "setting.work_mem",
        "setting.log_min_duration_statement",
    ]
    assert data["changes"][0]["statements"][0] == "ALTER SYSTEM SET \"work_mem\" = '24MB'"
    markdown = project.run("plan", "test", "--format", "markdown").stdout
    assert markdown.index("**Plan: 0 to add, 2 to change") < markdown.index("<details>")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("  no_such_setting: 1\n", "settings.no_such_setting: unknown setting"),
        ("  work_mem: 5TB\n", "settings.work_mem: 5TB is out of range (64kB .. 2147483647kB)"),
        ("  enable_seqscan: maybe\n", "settings.enable_seqscan: 'maybe' is not a boolean (on/off)"),
        ("  wal_level: hot\n", "settings.wal_level: 'hot' is not one of minimal, replica, logical"),
        ("  server_version: '16'\n", "settings.server_version: is read-only (internal)"),
        ("  work_mem: 4MB'; DROP TABLE x; --\n", 'DROP TABLE x; --" is not a number'),
    ],
)
def test_bad_settings_refused_before_anything_runs(
    project: Project, settings: str, message: str, server_reset: None
) -> None:
    project.write_plan("settings:\n" + settings)
    for command in (("plan", "test"), ("apply", "test", "--yes")):
        result = project.run(*command)
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regnamespace('dbops')").fetchone() == (None,)


def test_setting_name_carrying_sql_is_refused_by_the_schema(project: Project) -> None:
    project.write_plan('settings:\n  "work_mem = 1; DROP TABLE x; --": 1\n')
    result = project.run("plan", "test")
    assert result.returncode == 1
    assert "invalid name" in result.stderr


def test_budget_against_a_live_role_limit(project: Project, server_reset: None) -> None:
    role = role_name(project)
    with project.database.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 5").format(sql.Identifier(role))
        )
    project.write_plan("")
    text = project.plan.read_text().replace(
        "pool: { instances: 1, min_size: 1, max_size: 4 }",
        f"pool: {{ role: {role}, instances: 3, min_size: 1, max_size: 4 }}",
    )
    project.plan.write_text(text)
    result = project.run("plan", "test")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"pool.max_size: connection budget: 3 instances × 4 + 5 reserve = 17 exceeds role {role}'s "
        "connection limit 5"
    )


def test_budget_against_live_max_connections(project: Project) -> None:
    project.write_plan("")
    text = project.plan.read_text().replace("instances: 1,", "instances: 60,")
    project.plan.write_text(text)
    result = project.run("plan", "test")
    assert result.returncode == 1
    assert (
        "connection budget: 60 instances × 4 + 5 reserve = 245 exceeds max_connections 200 minus "
        "3 reserved (197)"
    ) in result.stderr


def test_plan_never_writes_and_runs_as_a_read_only_role(
    project: Project, server_reset: None
) -> None:
    add_migration(project)
    project.run("migrate", "up", "test", "--yes")
    reader = role_name(project)
    with project.database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA dbops TO {}").format(sql.Identifier(reader)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA dbops TO {}").format(
                sql.Identifier(reader)
            )
        )
    project.write_plan(SETTINGS)
    try:
        result = project.run("plan", "test", "--format", "json", env={"DB_USER": reader})
    finally:
        with project.database.connect() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader)))
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["changes"]) == 2


def test_saved_plan_applies_when_fresh_and_is_refused_when_stale(
    project: Project, server_reset: None
) -> None:
    project.write_plan("settings:\n  work_mem: 24MB\n")
    saved = project.root / "work_mem.plan.json"
    assert project.run("plan", "test", "--out", str(saved)).returncode == 0
    ChangeSet.from_json(saved.read_text())
    with project.database.connect() as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '8MB'")
        conn.execute("SELECT pg_reload_conf()")
    stale = project.run("apply", "test", "--yes", "--plan-file", str(saved))
    assert stale.returncode == 1
    assert stale.stderr.strip() == (
        "error: the plan file is stale: setting.work_mem changed in "
        "the live database since the plan was made; plan again"
    )
    assert project.run("plan", "test", "--out", str(saved)).returncode == 0
    fresh = project.run("apply", "test", "--yes", "--plan-file", str(saved))
    assert fresh.returncode == 0, fresh.stderr
    with psycopg.connect(project.database.conninfo) as conn:
        assert conn.execute("SHOW work_mem").fetchone() == ("24MB",)
