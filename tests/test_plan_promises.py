"""What plan promises (issue 11): apply runs exactly the ChangeSet plan showed, a saved plan file
cannot carry SQL the plan never showed, nothing destructive is implicit, a missing migrations
directory is an error, one apply at a time, and an apply that dies leaves an audit row and shows
in the next plan and in drift."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from harness import Project, TestDatabase, child_env, fresh_database, make_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from dbops.changes import ChangeSet
from dbops.local import Cluster
from dbops.locks import APPLY_LOCK

TABLE = "-- {name}\n-- migrate:up\nCREATE TABLE {name} (id int PRIMARY KEY, note text);\n" \
        "-- migrate:down\nDROP TABLE {name};\n"


def add_migration(project: Project, version: str, up: str, down: str = "SELECT 1;") -> None:
    path = project.root / "migrations" / f"{version}_m{version[-2:]}.sql"
    path.write_text(f"-- {version}\n-- migrate:up\n{up}\n-- migrate:down\n{down}\n")
    assert project.run("migrate", "hash").returncode == 0


def changeset(project: Project, *args: str) -> ChangeSet:
    result = project.run("plan", "test", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return ChangeSet.from_json(result.stdout)


def audit_rows(project: Project) -> list[tuple[str, list[str], str | None]]:
    with project.database.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(
            "SELECT result, done, plan_file_sha256 FROM dbops.apply_audit ORDER BY id")]


def show(conn: psycopg.Connection[tuple[object, ...]], name: str) -> object:
    row = conn.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


# 1. The ChangeSet is the contract -----------------------------------------------------------

_MUTATING = re.compile(r"^(ALTER|CREATE|DROP|INSERT|UPDATE|DELETE|TRUNCATE|GRANT|REVOKE|COMMENT)\b",
                       re.IGNORECASE)
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.MULTILINE)
_LOGGED = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)", re.DOTALL)


def _statements(text: str) -> list[str]:
    import pglast

    return [" ".join(s.split()) for s in pglast.split(text)]


def _mutating(statements: list[str]) -> list[str]:
    """Statements that change the database, without dbops's own bookkeeping (schema dbops) and
    the pre-validation's scratch database (the rehearsal, which the ChangeSet lists)."""
    return [s for s in statements
            if _MUTATING.match(s) and not re.search(r"\bdbops(\b|_rehearsal_)", s)]


def logged_statements(log: Path, offset: int) -> list[str]:
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    starts = [m.start() for m in _ENTRY.finditer(text)] + [len(text)]
    found: list[str] = []
    for begin, end in itertools.pairwise(starts):
        match = _LOGGED.search(text[begin:end])
        if match:
            found += _statements(match.group(1))
    return found


def planned_statements(cs: ChangeSet) -> list[str]:
    out: list[str] = []
    for change in cs.changes:
        if change.migration is not None:
            out += change.migration.statements
        else:
            out += [s for _ in change.hosts for s in change.statements]
    return [" ".join(s.split()) for s in out]


plans = st.fixed_dictionaries({
    "work_mem": st.sampled_from([None, "6MB", "24MB"]),
    "random_page_cost": st.sampled_from([None, "1.5", "3"]),
    "role_limit": st.sampled_from([None, 10, 20]),
    "role_timeout": st.sampled_from([None, "30s"]),
    "tables": st.integers(min_value=0, max_value=3),
    "index": st.booleans(),
})


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=plans)
def test_apply_runs_exactly_the_changeset(pg_primary: Cluster, server_reset: None,
                                          tmp_path_factory: pytest.TempPathFactory,
                                          drawn: dict[str, object]) -> None:
    with fresh_database(pg_primary) as db:
        project = make_project(tmp_path_factory.mktemp("promise") / "project", db)
        extra = ""
        declared = {k: drawn[k] for k in ("work_mem", "random_page_cost") if drawn[k]}
        if declared:
            extra += "settings:\n" + "".join(f"  {k}: '{v}'\n" for k, v in declared.items())
        if drawn["role_limit"] is not None:
            role = "app_" + db.name.removeprefix("t_")
            extra += f"roles:\n  {role}:\n    connection_limit: {drawn['role_limit']}\n"
            if drawn["role_timeout"]:
                extra += f"    settings: {{ statement_timeout: {drawn['role_timeout']} }}\n"
        project.write_plan(extra)
        for n in range(int(str(drawn["tables"]))):
            (project.root / "migrations" / f"2025010100000{n + 1}_t{n}.sql").write_text(
                TABLE.format(name=f"t{n}"))
        if drawn["index"] and drawn["tables"]:
            (project.root / "migrations" / "20250101000009_ix.sql").write_text(
                "-- ix\n-- migrate:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t0_note ON t0 (note);"
                "\nINSERT INTO t0 VALUES (1, 'one');\n-- migrate:down\nDROP INDEX t0_note;\n")
        assert project.run("migrate", "hash").returncode == 0
        with db.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(
                sql.Identifier(db.name)))

        cs = changeset(project)
        expected = planned_statements(cs)
        dry = project.run("apply", "test", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        first = next((n for n, line in enumerate(lines)
                      if line.startswith(("python.call", "server.shell"))), len(lines))
        listed = [" ".join(line.split()) for line in lines[first:]
                  if line.startswith("    ") and not line.strip().startswith("--")]
        assert listed == expected

        offset = pg_primary.log_file.stat().st_size
        applied = project.run("apply", "test", "--yes")
        assert applied.returncode == 0, applied.stderr
        time.sleep(0.2)  # the logging collector-less server writes its log synchronously
        assert _mutating(logged_statements(pg_primary.log_file, offset)) == _mutating(expected)
        assert project.run("plan", "test", "--diff").returncode == 0


def test_gates_and_backup_are_in_the_changeset(project: Project) -> None:
    project.write_plan("backup: { directory: backups }\n"
                       "health: { gates: { before_apply: true, after_each_stage: false } }\n")
    add_migration(project, "20250101000001", "CREATE TABLE items (id int);", "DROP TABLE items;")
    cs = changeset(project)
    assert [g.name for g in cs.gates] == ["before apply", "after apply"]
    assert [c.name for c in cs.gates[0].checks] == [
        "connectivity", "connection_utilization", "long_transaction", "replication_lag",
        "error_rate", "health_query"]
    assert cs.backup_first is not None and "before migrating" in cs.backup_first.reason
    run = cs.changes[0].migration
    assert run is not None and run.direction == "up" and run.mode == "transaction"
    assert run.statements == ("CREATE TABLE items (id int)",)
    dry = project.run("apply", "test", "--dry-run").stdout
    assert "take the before-migrate backup" in dry
    assert "health gate before apply" in dry and "health gate after apply" in dry


# 2. Saved plan files cannot smuggle SQL ------------------------------------------------------

def test_an_edited_plan_file_is_refused_and_runs_nothing(project: Project,
                                                         server_reset: None) -> None:
    project.write_plan("settings:\n  work_mem: 24MB\n")
    add_migration(project, "20250101000001", "CREATE TABLE items (id int);", "DROP TABLE items;")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE precious (id int)")
    saved = project.root / "saved.json"
    assert project.run("plan", "test", "--out", str(saved)).returncode == 0
    original = saved.read_text()

    for edit in ("statements", "steps"):
        data = json.loads(original)
        for change in data["changes"]:
            if edit == "statements" and change["kind"] == "setting":
                change["statements"].append("DROP TABLE precious")
            if edit == "steps" and change["kind"] == "migration":
                change["migration"]["steps"][0]["statements"].append("DROP TABLE precious")
                change["migration"]["steps"][0]["lines"].append(4)
        saved.write_text(json.dumps(data))
        result = project.run("apply", "test", "--yes", "--plan-file", str(saved))
        assert result.returncode == 1
        assert result.stderr.startswith("error: saved.json: ")
        assert "the file was edited" in result.stderr
        with project.database.connect() as conn:
            assert conn.execute("SELECT to_regclass('precious')").fetchone() == ("precious",)
            assert conn.execute("SELECT to_regclass('items')").fetchone() == (None,)
            assert show(conn, "work_mem") == "4096"

    saved.write_text(original)
    result = project.run("apply", "test", "--yes", "--plan-file", str(saved))
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(original.encode()).hexdigest()
    assert audit_rows(project)[-1][0] == "applied"
    assert audit_rows(project)[-1][2] == digest


# 3. Nothing destructive is implicit ---------------------------------------------------------

def test_a_target_without_a_file_is_an_error_everywhere(project: Project) -> None:
    add_migration(project, "20250101000001", "CREATE TABLE a (id int);", "DROP TABLE a;")
    add_migration(project, "20250101000002", "CREATE TABLE b (id int);", "DROP TABLE b;")
    assert project.run("apply", "test", "--yes").returncode == 0
    project.write_plan("migrations: { target: '20250101000003' }\n")
    validate = project.run("validate", "test")
    assert validate.returncode == 1
    assert re.match(r"^plans/test.yaml:\d+:\d+: migrations.target: names no migration: "
                    r"there is no file for version 20250101000003 in migrations", validate.stderr)
    for command in (("plan", "test"), ("apply", "test", "--yes", "--allow-destroy")):
        result = project.run(*command)
        assert result.returncode == 1
        assert "names no migration" in result.stderr
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regclass('a'), to_regclass('b')").fetchone() == ("a", "b")


def test_removals_need_allow_destroy_and_a_backup_comes_first(project: Project) -> None:
    project.write_plan("backup: { directory: backups }\nmigrations: { rehearse: never }\n")
    add_migration(project, "20250101000001", "CREATE TABLE a (id int);", "DROP TABLE a;")
    add_migration(project, "20250101000002", "CREATE TABLE b (id int);", "DROP TABLE b;")
    assert project.run("apply", "test", "--yes").returncode == 0
    backups = project.root / "backups"
    before = {p.name for p in backups.iterdir()}

    project.write_plan("backup: { directory: backups }\n"
                       "migrations: { target: '20250101000001', rehearse: never }\n")
    text = project.run("plan", "test").stdout
    assert "Destroys (apply needs --allow-destroy): 1" in text
    assert "-! migration.20250101000002: rolls back to the target 20250101000001" in text
    cs = changeset(project)
    assert [(c.address, c.destructive) for c in cs.changes] == [("migration.20250101000002", True)]
    assert cs.changes[0].migration is not None
    assert cs.changes[0].migration.statements == ("DROP TABLE b",)
    markdown = project.run("plan", "test", "--format", "markdown").stdout
    assert "[!CAUTION]" in markdown

    refused = project.run("apply", "test", "--yes")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: 1 change(s) drop data or access (migration.20250101000002): apply them with "
        "--allow-destroy")
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regclass('b')").fetchone() == ("b",)
    assert {p.name for p in backups.iterdir()} == before

    allowed = project.run("apply", "test", "--yes", "--allow-destroy")
    assert allowed.returncode == 0, allowed.stderr
    assert len({p.name for p in backups.iterdir()} - before) == 1  # the before-migrate backup
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regclass('b')").fetchone() == (None,)


def test_an_up_migration_that_drops_data_is_destructive(project: Project) -> None:
    add_migration(project, "20250101000001", "CREATE TABLE a (id int, note text);")
    assert project.run("apply", "test", "--yes").returncode == 0
    add_migration(project, "20250101000002", "ALTER TABLE a DROP COLUMN note;")
    cs = changeset(project)
    assert cs.changes[0].destructive
    assert "dropping column a.note" in cs.changes[0].reason
    assert project.run("apply", "test", "--yes").returncode == 1
    assert project.run("apply", "test", "--yes", "--allow-destroy").returncode == 0


# 4. A missing migrations directory is an error ------------------------------------------------

def test_a_missing_migrations_directory_is_an_error(project: Project, tmp_path: Path) -> None:
    project.write_plan("migrations: { directory: /nonexistent/migrations }\n")
    for command in (("validate", "test"), ("plan", "test", "--diff"), ("drift", "test")):
        result = project.run(*command)
        assert result.returncode == 1, (command, result.stdout)
        assert "migrations.directory: /nonexistent/migrations is not a directory" in result.stderr
    project.write_plan()
    (project.root / "migrations").rmdir()
    result = project.run("plan", "test")
    assert result.returncode == 1
    assert f"{project.root.resolve() / 'migrations'} is not a directory" in result.stderr


# 5. One apply at a time -------------------------------------------------------------------------

def test_a_second_apply_is_refused_naming_the_holder(project: Project) -> None:
    add_migration(project, "20250101000001", "CREATE TABLE a (id int);")
    with project.database.connect() as holder:
        holder.execute("SELECT set_config('application_name', 'other-apply', false)")
        holder.execute("SELECT pg_advisory_lock(%s)", (APPLY_LOCK,))
        pid = holder.info.backend_pid
        result = project.run("apply", "test", "--yes")
        assert result.returncode == 1
        assert re.search(rf"error: another dbops apply holds the lock on .*: pid {pid} "
                         r"\(other-apply, user postgres[^)]*\) since .*; waited 0s \(--lock-wait\)",
                         result.stderr), result.stderr
        with project.database.connect() as conn:
            assert conn.execute("SELECT to_regclass('a')").fetchone() == (None,)
        waiting = subprocess.Popen(
            [sys.executable, "-m", "dbops", "apply", "test", "--yes", "--lock-wait", "20s"],
            cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(drop=()))
        time.sleep(1.5)
        assert waiting.poll() is None  # still waiting for the lock
    _out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert [row[0] for row in audit_rows(project)] == ["applied"]


def test_two_applies_at_once_one_runs_and_audit_rows_tell_the_truth(project: Project) -> None:
    add_migration(project, "20250101000001", "CREATE TABLE a (id int);\nSELECT pg_sleep(2);")
    runs = [subprocess.Popen([sys.executable, "-m", "dbops", "apply", "test", "--yes"],
                             cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=child_env(drop=())) for _ in range(2)]
    results = [(run.wait(timeout=120), run.stderr.read() if run.stderr else "") for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    assert any("another dbops apply holds the lock" in err for _, err in results)
    rows = audit_rows(project)
    assert [(r[0], r[1]) for r in rows] == [("applied", ["migration.20250101000001 up"])]


# 6. An apply that dies leaves an audit row and shows in plan and drift ------------------------

@pytest.fixture
def own_cluster(scratch_dir: Path) -> Cluster:
    cluster = Cluster(scratch_dir / "own", settings={"fsync": "off"})
    cluster.up()
    return cluster


def test_a_server_stopped_mid_apply_leaves_a_trace(own_cluster: Cluster, tmp_path: Path) -> None:
    own_cluster.ensure_database("app")
    project = make_project(tmp_path / "project", TestDatabase(own_cluster.host, own_cluster.port,
                                                              "app"))
    project.write_plan("settings:\n  work_mem: 24MB\nhealth: { enabled: false }\n")
    add_migration(project, "20250101000001", "SELECT pg_sleep(30);\nCREATE TABLE a (id int);")
    apply = subprocess.Popen([sys.executable, "-m", "dbops", "apply", "test", "--yes"],
                             cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=child_env(drop=()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(project.database.conninfo, autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                            "'%%pg_sleep(30)%%' AND pid <> pg_backend_pid()").fetchone() == (1,):
                break
        time.sleep(0.1)
    own_cluster.down()
    apply.communicate(timeout=120)
    assert apply.returncode == 1
    own_cluster.up()

    rows = audit_rows(project)
    assert rows == [("running", ["setting.work_mem on primary"], None)]
    plan = project.run("plan", "test")
    assert plan.returncode == 0, plan.stderr
    assert "(audit #1) was interrupted and left: setting.work_mem on primary" in plan.stdout
    drift = project.run("drift", "test")
    assert drift.returncode == 2, drift.stdout
    assert "setting.work_mem on primary" in drift.stdout

    project.write_plan("health: { enabled: false }\n")  # the plan no longer wants work_mem
    add_migration(project, "20250101000001", "CREATE TABLE a (id int);")  # never applied: no wait
    text = project.run("plan", "test").stdout
    assert "- setting.work_mem: 24MB" in text
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stderr
    assert [r[0] for r in audit_rows(project)] == ["interrupted", "applied"]
    with project.database.connect() as conn:
        assert show(conn, "work_mem") == "4096"
    assert project.run("drift", "test").returncode == 0


def test_a_schema_written_by_the_previous_dbops_is_read_and_upgraded(project: Project) -> None:
    from dbops import ledger

    with project.database.connect() as conn:
        conn.execute("CREATE SCHEMA dbops")
        conn.execute("CREATE TABLE dbops.meta (key text PRIMARY KEY, value text NOT NULL)")
        for ddl in ledger._UPGRADES[:2]:
            conn.execute(ddl)
        conn.execute("INSERT INTO dbops.meta VALUES ('schema_version', '2')")
        conn.execute("INSERT INTO dbops.applied_snapshot (environment, plan_hash, settings, roles,"
                     " schema_fingerprint) VALUES ('test', 'x', '{}', '{}', '{}')")
    add_migration(project, "20250101000001", "CREATE TABLE a (id int);")
    assert project.run("plan", "test").returncode == 0  # read-only: nothing upgraded yet
    assert project.run("drift", "test").returncode == 3  # the migration is pending
    assert project.run("apply", "test", "--yes").returncode == 0
    with project.database.connect() as conn:
        assert conn.execute("SELECT value FROM dbops.meta").fetchone() == (
            str(len(ledger._UPGRADES)),)
    assert project.run("drift", "test").returncode == 0


# 7. Nothing changed outside the plan is adopted unseen ------------------------------------------

def test_an_apply_shows_what_it_adopts_from_outside_the_plan(project: Project,
                                                             server_reset: None) -> None:
    rogue = "app_" + project.database.name.removeprefix("t_") + "_rogue"
    project.write_plan("settings:\n  work_mem: 24MB\n")
    assert project.run("apply", "test", "--yes").returncode == 0
    with project.database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} SUPERUSER LOGIN").format(sql.Identifier(rogue)))
    assert project.run("drift", "test").returncode == 2
    project.write_plan("settings:\n  work_mem: 32MB\n")
    text = project.run("plan", "test").stdout
    assert (f"this apply takes it as the new baseline (declare it, or add a drift.ignore, to say "
            f"otherwise): role.{rogue}: created outside dbops (superuser, login)") in text
    applied = project.run("apply", "test", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert f"role.{rogue}: created outside dbops" in applied.stdout
    assert project.run("drift", "test").returncode == 0
