"""`dbops drift`: out-of-band changes (exit 2) told apart from pending configuration (exit 3), and
ignores that expire."""

from __future__ import annotations

import json

import pytest
from harness import Project, role_name
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


def plan_text(project: Project) -> str:
    return (
        f"settings:\n  work_mem: 24MB\nroles:\n  {role_name(project)}:\n    connection_limit: 15\n"
        "    settings: { statement_timeout: 30s }\n"
    )


def apply(project: Project) -> Project:
    project.write_plan(plan_text(project))
    (project.root / "migrations" / "20250101000001_items.sql").write_text(MIGRATION)
    project.run("migrate", "hash")
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture
def applied(project: Project, server_reset: None) -> Project:
    return apply(project)


def execute(project: Project, *statements: str) -> None:
    with project.database.connect() as conn:
        for statement in statements:
            conn.execute(statement)


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


def rogue_name(project: Project) -> str:
    return role_name(project) + "_rogue"


def quoted(name: str) -> str:
    return sql.Identifier(name).as_string(None)


@pytest.mark.parametrize(
    ("change", "address", "line"),
    [
        (
            "CREATE ROLE {rogue} SUPERUSER LOGIN",
            "role.{rogue}",
            "role.{rogue}: created outside dbops (superuser, login)",
        ),
        (
            "ALTER SYSTEM SET random_page_cost = 1.1",
            "setting.random_page_cost",
            "setting.random_page_cost: set by ALTER SYSTEM outside the plan: 1.1",
        ),
        ("ALTER ROLE {role} CREATEDB", "role.{role}.createdb",
         "role.{role}.createdb: granted outside dbops"),
    ],
)
def test_unmanaged_changes_are_drift(applied: Project, change: str, address: str,
                                     line: str) -> None:
    names = {"role": role_name(applied), "rogue": rogue_name(applied)}
    execute(applied, change.format(**{k: quoted(v) for k, v in names.items()}),
            "SELECT pg_reload_conf()")
    code, items = drift(applied)
    assert (code, items) == (2, {address.format(**names): "out-of-band"})
    human = applied.run("drift", "test")
    assert f"  {line.format(**names)}" in human.stdout.splitlines()


def test_powerless_role_outside_the_plan_is_not_drift(applied: Project) -> None:
    execute(applied, f"CREATE ROLE {quoted(rogue_name(applied))} NOLOGIN")
    assert drift(applied) == (0, {})


def test_unmanaged_things_present_at_the_apply_are_quiet_until_they_change(
    project: Project, server_reset: None
) -> None:
    rogue, gone = rogue_name(project), role_name(project) + "_gone"
    execute(
        project,
        f"CREATE ROLE {quoted(rogue)} CREATEDB",
        f"CREATE ROLE {quoted(gone)} LOGIN",
        "ALTER SYSTEM SET random_page_cost = 1.1",
        "ALTER SYSTEM SET seq_page_cost = 2",
    )
    apply(project)
    assert drift(project) == (0, {})
    execute(
        project,
        f"ALTER ROLE {quoted(rogue)} NOCREATEDB REPLICATION",
        f"DROP ROLE {quoted(gone)}",
        "ALTER SYSTEM RESET random_page_cost",
        "ALTER SYSTEM SET seq_page_cost = 3",
    )
    code, items = drift(project)
    assert code == 2
    assert items == {
        f"role.{rogue}.createdb": "out-of-band",
        f"role.{rogue}.replication": "out-of-band",
        f"role.{gone}": "out-of-band",
        "setting.random_page_cost": "out-of-band",
        "setting.seq_page_cost": "out-of-band",
    }
    lines = project.run("drift", "test").stdout.splitlines()
    assert f"  role.{rogue}.createdb: revoked outside dbops" in lines
    assert f"  role.{gone}: dropped outside dbops (it had login)" in lines
    assert ("  setting.seq_page_cost: changed by ALTER SYSTEM outside the plan: 3"
            " (was 2 when dbops last applied)") in lines
    # The next apply (one with changes to make) takes what is there then as the baseline.
    project.write_plan(plan_text(project).replace("work_mem: 24MB", "work_mem: 32MB"))
    assert project.run("apply", "test", "--yes").returncode == 0
    assert drift(project) == (0, {})


def test_unmanaged_ignore_reports_only_what_the_plan_declares(applied: Project) -> None:
    execute(
        applied,
        f"CREATE ROLE {quoted(rogue_name(applied))} SUPERUSER LOGIN",
        f"ALTER ROLE {quoted(role_name(applied))} CREATEDB",
        "ALTER SYSTEM SET random_page_cost = 1.1",
    )
    applied.write_plan(plan_text(applied) + "drift:\n  unmanaged: ignore\n")
    assert drift(applied) == (0, {})
    execute(applied, "ALTER SYSTEM SET work_mem = '8MB'")
    assert drift(applied) == (2, {"setting.work_mem": "out-of-band"})


def test_ignore_entries_cover_unmanaged_items(applied: Project) -> None:
    rogue = rogue_name(applied)
    execute(
        applied,
        f"CREATE ROLE {quoted(rogue)} SUPERUSER LOGIN",
        "ALTER SYSTEM SET random_page_cost = 1.1",
    )

    def ignore(until: str) -> None:
        applied.write_plan(
            plan_text(applied) + "drift:\n  ignore:\n"
            f"    - {{ path: roles.{rogue}, until: {until}, reason: incident 7 }}\n"
            f"    - {{ path: settings.random_page_cost, until: {until}, reason: incident 8 }}\n"
        )

    ignore("2999-12-31")
    result = applied.run("drift", "test")
    assert result.returncode == 0, result.stdout
    assert (f"  role.{rogue}: created outside dbops (superuser, login)"
            " (ignored: incident 7, until 2999-12-31)") in result.stdout.splitlines()
    ignore("2020-01-01")
    assert drift(applied) == (
        2, {f"role.{rogue}": "out-of-band", "setting.random_page_cost": "out-of-band"})


def test_edited_applied_migration_is_drift_beside_the_rest(applied: Project) -> None:
    path = applied.root / "migrations" / "20250101000001_items.sql"
    path.write_text(MIGRATION.replace("name text)", "name text NOT NULL)"))
    execute(applied, "ALTER SYSTEM SET work_mem = 8192")  # kB: shown as the plan writes it
    code, items = drift(applied)
    assert code == 2
    assert items == {
        "migration.20250101000001": "out-of-band",
        "dbops.sum": "out-of-band",
        "setting.work_mem": "out-of-band",
    }
    applied.run("migrate", "hash")
    (applied.root / "migrations" / "20250101000002_more.sql").write_text(
        "-- migrate:up\nCREATE TABLE more_items (id int);\n"
    )
    applied.run("migrate", "hash")
    code, items = drift(applied)
    assert (code, items) == (2, {
        "migration.20250101000001": "out-of-band",
        "migration.20250101000002": "pending",
        "setting.work_mem": "out-of-band",
    })
    lines = applied.run("drift", "test").stdout.splitlines()
    assert any(line.startswith(
        "  migration.20250101000001: migrations/20250101000001_items.sql was modified after it"
        " was applied (applied sha256:") for line in lines), lines
    assert "  setting.work_mem: dbops applied '24MB', live is '8MB'" in lines, lines
    refused = applied.run("plan", "test")
    assert refused.returncode == 1
    assert "was modified after it was applied" in refused.stderr


def test_unmanaged_policy_is_validated(project: Project) -> None:
    plan = project.write_plan("drift:\n  unmanaged: sometimes\n")
    line = plan.read_text().splitlines().index("  unmanaged: sometimes") + 1
    result = project.run("validate", "test")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"plans/test.yaml:{line}:14: drift.unmanaged: must be one of report, ignore "
        "(got 'sometimes')"
    )
    project.write_plan("drift:\n  unmanaged: ignore\n")
    assert project.run("validate", "test").returncode == 0
