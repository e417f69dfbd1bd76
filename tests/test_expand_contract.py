"""Expand/contract (YAML) migrations against a real PostgreSQL: old clients write through the
base schema and new ones through the version schema at once, complete and abort, a failing
`up` that changes nothing, a SIGKILL during the backfill that resumes, and file errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from harness import Project

from dbops.errors import MigrationError
from dbops.local import Cluster
from dbops.migrate import files as source
from dbops.migrate.engine import MigrationEngine

RENAME_AND_RETYPE = """\
operations:
  - alter_column:
      table: tasks
      column: title
      name: headline
      type: varchar(300)
      up: "left(title, 300)"
      down: "headline"
  - rename_column:
      table: tasks
      column: owner
      name: assignee
"""


def write(project: Project, name: str, text: str) -> Path:
    path = project.root / "migrations" / name
    path.write_text(text)
    source.write_sum(project.root / "migrations")
    return path


def engine(project: Project, extra: str = "") -> MigrationEngine:
    if extra:
        project.write_plan(extra)
    return MigrationEngine.from_plan("test")


def setup_tasks(project: Project, rows: int = 100) -> None:
    write(project, "20300101000000_tasks.sql",
          "-- migrate:up\nCREATE TABLE tasks (id bigserial PRIMARY KEY, title text NOT NULL,"
          " owner text, done boolean NOT NULL DEFAULT false);\n"
          f"INSERT INTO tasks (title, owner) SELECT 'task ' || g, 'ann' FROM"
          f" generate_series(1, {rows}) g;\n"
          "-- migrate:down\nDROP TABLE tasks;\n")


def client(project: Project, search_path: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = project.database.connect()
    conn.execute(f"SET search_path = {search_path}")
    return conn


def columns(project: Project, table: str = "tasks") -> list[str]:
    with project.database.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum", (table,))]


def test_rename_and_type_change_serve_both_shapes_then_complete(project: Project) -> None:
    setup_tasks(project)
    write(project, "20300102000000_headline.yaml", RENAME_AND_RETYPE)
    e = engine(project)
    e.run_migrations(target="20300101000000")
    reader = f"app_reader_{project.database.name}"[:63]
    with project.database.connect() as conn:
        conn.execute(f"CREATE ROLE {reader}")
        conn.execute(f"GRANT SELECT ON tasks TO {reader}")
    try:
        e.run_migrations()
        with project.database.connect() as conn:
            # Who may read the table through the base schema may read it through the version one.
            conn.execute(f"SET ROLE {reader}")
            assert conn.execute("SELECT count(*) FROM public_20300102000000.tasks").fetchone() == (
                100,)
    finally:
        with project.database.connect() as conn:
            conn.execute(f"DROP OWNED BY {reader}")
            conn.execute(f"DROP ROLE {reader}")
    assert columns(project) == ["id", "title", "owner", "done", "_dbops_new_headline"]
    with (client(project, "public") as old, client(project, "public_20300102000000") as new):
        # The backfill computed every new value from the old one.
        assert new.execute("SELECT count(*) FROM tasks WHERE headline = 'task ' || id"
                           ).fetchone() == (100,)
        # Both shapes write at the same time, and each sees the other's writes.
        old.execute("INSERT INTO tasks (title, owner) VALUES (%s, 'bob')", ("x" * 400,))
        new.execute("INSERT INTO tasks (headline, assignee) VALUES ('from new', 'cy')")
        old.execute("UPDATE tasks SET title = 'renamed by old' WHERE id = 1")
        new.execute("UPDATE tasks SET headline = 'renamed by new' WHERE id = 2")
        assert new.execute("SELECT headline, assignee FROM tasks WHERE assignee = 'bob'"
                           ).fetchall() == [("x" * 300, "bob")]
        assert old.execute("SELECT title, owner FROM tasks WHERE owner = 'cy'"
                           ).fetchall() == [("from new", "cy")]
        assert new.execute("SELECT headline FROM tasks WHERE id = 1").fetchone() == (
            "renamed by old",)
        assert old.execute("SELECT title FROM tasks WHERE id = 2").fetchone() == (
            "renamed by new",)
        # Every row agrees per up/down.
        assert new.execute("SELECT count(*) FROM tasks t JOIN public.tasks p USING (id)"
                           " WHERE t.headline IS DISTINCT FROM left(p.title, 300)"
                           ).fetchone() == (0,)
    status = e.expansions()
    assert [(x.version, x.phase) for x in status] == [("20300102000000", "expanded")]
    assert status[0].table_backfill("tasks").finished
    # A further migration waits for complete.
    write(project, "20300103000000_more.sql", "-- migrate:up\nCREATE TABLE more (id int);\n")
    with pytest.raises(MigrationError, match="20300102000000 headline is expanded"):
        engine(project).run_migrations()
    done = engine(project).complete_expansion()
    assert [m.version for m in done] == ["20300102000000"]
    assert columns(project) == ["id", "assignee", "done", "headline"]
    with client(project, "public_20300102000000") as new:
        # The version schema stays valid against the final columns.
        assert new.execute("SELECT count(*), max(length(headline)) FROM tasks").fetchone() == (
            102, 300)
        new.execute("INSERT INTO tasks (headline) VALUES ('after complete')")
    with project.database.connect() as conn:
        assert conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'tasks'::regclass"
                            " AND NOT tgisinternal").fetchall() == []
        assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE"
                            " attrelid = 'tasks'::regclass AND attname = 'headline'"
                            ).fetchone() == ("character varying(300)",)
    assert engine(project).complete_expansion() == []  # idempotent
    engine(project).run_migrations()  # the next migration runs now
    assert "more" in {r for r in columns_tables(project)}


def columns_tables(project: Project) -> set[str]:
    with project.database.connect() as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_add_and_drop_column_with_not_null_and_check_abort(project: Project) -> None:
    setup_tasks(project, rows=50)
    write(project, "20300102000000_priority.yaml", """\
operations:
  - add_column:
      table: tasks
      name: priority
      type: integer
      nullable: false
      check: "priority BETWEEN 0 AND 10"
      up: "CASE WHEN done THEN 0 ELSE 5 END"
  - drop_column:
      table: tasks
      column: owner
      down: "'nobody'"
  - create_index:
      name: tasks_priority_idx
      table: tasks
      columns: [priority]
backfill:
  batch_size: 7
""")
    e = engine(project)
    e.run_migrations()
    with (client(project, "public") as old, client(project, "public_20300102000000") as new):
        assert new.execute("SELECT count(*) FROM tasks WHERE priority = 5").fetchone() == (50,)
        with pytest.raises(psycopg.errors.UndefinedColumn):
            new.execute("SELECT owner FROM tasks")
        new.execute("INSERT INTO tasks (title, priority) VALUES ('new', 9)")
        assert old.execute("SELECT owner FROM tasks WHERE title = 'new'").fetchone() == (
            "nobody",)
        with pytest.raises(psycopg.errors.CheckViolation):
            new.execute("INSERT INTO tasks (title, priority) VALUES ('bad', 11)")
    with project.database.connect() as conn:
        valid = conn.execute("SELECT conname, convalidated FROM pg_constraint WHERE conrelid ="
                             " 'tasks'::regclass AND contype = 'c' ORDER BY 1").fetchall()
        assert valid == [("_dbops_ck_priority", True), ("_dbops_nn_priority", True)]
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid ="
                            " 'tasks_priority_idx'::regclass").fetchone() == (True,)
    aborted = engine(project).abort_expansion()
    assert [m.version for m in aborted] == ["20300102000000"]
    assert columns(project) == ["id", "title", "owner", "done"]
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regclass('tasks_priority_idx'), to_regnamespace("
                            "'public_20300102000000')").fetchone() == (None, None)
        assert conn.execute("SELECT version FROM dbops.migration_history ORDER BY 1"
                            ).fetchall() == [("20300101000000",)]
        assert conn.execute("SELECT count(*) FROM dbops.expansion").fetchone() == (0,)
    assert [r.state for r in engine(project).get_migration_status()] == ["applied", "pending"]
    assert engine(project).abort_expansion() == []  # idempotent


def test_failing_up_expression_changes_nothing(project: Project) -> None:
    setup_tasks(project, rows=20)
    write(project, "20300102000000_bad.yaml", """\
operations:
  - alter_column:
      table: tasks
      column: title
      type: integer
      up: "title::integer"
      down: "title::text"
""")
    e = engine(project)
    with pytest.raises(MigrationError, match=r"20300102000000_bad.yaml: expand failed.*integer"):
        e.run_migrations()
    assert columns(project) == ["id", "title", "owner", "done"]
    with project.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tasks'::regclass"
                            " AND NOT tgisinternal").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dbops.expansion").fetchone() == (0,)
        conn.execute("INSERT INTO tasks (title) VALUES ('old clients still write')")


def test_sigkill_during_backfill_resumes(project: Project) -> None:
    setup_tasks(project, rows=60_000)
    write(project, "20300102000000_headline.yaml", RENAME_AND_RETYPE
          + "backfill:\n  batch_size: 500\n  pause: 10ms\n")
    engine(project).run_migrations(target="20300101000000")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    child = subprocess.Popen([sys.executable, "-m", "dbops", "migrate", "up", "test", "--yes"],
                             cwd=project.root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    position = None
    deadline = time.monotonic() + 60
    with project.database.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT backfill -> 'tasks' ->> 'done' FROM dbops.expansion"
                               if conn.execute("SELECT to_regclass('dbops.expansion')"
                                               ).fetchone() != (None,) else "SELECT NULL"
                               ).fetchone()
            if row and row[0] and int(row[0]) > 5000:
                position = int(row[0])
                break
            time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert position is not None and position < 60_000, "the backfill was not caught mid-way"
    with project.database.connect() as conn:
        phase, done = conn.execute("SELECT phase, (backfill -> 'tasks' ->> 'done')::int"
                                   " FROM dbops.expansion").fetchone()  # type: ignore[misc]
        assert phase == "expanding" and done < 60_000
    status = project.run("migrate", "status", "test")
    assert "expanding since" in status.stdout and "tasks" in status.stdout
    result = project.run("migrate", "up", "test", "--yes")
    assert result.returncode == 0, result.stderr
    assert "resuming the expansion" in result.stderr
    with project.database.connect() as conn:
        conn.execute("SET search_path = public_20300102000000")
        assert conn.execute("SELECT count(*) FROM tasks WHERE headline = 'task ' || id"
                            ).fetchone() == (60_000,)
        assert conn.execute("SELECT phase FROM dbops.expansion").fetchone() == ("expanded",)
    result = project.run("migrate", "complete", "test", "--yes")
    assert result.returncode == 0 and "completed: 20300102000000" in result.stdout


def test_complete_auto_contracts_in_the_same_run(project: Project) -> None:
    setup_tasks(project, rows=10)
    write(project, "20300102000000_headline.yaml", RENAME_AND_RETYPE)
    engine(project, "migrations:\n  complete: auto\n").run_migrations()
    assert columns(project) == ["id", "assignee", "done", "headline"]


@pytest.mark.parametrize(("text", "message"), [
    ("operations: []\n", ":1: 'operations' must be a non-empty list"),
    ("operations:\n  - rename_colum:\n      table: t\n", ":2: unknown operation 'rename_colum'"),
    ("operations:\n  - alter_column:\n      table: t\n      column: a\n      type: int\n",
     ":2: a type change needs `down`"),
    ("operations:\n  - drop_column:\n      table: t\n      column: A\n",
     ":4: 'A' is not a plain lower-case SQL name"),
    ("operations:\n  - sql: {up: 'SELECT 1'}\nbackfill: {batch_size: 0}\n",
     ":3: batch_size must be"),
])
def test_yaml_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "20300102000000_x.yaml"
    path.write_text(text)
    with pytest.raises(MigrationError, match=f"20300102000000_x.yaml{message}"):
        source.parse(path)


def test_lint_never_refuses_and_estimates_the_backfill(project: Project) -> None:
    setup_tasks(project, rows=5000)
    write(project, "20300102000000_headline.yaml", RENAME_AND_RETYPE)
    e = engine(project)
    e.run_migrations(target="20300101000000")
    with project.database.connect() as conn:
        conn.execute("ANALYZE tasks")
    report = e.lint([e.migrations.get("20300102000000")])  # type: ignore[list-item]
    assert report.failing() == []
    messages = [str(f) for f in report.findings]
    assert any(":2: info: expand-contract: alter_column tasks.title -> headline varchar(300)"
               in m and "backfill of ~5000 rows in 6 batch(es) of 1000" in m for m in messages)
    preview = project.run("migrate", "up", "test", "--dry-run")
    assert "expand/contract: expand now, version schema public_20300102000000" in preview.stdout
    assert "--   rename_column tasks.owner -> assignee" in preview.stdout


def test_rename_table_unique_default_and_sql_complete(project: Project) -> None:
    setup_tasks(project, rows=30)
    write(project, "20300102000000_jobs.yaml", """\
operations:
  - sql:
      up: "CREATE TABLE audit_note (id int PRIMARY KEY, note text)"
      down: "DROP TABLE audit_note"
  - rename_table:
      table: tasks
      name: jobs
  - alter_column:
      table: tasks
      column: owner
      unique: true
      default: "'nobody'"
      up: "coalesce(owner, 'ann') || '-' || id"
      down: "owner"
""")
    e = engine(project)
    e.run_migrations()
    with (client(project, "public") as old, client(project, "public_20300102000000") as new):
        assert new.execute("SELECT owner FROM jobs WHERE id = 3").fetchone() == ("ann-3",)
        new.execute("INSERT INTO jobs (id, title) VALUES (1000, 'defaulted')")
        assert old.execute("SELECT owner FROM tasks WHERE id = 1000").fetchone() == ("nobody",)
        with pytest.raises(psycopg.errors.UniqueViolation):
            new.execute("INSERT INTO jobs (id, title, owner) VALUES (1001, 'dup', 'ann-3')")
        old.execute("INSERT INTO audit_note VALUES (1, 'sql operation ran')")
    engine(project).complete_expansion()
    assert columns(project, "jobs") == ["id", "title", "done", "owner"]
    with project.database.connect() as conn:
        assert conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'jobs'::regclass"
                            " AND contype = 'u'").fetchall() == [("jobs_owner_key",)]
        assert conn.execute("SELECT to_regclass('tasks')").fetchone() == (None,)
    with client(project, "public_20300102000000") as new:
        assert new.execute("SELECT count(*) FROM jobs").fetchone() == (31,)


def test_abort_runs_sql_down_and_after_a_crash_mid_expansion(project: Project) -> None:
    setup_tasks(project, rows=10)
    write(project, "20300102000000_note.yaml", """\
operations:
  - sql:
      up: "CREATE TABLE audit_note (id int)"
      down: "DROP TABLE audit_note"
  - add_column:
      table: tasks
      name: score
      type: integer
      up: "length(title)"
""")
    e = engine(project)
    e.run_migrations()
    with project.database.connect() as conn:
        # As a crash mid-backfill would leave it: expanding, version schema not yet made.
        conn.execute("DROP SCHEMA public_20300102000000 CASCADE")
        conn.execute("DELETE FROM dbops.migration_history WHERE version = '20300102000000'")
        conn.execute("UPDATE dbops.expansion SET phase = 'expanding'")
    status = project.run("migrate", "status", "test")
    assert "20300102000000 note: expanding since" in status.stdout
    as_json = json.loads(project.run("migrate", "status", "test", "--format", "json").stdout)
    assert [(e["version"], e["phase"]) for e in as_json["expansions"]] == [
        ("20300102000000", "expanding")]
    result = project.run("migrate", "abort", "test", "--yes")
    assert result.returncode == 0 and "aborted: 20300102000000" in result.stdout, result.stderr
    assert columns(project) == ["id", "title", "owner", "done"]
    assert "audit_note" not in columns_tables(project)
    again = project.run("migrate", "abort", "test", "--yes")
    assert again.returncode == 0 and "no expansion in flight" in again.stdout


def test_backfill_waits_while_a_replica_lags(project: Project, pg_replica: Cluster) -> None:
    setup_tasks(project, rows=3000)
    write(project, "20300102000000_headline.yaml", RENAME_AND_RETYPE
          + "backfill:\n  batch_size: 10\n  pause: 10ms\n")
    e = engine(project, "health:\n  thresholds:\n    replication_lag: 1s\n")
    e.run_migrations(target="20300101000000")
    messages: list[str] = []
    e = MigrationEngine.from_plan("test", notify=messages.append)
    replica = psycopg.connect(host=pg_replica.host, port=pg_replica.port, user="postgres",
                              dbname="postgres", autocommit=True)
    with replica:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            with project.database.connect() as conn:  # WAL the paused replica cannot replay
                conn.execute("CREATE TABLE lagging AS SELECT g FROM generate_series(1, 1000) g")
            runner = threading.Thread(target=e.run_migrations)
            runner.start()
            deadline = time.monotonic() + 30
            while not any("backfill paused" in m for m in messages):
                assert time.monotonic() < deadline, messages
                time.sleep(0.1)
            held = e.expansions()[0].table_backfill("tasks").done
            time.sleep(1)
            assert e.expansions()[0].table_backfill("tasks").done == held < 3000
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
        runner.join(timeout=60)
    assert e.expansions()[0].phase == "expanded"


def test_plan_shows_the_expansion_pending_then_in_flight(project: Project) -> None:
    setup_tasks(project, rows=10)
    write(project, "20300102000000_headline.yaml", RENAME_AND_RETYPE)
    engine(project).run_migrations(target="20300101000000")
    before = project.run("plan", "test")
    assert ("expand/contract: expands now (version schema public_20300102000000), then waits for"
            " `dbops migrate complete` (migrations.complete: manual)") in before.stdout
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stderr
    after = project.run("plan", "test")
    assert "No changes" in after.stdout
    assert ("expand/contract in flight: migration 20300102000000 headline expanded since"
            in after.stdout)
    assert "backfill tasks done; next: complete (dbops migrate complete)" in after.stdout
    drift = project.run("drift", "test")
    assert drift.returncode == 0 and "In sync" in drift.stdout


def test_sql_operations_are_linted_like_sql_migrations(project: Project) -> None:
    path = write(project, "20300102000000_idx.yaml", """\
operations:
  - rename_column:
      table: tasks
      column: owner
      name: assignee
  - sql:
      up: "CREATE INDEX tasks_title_idx ON tasks (title)"
""")
    result = project.run("migrate", "lint", str(path))
    assert result.returncode == 1
    assert "20300102000000_idx.yaml:6: error: index-not-concurrent" in result.stdout
    assert ":2: info: expand-contract: rename_column tasks.owner -> assignee" in result.stdout


def test_a_dropped_column_completed_by_apply_is_shown_and_needs_allow_destroy(
        project: Project) -> None:
    """Under `complete: auto` apply drops the column's data in the same run: plan lists it under
    Destroys and apply refuses it, changing nothing, without --allow-destroy. Under manual the
    expansion drops nothing (`dbops migrate complete` does, confirmed and audited)."""
    setup_tasks(project, rows=10)
    write(project, "20300102000000_no_owner.yaml",
          "operations:\n  - drop_column:\n      table: tasks\n      column: owner\n")
    engine(project).run_migrations(target="20300101000000")
    manual = project.run("plan", "test")
    assert "Destroys" not in manual.stdout, manual.stdout
    project.write_plan("migrations:\n  complete: auto\n")
    shown = project.run("plan", "test")
    assert "Destroys (apply needs --allow-destroy): 1" in shown.stdout, shown.stdout
    assert "drop_column tasks.owner: its data is gone once the expansion completes" in shown.stdout
    refused = project.run("apply", "test", "--yes")
    assert refused.returncode == 1 and "--allow-destroy" in refused.stderr, refused.stderr
    assert "owner" in columns(project)
    allowed = project.run("apply", "test", "--yes", "--allow-destroy")
    assert allowed.returncode == 0, allowed.stderr
    assert "owner" not in columns(project)
