"""`dbops drift`: out-of-band changes (exit 2) told apart from pending configuration (exit 3), and
ignores that expire."""

from __future__ import annotations

import json

import pytest
from harness import Project
from psycopg import sql

MIGRATION = """-- schema with an index and a function
-- migrate:up
CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE INDEX items_name_idx ON items (name);
CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM items';
-- migrate:down
DROP FUNCTION item_count();
DROP TABLE items;
"""


def role_name(project: Project) -> str:
    return "app_" + project.database.name.removeprefix("t_")


@pytest.fixture
def applied(project: Project, server_reset: None) -> Project:
    role = role_name(project)
    project.write_plan(
        f"settings:\n  work_mem: 24MB\nroles:\n  {role}:\n    connection_limit: 15\n"
        "    settings: { statement_timeout: 30s }\n"
    )
    (project.root / "migrations" / "20250101000001_items.sql").write_text(MIGRATION)
    project.run("migrate", "hash")
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stderr
    return project


def drift(project: Project) -> tuple[int, dict[str, str]]:
    result = project.run("drift", "test", "--format", "json")
    data = json.loads(result.stdout)
    assert data["exit_code"] == result.returncode
    return result.returncode, {i["address"]: i["kind"] for i in data["items"] if not i["ignored"]}


def test_in_sync_after_apply(applied: Project) -> None:
    result = applied.run("drift", "test")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("In sync.")


@pytest.mark.parametrize(
    ("change", "address"),
    [
        ("ALTER SYSTEM SET work_mem = '8MB'; SELECT pg_reload_conf()", "setting.work_mem"),
        ("ALTER ROLE {role} CONNECTION LIMIT 3", "role.{role}.connection_limit"),
        (
            "ALTER ROLE {role} SET statement_timeout = '1min'",
            "role.{role}.settings.statement_timeout",
        ),
        ("CREATE INDEX by_hand ON items (id, name)", "index.public.by_hand"),
        ("DROP INDEX items_name_idx", "index.public.items_name_idx"),
        (
            "CREATE OR REPLACE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT 42::bigint'",
            "function.public.item_count()",
        ),
    ],
)
def test_out_of_band_changes_are_drift(applied: Project, change: str, address: str) -> None:
    role = role_name(applied)
    with applied.database.connect() as conn:
        for statement in change.format(role=sql.Identifier(role).as_string(None)).split("; "):
            conn.execute(statement)
    code, items = drift(applied)
    assert code == 2
    assert items == {address.format(role=role): "out-of-band"}


def test_pending_configuration_only_is_exit_3(applied: Project) -> None:
    text = applied.plan.read_text().replace("work_mem: 24MB", "work_mem: 32MB")
    applied.plan.write_text(text)
    code, items = drift(applied)
    assert (code, items) == (3, {"setting.work_mem": "pending"})
    human = applied.run("drift", "test")
    assert "  setting.work_mem: applied '24MB', plan says '32MB'" in human.stdout


def test_ignore_silences_until_it_expires(applied: Project) -> None:
    with applied.database.connect() as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '8MB'")
        conn.execute("SELECT pg_reload_conf()")
    base = applied.plan.read_text()
    applied.plan.write_text(
        base + "drift:\n  ignore:\n    - { path: settings.work_mem, "
        "until: 2999-12-31, reason: incident 42 }\n"
    )
    result = applied.run("drift", "test")
    assert result.returncode == 0, result.stdout
    assert "(ignored: incident 42, until 2999-12-31)" in result.stdout
    applied.plan.write_text(
        base + "drift:\n  ignore:\n    - { path: settings.work_mem, "
        "until: 2020-01-01, reason: incident 42 }\n"
    )
    assert drift(applied) == (2, {"setting.work_mem": "out-of-band"})


def test_migrate_up_outside_apply_is_not_drift(applied: Project) -> None:
    (applied.root / "migrations" / "20250101000002_more.sql").write_text(
        "-- migrate:up\nCREATE TABLE more_items (id int);\n-- migrate:down\nDROP TABLE more_items;\n"
    )
    applied.run("migrate", "hash")
    assert drift(applied) == (3, {"migration.20250101000002": "pending"})
    assert applied.run("migrate", "up", "test", "--yes").returncode == 0
    assert drift(applied) == (0, {})


def test_never_applied_everything_is_pending(project: Project, server_reset: None) -> None:
    project.write_plan("settings:\n  work_mem: 24MB\n")
    assert drift(project) == (3, {"setting.work_mem": "pending"})
