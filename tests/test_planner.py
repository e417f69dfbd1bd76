"""planner.make_changeset with plain values: a Plan loaded from a small YAML file, a LiveState
built by hand, migration files in a temporary directory. No database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbops.changes import ChangeSet
from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.errors import PlanError
from dbops.inspect import LiveRole, LiveSetting, LiveState, Server
from dbops.migrate import files
from dbops.migration_history import AppliedMigration
from dbops.planner import make_changeset
from dbops.setting_values import SettingSpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def setting(name: str, value: str, *, vartype: str = "integer", unit: str | None = None,
            context: str = "user") -> LiveSetting:
    return LiveSetting(SettingSpec(name, vartype, unit, "0", "2147483647"), value, context,
                       "default", False, None, None, value)


LIVE_SETTINGS = {
    "work_mem": setting("work_mem", "4096", unit="kB"),
    "shared_buffers": setting("shared_buffers", "16384", unit="8kB", context="postmaster"),
    "max_connections": setting("max_connections", "100", context="postmaster"),
    "superuser_reserved_connections": setting("superuser_reserved_connections", "3",
                                              context="postmaster"),
    "reserved_connections": setting("reserved_connections", "0", context="postmaster"),
}


def live(*, roles: dict[str, LiveRole] | None = None,
         applied: tuple[AppliedMigration, ...] = ()) -> LiveState:
    primary = Server("primary", "postgres@db:5432/app", False, dict(LIVE_SETTINGS), True)
    return LiveState(database="app", server_version=160004, servers={"primary": primary},
                     roles=roles or {}, applied=applied, journal=(), replication=(), schema={},
                     snapshot=None)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "plans").mkdir()
    (tmp_path / "migrations").mkdir()
    files.write_sum(tmp_path / "migrations")
    return tmp_path


def plan(root: Path, extra: str = "", pool: str = "{ instances: 1, min_size: 1, max_size: 4 }"
         ) -> Plan:
    (root / "plans" / "unit.yaml").write_text(
        "apiVersion: dbops/v1\nenvironment: unit\n"
        "database: { host: db, port: 5432, name: app, user: postgres, sslmode: disable }\n"
        f"pool: {pool}\nhealth: {{ enabled: false }}\n" + extra)
    return load_plan("unit", root=root, environ={})


def changeset(root: Path, the_plan: Plan, state: LiveState) -> ChangeSet:
    return make_changeset(the_plan, state, files.load(root / "migrations"), now=NOW)


def test_nothing_to_do(root: Path) -> None:
    done = changeset(root, plan(root, "settings: { work_mem: 4MB }\n"), live())
    assert done.changes == ()
    assert "connection budget: 1 instance × 4 + 5 reserve = 9 ≤ max_connections 100 minus 3 " \
           "reserved (97)" in done.notes


def test_a_setting_that_reloads_and_one_that_needs_a_restart(root: Path) -> None:
    done = changeset(root, plan(root, "settings: { work_mem: 8MB, shared_buffers: 256MB }\n"),
                     live())
    by_address = {c.address: c for c in done.changes}
    work_mem, buffers = by_address["setting.work_mem"], by_address["setting.shared_buffers"]
    assert (work_mem.action, work_mem.before, work_mem.after) == ("~", "4MB", "8MB")
    assert work_mem.statements[0] == "ALTER SYSTEM SET \"work_mem\" = '8MB'"
    assert (buffers.action, buffers.before, buffers.after, buffers.risk) == (
        "~!", "128MB", "256MB", "high")
    assert buffers.reason.startswith("takes effect after a restart")


def test_a_role_is_created_or_altered(root: Path) -> None:
    extra = "roles:\n  app: { connection_limit: 20 }\n  reporting: { connection_limit: 5 }\n"
    existing = {"app": LiveRole("app", True, 10, {}, 0)}
    done = changeset(root, plan(root, extra), live(roles=existing))
    by_address = {c.address: c for c in done.changes}
    created = by_address["role.reporting"]
    assert created.action == "+" and created.statements[0].startswith(
        'CREATE ROLE "reporting" LOGIN CONNECTION LIMIT 5')
    altered = by_address["role.app.connection_limit"]
    assert (altered.action, altered.before, altered.after) == ("~", 10, 20)
    assert altered.statements == ('ALTER ROLE "app" CONNECTION LIMIT 20',)


def test_a_pending_migration(root: Path) -> None:
    (root / "migrations" / "20250101000001_items.sql").write_text(
        "-- migrate:up\nCREATE TABLE items (id int);\n-- migrate:down\nDROP TABLE items;\n")
    files.write_sum(root / "migrations")
    done = changeset(root, plan(root), live())
    [change] = done.changes
    assert (change.address, change.action, change.after, change.reversible) == (
        "migration.20250101000001", "+", "items", True)


@pytest.mark.parametrize(("limit", "fits"), [(9, True), (8, False)],
                         ids=["exactly at the budget", "one over"])
def test_the_connection_budget_against_a_live_role_limit(root: Path, limit: int,
                                                         fits: bool) -> None:
    the_plan = plan(root, pool="{ role: app, instances: 1, min_size: 1, max_size: 4 }")
    state = live(roles={"app": LiveRole("app", True, limit, {}, 0)})
    if fits:
        assert f"≤ role limit {limit}" in changeset(root, the_plan, state).notes[0]
        return
    with pytest.raises(PlanError, match="connection budget: 1 instance × 4 \\+ 5 reserve = 9 "
                                        "exceeds role app's connection limit 8"):
        changeset(root, the_plan, state)
