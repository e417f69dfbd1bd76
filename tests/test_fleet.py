"""Fleet rollout against real PostgreSQL: one plan over many databases of the harness cluster
(and a target nobody listens for), planned in groups, rolled out canary first, halted on the
first failure, resumed after the fix."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from harness import Project, TestDatabase, fresh_database, make_project

from dbops.config.fleet import chosen, target_plan
from dbops.config.load import load_plan
from dbops.execute import Target, load_targets
from dbops.local import Cluster

MIGRATIONS = {
    "20250101000001": ("CREATE TABLE accounts (id int);", "DROP TABLE accounts;"),
    "20250101000002": ("CREATE TABLE invoices (id int);", "DROP TABLE invoices;"),
}


@pytest.fixture
def fleet_dbs(pg_primary: Cluster) -> Iterator[list[TestDatabase]]:
    """Six fresh databases on the session's primary."""
    with ExitStack() as stack:
        yield [stack.enter_context(fresh_database(pg_primary)) for _ in range(6)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fleet_project(root: Path, dbs: list[TestDatabase], *, unreachable: bool = False,
                  soak: str = "0s") -> Project:
    project = make_project(root, dbs[0])
    targets = "".join(f"    - {{ id: t{n}, database: {{ name: {db.name} }} }}\n"
                      for n, db in enumerate(dbs))
    if unreachable:
        targets += f"    - {{ id: gone, database: {{ name: gone, port: {free_port()} }} }}\n"
    project.write_plan(
        "health:\n  gates: { before_apply: false, after_each_stage: true, settle: 0s }\n"
        f"fleet:\n  canary: 1\n  soak: {soak}\n  batch: 2\n  parallel: 2\n  targets:\n"
        + targets)
    for version, (up, down) in MIGRATIONS.items():
        (root / "migrations" / f"{version}_m{version[-2:]}.sql").write_text(
            f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n")
    project.run("migrate", "hash")
    return project


def tables(db: TestDatabase) -> set[str]:
    with db.connect() as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows.fetchall()}


def audited(db: TestDatabase) -> list[str]:
    with db.connect() as conn:
        if conn.execute("SELECT to_regclass('dbops.apply_audit')").fetchone() == (None,):
            return []
        return [r[0] for r in conn.execute(
            "SELECT action FROM dbops.apply_audit ORDER BY id").fetchall()]


def test_plan_groups_identical_changesets(fleet_dbs: list[TestDatabase], tmp_path: Path) -> None:
    project = fleet_project(tmp_path / "p", fleet_dbs[:3])
    first = project.run("apply", "test", "--yes", "--target", "t1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert tables(fleet_dbs[1]) == {"accounts", "invoices"}
    assert tables(fleet_dbs[0]) == set()  # --target narrowed the rollout to t1
    result = project.run("plan", "test", "--diff")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "fleet test: 3 target(s), 2 with changes, 1 at the plan, 0 unreachable" in result.stdout
    assert "2 target(s): 2 migrations to add" in result.stdout
    assert "    t0, t2" in result.stdout
    assert "1 target(s): no changes (at the plan)" in result.stdout
    shown = project.run("plan", "test", "--format", "json", "--target", "t0", "--target", "t1")
    data = json.loads(shown.stdout)
    assert [(t["id"], t["status"]) for t in data["targets"]] == [("t0", "changes"),
                                                                 ("t1", "at plan")]
    assert [c["address"] for c in data["targets"][0]["changeset"]["changes"]] == [
        "migration.20250101000001", "migration.20250101000002"]
    unknown = project.run("plan", "test", "--target", "t9")
    assert unknown.returncode == 1
    assert "no target 't9' in the fleet (targets: t0, t1, t2)" in unknown.stderr


def test_failure_in_second_batch_halts_then_resume_finishes(
        fleet_dbs: list[TestDatabase], tmp_path: Path) -> None:
    # canary t0; batch 1: t1, t2; batch 2: t3, t4; batch 3: t5. t3 already has an invoices
    # table, so its second migration fails there and only there.
    project = fleet_project(tmp_path / "p", fleet_dbs)
    with fleet_dbs[3].connect() as conn:
        conn.execute("CREATE TABLE invoices (legacy text)")
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rollout" in result.stderr and "halted: t3:" in result.stderr
    # Columns are two or more spaces apart; a status may hold one ("rolled back").
    table = {cells[0]: cells[1] for cells in (re.split(r"\s{2,}", line.strip()) for line in
                                              result.stderr.splitlines() if line.startswith("  t"))}
    assert table["t0"] == table["t1"] == table["t2"] == "applied", result.stderr
    assert table["t3"] == "failed"
    assert table["t5"] == "untouched"
    for db in fleet_dbs[:3]:
        assert tables(db) == {"accounts", "invoices"}
    assert tables(fleet_dbs[3]) == {"invoices"}  # accounts rolled back, its own table kept
    assert tables(fleet_dbs[5]) == set() and audited(fleet_dbs[5]) == []  # never touched
    assert table["t4"] in ("applied", "rolled back", "untouched"), result.stderr
    assert tables(fleet_dbs[4]) == ({"accounts", "invoices"} if table["t4"] == "applied"
                                    else set())
    assert "fleet rollout" in audited(fleet_dbs[0])  # the rollout record, in the canary's audit
    again = project.run("apply", "test", "--yes")
    assert again.returncode == 1 and "--resume" in again.stderr  # a halted rollout is resumed

    with fleet_dbs[3].connect() as conn:
        conn.execute("DROP TABLE invoices")
    resumed = project.run("apply", "test", "--yes", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "rollout order: canary t3" in resumed.stdout  # t0..t2 are at the plan: skipped
    for db in fleet_dbs:
        assert tables(db) == {"accounts", "invoices"}
    assert audited(fleet_dbs[0]).count("apply") == 1  # the canary was not applied again
    log = (project.root / ".dbops" / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in log]
    rollouts = [r for r in records if r["action"] == "fleet rollout"]
    assert [r["result"] for r in rollouts] == ["failed", "done"]
    assert "resumes " + rollouts[0]["detail"].split()[1].rstrip(";") in rollouts[1]["detail"]
    assert "order t0,t1,t2,t3,t4,t5" in rollouts[0]["detail"]
    drift = project.run("drift", "test")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert "fleet drift: 6 in sync" in drift.stdout


def test_unreachable_target_reported_refused_or_skipped(
        fleet_dbs: list[TestDatabase], tmp_path: Path) -> None:
    project = fleet_project(tmp_path / "p", fleet_dbs[:2], unreachable=True, soak="1s")
    planned = project.run("plan", "test")
    assert planned.returncode == 1
    assert "1 unreachable" in planned.stdout and "unreachable: gone:" in planned.stdout
    refused = project.run("apply", "test", "--yes")
    assert refused.returncode == 1
    assert "apply refused, nothing was changed: unreachable target(s) gone" in refused.stderr
    assert tables(fleet_dbs[0]) == set() and tables(fleet_dbs[1]) == set()
    skipped = project.run("apply", "test", "--yes", "--skip-unreachable")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert tables(fleet_dbs[0]) == tables(fleet_dbs[1]) == {"accounts", "invoices"}
    assert "soak: health checks on the canary for 1s" in skipped.stdout
    assert skipped.stdout.index("soak:") < skipped.stdout.index("batch 1: t1")
    assert ["gone", "skipped", "unreachable"] in [line.split()[:3]
                                                  for line in skipped.stdout.splitlines()]
    records = [json.loads(line) for line in
               (project.root / ".dbops" / "audit.jsonl").read_text().splitlines()]
    assert any(r["action"] == "fleet rollout" and "skipped unreachable gone" in r["detail"]
               for r in records)
    health = project.run("health", "test")
    assert health.returncode == 3, health.stdout  # the worst target's: critical
    assert "== gone: critical" in health.stdout and "== t0: healthy" in health.stdout
    assert "fleet health: 2 healthy (t0, t1); 1 critical (gone)" in health.stdout


def test_fleet_block_errors_name_file_and_line(fleet_dbs: list[TestDatabase],
                                               tmp_path: Path) -> None:
    project = fleet_project(tmp_path / "p", fleet_dbs[:1])
    text = project.plan.read_text()
    project.plan.write_text(text + "    - { id: t0, database: { name: other, port: 70000 } }\n")
    result = project.run("validate", "test")
    assert result.returncode == 1
    assert "plans/test.yaml:" in result.stderr
    assert "fleet.targets[1].database.port: must be <= 65535 (got 70000)" in result.stderr
    project.plan.write_text(text + "    - { id: t0, database: { name: other } }\n")
    result = project.run("validate", "test")
    assert "fleet.targets[1].id: target id 't0' is used twice" in result.stderr



def inventory_project(root: Path, dbs: list[TestDatabase], group: str = "shards",
                      fleet: str = "", hosts: tuple[str, ...] = ("db-a", "db-b", "db-c")) -> Project:
    """A fleet over the hosts of an inventory group: each host's data names its database (and,
    for a host whose pyinfra name is no id, its fleet_id)."""
    project = fleet_project(root, dbs)
    members = ""
    for n, (host, db) in enumerate(zip(hosts, dbs, strict=False)):
        fleet_id = {"fleet_id": f"s{n}"} if host.startswith("@") else {}
        members += f"    ({host!r}, {{**{fleet_id!r}, 'database': {{'name': {db.name!r}}}}}),\n"
    (root / "inventory.py").write_text(
        f"primary = [('@local', {{}})]\nshards = [\n{members}]\n_private = ['x']\n")
    project.write_plan(
        "inventory: inventory.py\n"
        "health:\n  gates: { before_apply: false, after_each_stage: true, settle: 0s }\n"
        f"fleet:\n  canary: 1\n  batch: 2\n  parallel: 2\n  inventory_group: {group}\n" + fleet)
    return project


def test_inventory_group_hosts_are_the_targets(fleet_dbs: list[TestDatabase],
                                               tmp_path: Path) -> None:
    project = inventory_project(tmp_path / "p", fleet_dbs[:3])
    planned = project.run("plan", "test", "--diff")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "fleet test: 3 target(s), 3 with changes" in planned.stdout
    assert "    db-a, db-b, db-c" in planned.stdout
    plan = load_plan("test", root=project.root, environ={})
    assert plan.fleet is not None
    [second] = chosen(plan, ("db-b",))
    assert target_plan(plan, second).database.name == fleet_dbs[1].name
    # the target's pyinfra operations run on its host alone, as the primary
    assert load_targets(target_plan(plan, second)) == [
        Target("db-b", "primary", {"database": {"name": fleet_dbs[1].name}})]


def test_inventory_group_rollout_applies_every_host(fleet_dbs: list[TestDatabase],
                                                    tmp_path: Path) -> None:
    # pyinfra reaches this machine only as @local from the rollout's threads (@chroot and
    # @ssh need a subprocess or a server), so the three hosts are @local, told apart by fleet_id
    project = inventory_project(tmp_path / "p", fleet_dbs[:3], hosts=("@local",) * 3)
    applied = project.run("apply", "test", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "rollout order: canary s0" in applied.stdout
    for db in fleet_dbs[:3]:
        assert tables(db) == {"accounts", "invoices"}
    assert tables(fleet_dbs[3]) == set()
    assert project.run("plan", "test", "--diff").returncode == 0  # every target at the plan


def test_inventory_group_errors_name_file_and_line(fleet_dbs: list[TestDatabase],
                                                   tmp_path: Path) -> None:
    project = inventory_project(tmp_path / "p", fleet_dbs[:3], group="nope")
    result = project.run("plan", "test")
    assert result.returncode == 1
    assert "plans/test.yaml:" in result.stderr and "Traceback" not in result.stderr
    assert ("fleet.inventory_group: no group 'nope' in inventory.py (groups: primary, shards)"
            in result.stderr)
    both = inventory_project(tmp_path / "q", fleet_dbs[:3],
                             fleet="  targets:\n    - { id: t0 }\n")
    result = both.run("apply", "test", "--yes")
    assert result.returncode == 1
    assert "plans/test.yaml:" in result.stderr
    assert "name exactly one of fleet.targets and fleet.inventory_group" in result.stderr
    assert tables(fleet_dbs[0]) == set()
    (both.root / "inventory.py").write_text(
        "shards = [('Bad Host', {'database': {'name': 'x', 'port': 70000}})]\n")
    both.write_plan("inventory: inventory.py\nfleet:\n  inventory_group: shards\n")
    result = both.run("validate", "test")
    assert result.returncode == 1
    assert "plans/test.yaml:" in result.stderr
    assert "fleet.targets[0].id: inventory host Bad Host (group shards):" in result.stderr
    assert ("fleet.targets[0].database.port: inventory host Bad Host (group shards): must be "
            "<= 65535 (got 70000)") in result.stderr
    both.write_plan("fleet:\n  inventory_group: shards\n")
    result = both.run("validate", "test")
    assert result.returncode == 1
    assert ("fleet.inventory_group: an inventory group needs the plan's inventory file"
            in result.stderr)
