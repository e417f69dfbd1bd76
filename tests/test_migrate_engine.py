"""The migration engine against a real PostgreSQL: up, rollback, status, validate, baseline,
failures in the middle, edited files, the runner lock, lock_timeout retries, journaled steps."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest
from harness import Project, wait_until

from dbops.errors import MigrationError, StatementFailed
from dbops.migrate import files
from dbops.migrate.engine import MigrationEngine

REPO = Path(__file__).resolve().parents[1]


def migration(
    project: Project, version: str, up: str, down: str | None = None, header: str = ""
) -> Path:
    path = project.root / "migrations" / f"{version}_m{version[-4:]}.sql"
    down_part = f"\n-- migrate:down\n{down}\n" if down is not None else ""
    path.write_text(f"-- migration {version}\n{header}\n-- migrate:up\n{up}\n{down_part}")
    files.write_sum(project.root / "migrations")
    return path


def engine(project: Project, extra: str = "") -> MigrationEngine:
    if extra:
        project.write_plan(extra)
    messages: list[str] = []
    built = MigrationEngine.from_plan("test", notify=messages.append)
    built.messages = messages  # type: ignore[attr-defined]
    return built


def tables(project: Project) -> set[str]:
    with project.database.connect() as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def history(project: Project) -> list[str]:
    with project.database.connect() as conn:
        rows = conn.execute("SELECT version FROM dbops.migration_history ORDER BY version")
        return [r[0] for r in rows.fetchall()]


def test_taskmaster_migrations_apply_roll_back_and_reapply(project: Project) -> None:
    shutil.copytree(REPO / "migrations", project.root / "migrations", dirs_exist_ok=True)
    e = engine(project)
    result = e.run_migrations()
    assert len(result.executions) == len(e.migrations)
    assert {"tasks", "task_contexts", "task_logs", "pipelines", "pipeline_runs"} <= tables(project)
    assert [r.state for r in e.get_migration_status()] == ["applied"] * len(e.migrations)
    assert e.validate_migrations() == []
    with project.database.connect() as conn:
        modes = dict(
            conn.execute("SELECT version, execution_mode FROM dbops.migration_history").fetchall()
        )
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tasks_queue_idx'::regclass"
        ).fetchone()
    assert modes["20250610120000"] == "steps" and modes["20250527100000"] == "transaction"
    assert valid == (True,)
    e.rollback_migrations(count=len(e.migrations))
    assert tables(project) == set()
    assert history(project) == []
    e.run_migrations()
    assert len(history(project)) == len(e.migrations)


def test_failure_in_third_of_five_keeps_two_and_rolls_back_the_third(project: Project) -> None:
    for n in range(1, 6):
        body = f"CREATE TABLE t{n} (id int);"
        if n == 3:
            body += "\nINSERT INTO t3 VALUES (1);\nINSERT INTO missing_table VALUES (1);"
        migration(project, f"2025010100000{n}", body, f"DROP TABLE t{n};")
    result = project.run("migrate", "up", "test", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: migrations/20250101000003_m0003.sql:6: INSERT INTO missing_table VALUES (1): "
        'relation "missing_table" does not exist (SQLSTATE 42P01)'
    )
    assert tables(project) == {"t1", "t2"}
    assert history(project) == ["20250101000001", "20250101000002"]


def test_migrations_sharing_a_message_record_their_own_time(project: Project) -> None:
    """Several migrations in one message (Runner.run_together) each record when they started
    and how long they took themselves, not the message; a failing one stops the message there,
    rolled back, with the ones before it kept."""
    from datetime import timedelta

    from dbops.config.model import Retries
    from dbops.ledger import ensure_schema
    from dbops.migrate.runner import Runner, RunSettings, prepare

    bodies = ["CREATE TABLE t1 (id int);\nSELECT pg_sleep(0.3);", "CREATE TABLE t2 (id int);",
              "CREATE TABLE t3 (id int);\nCREATE TABLE t3 (id int);", "CREATE TABLE t4 (id int);"]
    paths = [migration(project, f"2025010100000{n}", body) for n, body in enumerate(bodies, 1)]
    executions = [prepare(files.parse(path), "up") for path in paths]
    settings = RunSettings(timedelta(seconds=2), timedelta(0), Retries(1, timedelta(0)))
    with psycopg.connect(project.database.conninfo, autocommit=True) as conn:
        ensure_schema(conn)
        durations = Runner(conn, settings).run_together(executions)
        rows = conn.execute("SELECT version, applied_at, duration_ms FROM dbops.migration_history"
                            " ORDER BY applied_order").fetchall()
    assert [r[0] for r in rows] == ["20250101000001", "20250101000002"]
    assert durations == [r[2] for r in rows]
    (_, first, slept), (_, second, quick) = rows
    assert slept >= 300 and quick < 250, rows
    assert (second - first).total_seconds() >= 0.3, rows
    assert tables(project) == {"t1", "t2"}  # t3 rolled back, t4 never run


def test_a_statement_ending_in_a_comment_shares_a_message(project: Project) -> None:
    """A section's last statement may run on into a trailing -- comment (no semicolon of its
    own, as crates.io's history has): the shared message still holds every migration."""
    from datetime import timedelta

    from dbops.config.model import Retries
    from dbops.ledger import ensure_schema
    from dbops.migrate.runner import Runner, RunSettings, prepare

    first = migration(project, "20250101000001", "CREATE TABLE t1 (id int);\n"
                      "COMMENT ON TABLE t1 IS 'one'\n\n-- to do by hand: DROP TABLE t0;")
    second = migration(project, "20250101000002", "CREATE TABLE t2 (id int);")
    executions = [prepare(files.parse(path), "up") for path in (first, second)]
    settings = RunSettings(timedelta(seconds=2), timedelta(0), Retries(1, timedelta(0)))
    with psycopg.connect(project.database.conninfo, autocommit=True) as conn:
        ensure_schema(conn)
        assert len(Runner(conn, settings).run_together(executions)) == 2
    assert history(project) == ["20250101000001", "20250101000002"]


def test_statement_failed_carries_location_and_sqlstate(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE t (id int);\nCREATE TABLE t (id int);")
    with pytest.raises(StatementFailed) as caught:
        engine(project).run_migrations()
    failure = caught.value
    assert (failure.line, failure.sqlstate, failure.statement) == (
        5,
        "42P07",
        "CREATE TABLE t (id int)",
    )


def test_edited_applied_migration_is_refused_naming_both_checksums(project: Project) -> None:
    path = migration(project, "20250101000001", "CREATE TABLE t (id int);", "DROP TABLE t;")
    e = engine(project)
    e.run_migrations()
    applied = files.parse(path).checksum
    migration(project, "20250101000001", "CREATE TABLE t (id bigint);", "DROP TABLE t;")
    edited = files.parse(path).checksum
    expected = (
        f"migrations/20250101000001_m0001.sql was modified after it was applied "
        f"(applied sha256:{applied[:12]}, file sha256:{edited[:12]})"
    )
    assert engine(project).validate_migrations() == [expected]
    with pytest.raises(MigrationError) as caught:
        engine(project).run_migrations()
    assert str(caught.value) == expected
    status = project.run("migrate", "status", "test")
    assert "modified" in status.stdout


def test_stale_sum_file_refuses_up_and_validate(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE t (id int);")
    (project.root / "migrations" / "20250101000002_late.sql").write_text(
        "-- migrate:up\nCREATE TABLE late (id int);\n"
    )
    result = project.run("migrate", "up", "test", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: migrations/dbops.sum is out of date (20250101000002_late.sql added): "
        "run `dbops migrate hash` and commit it with the migrations"
    )
    assert tables(project) == set()
    validate = project.run("migrate", "validate", "test")
    assert validate.returncode == 1 and "dbops.sum is out of date" in validate.stderr


def test_rollback_refuses_before_touching_anything_when_a_down_is_missing(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);")  # no down section
    migration(project, "20250101000002", "CREATE TABLE b (id int);", "DROP TABLE b;")
    engine(project).run_migrations()
    result = project.run("rollback", "test", "--count", "2", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: cannot roll back: migrations/20250101000001_m0001.sql "
        "has no '-- migrate:down' section"
    )
    assert tables(project) == {"a", "b"}
    assert len(history(project)) == 2


def test_rollback_to_version_and_count(project: Project) -> None:
    for n in range(1, 5):
        migration(project, f"2025010100000{n}", f"CREATE TABLE t{n} (id int);", f"DROP TABLE t{n};")
    e = engine(project)
    e.run_migrations()
    assert project.run("rollback", "test", "--to", "20250101000002", "--yes").returncode == 0
    assert tables(project) == {"t1", "t2"}
    assert project.run("rollback", "test", "--yes").returncode == 0
    assert tables(project) == {"t1"}
    missing = project.run("rollback", "test", "--to", "20250101000004", "--yes")
    assert missing.stderr.strip() == "error: cannot roll back to 20250101000004: it is not applied"


def test_dry_run_prints_statements_and_changes_nothing(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    migration(
        project,
        "20250101000002",
        "CREATE TABLE b (id int);\nCREATE INDEX CONCURRENTLY b_id ON b (id);",
    )
    result = project.run("migrate", "up", "test", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "would apply 2 migration(s):",
        "-- 20250101000001 m0001 (migrations/20250101000001_m0001.sql, one transaction)",
        "CREATE TABLE a (id int);",
        "-- 20250101000002 m0002 (migrations/20250101000002_m0002.sql, 2 journaled steps)",
        "--   step 1 (in a transaction)",
        "CREATE TABLE b (id int);",
        "--   step 2 (outside a transaction)",
        "CREATE INDEX CONCURRENTLY b_id ON b (id);",
    ]
    with project.database.connect() as conn:
        assert conn.execute("SELECT to_regnamespace('dbops')").fetchone() == (None,)
    assert tables(project) == set()


def test_target_and_out_of_order(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    migration(project, "20250101000003", "CREATE TABLE c (id int);")
    e = engine(project)
    e.run_migrations(target="20250101000001")
    assert tables(project) == {"a"}
    e.run_migrations()
    migration(project, "20250101000002", "CREATE TABLE b (id int);")
    with pytest.raises(
        MigrationError,
        match=r"older than the newest applied migration "
        r"20250101000003: applying it out of order needs --allow-out-of-order",
    ):
        engine(project).run_migrations()
    result = project.run("migrate", "up", "test", "--yes", "--allow-out-of-order")
    assert result.returncode == 0, result.stderr
    assert tables(project) == {"a", "b", "c"}


def test_requirement_outside_target_is_refused(project: Project) -> None:
    migration(
        project,
        "20250101000001",
        "CREATE TABLE a (id int);",
        header="-- dbops:requires 20250101000002",
    )
    migration(project, "20250101000002", "CREATE TABLE b (id int);")
    with pytest.raises(MigrationError, match="requires 20250101000002, which is neither applied"):
        engine(project).run_migrations(target="20250101000001")
    engine(project).run_migrations()
    assert history(project) == ["20250101000001", "20250101000002"]


def test_baseline_adopts_an_existing_database(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    migration(project, "20250101000002", "CREATE TABLE b (id int);")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE a (id int)")
    result = project.run("migrate", "baseline", "test", "--version", "20250101000001", "--yes")
    assert result.returncode == 0, result.stderr
    engine(project).run_migrations()
    assert tables(project) == {"a", "b"}
    again = project.run("migrate", "baseline", "test", "--version", "20250101000001", "--yes")
    assert again.stderr.strip() == (
        "error: cannot baseline: the database already has migration history"
    )


def test_second_runner_is_told_who_holds_the_lock(project: Project) -> None:
    from dbops.migration_history import LOCK_KEY

    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    with psycopg.connect(
        project.database.conninfo, autocommit=True, application_name="deploy-job-17"
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        pid = holder.info.backend_pid
        started = time.monotonic()
        result = project.run("migrate", "up", "test", "--yes", "--lock-wait", "500ms")
        waited = time.monotonic() - started
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("error: another migration runner holds the lock on postgres@")
    assert f"pid {pid} (deploy-job-17, user postgres" in message
    assert message.endswith("waited 0.5s (--lock-wait)")
    assert waited >= 0.5
    assert tables(project) == set()


def test_lock_timeout_is_retried_with_backoff(project: Project) -> None:
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE busy (id int)")
    migration(project, "20250101000001", "ALTER TABLE busy ADD COLUMN note text;")
    e = engine(
        project, "migrations: { lock_timeout: 200ms, retries: { attempts: 10, backoff: 100ms } }\n"
    )
    messages: list[str] = e.messages  # type: ignore[attr-defined]
    locked = threading.Event()

    def hold_lock() -> None:
        """Hold the lock until the run reports its first retry, however long it takes to get
        there on a loaded machine, then let it go."""
        with psycopg.connect(project.database.conninfo) as blocker:
            blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
            locked.set()
            wait_until(lambda: any("retry 1/" in m for m in messages), 60, "the first retry")

    blocker = threading.Thread(target=hold_lock)
    blocker.start()
    assert locked.wait(10)
    e.run_migrations()
    blocker.join()
    assert any("waiting for pid" in m and "retry 1/9" in m for m in messages), messages
    with project.database.connect() as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'busy'"
        ).fetchall()
    assert ("note",) in columns


@pytest.mark.parametrize("up", [
    "ALTER TABLE busy ADD COLUMN note text;",
    # CREATE TABLE IF NOT EXISTS may find an old, busy table: the statements after it in the same
    # migration still look for the sessions holding it, and name them.
    "CREATE TABLE IF NOT EXISTS busy (id int);\nALTER TABLE busy ADD COLUMN note text;",
])
def test_lock_timeout_gives_up_after_the_last_attempt(project: Project, up: str) -> None:
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE busy (id int)")
    migration(project, "20250101000001", up)
    e = engine(
        project, "migrations: { lock_timeout: 100ms, retries: { attempts: 2, backoff: 50ms } }\n"
    )
    with psycopg.connect(project.database.conninfo) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StatementFailed) as caught:
            e.run_migrations()
    assert caught.value.sqlstate == "55P03"
    assert "no lock after 2 attempts (lock_timeout 100ms); blocked by pid " in str(caught.value)
    assert history(project) == []


def test_rehearsal_finds_the_failure_before_the_target_is_touched(project: Project) -> None:
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE accounts (id int)")  # a database with objects is rehearsed
    migration(project, "20250101000001",
              "CREATE TABLE runs (id int);\nINSERT INTO runs VALUES (1), (1);\n"
              "CREATE UNIQUE INDEX CONCURRENTLY runs_id ON runs (id);",
              "DROP TABLE runs;")
    with pytest.raises(MigrationError) as caught:
        engine(project).run_migrations()
    assert str(caught.value).startswith(
        "rehearsal on a copy of the schema failed, the target was not touched: "
        "migrations/20250101000001_m0001.sql:6: CREATE UNIQUE INDEX CONCURRENTLY runs_id ON runs "
        "(id): could not create unique index \"runs_id\": Key (id)=(1) is duplicated. "
        "(SQLSTATE 23505)")
    assert tables(project) == {"accounts"}
    with project.database.connect() as conn:
        leftovers = conn.execute("SELECT count(*) FROM pg_database "
                                 "WHERE datname LIKE 'dbops_rehearsal_%'").fetchone()
        assert leftovers == (0,)


def test_a_database_without_objects_is_not_rehearsed(project: Project) -> None:
    migration(project, "20250101000001",
              "CREATE TABLE runs (id int);\nINSERT INTO runs VALUES (1), (1);\n"
              "CREATE UNIQUE INDEX CONCURRENTLY runs_id ON runs (id);",
              "DROP TABLE runs;")
    e = engine(project)
    with pytest.raises(StatementFailed, match="Key \\(id\\)=\\(1\\) is duplicated"):
        e.run_migrations()
    assert "not rehearsed: the database has no objects yet, the run itself is the rehearsal" \
        in e.messages  # type: ignore[attr-defined]
    # The run stopped at the failing step, as a rehearsal would have: step 1 done, resumable.
    assert tables(project) == {"runs"}
    assert [r.state for r in e.get_migration_status()] == ["partial"]


def test_failed_concurrent_build_is_cleaned_up_and_the_run_resumes(project: Project) -> None:
    migration(
        project,
        "20250101000001",
        "CREATE TABLE runs (id int);\nINSERT INTO runs VALUES (1), (1);\n"
        "CREATE TABLE counter (n int);\nINSERT INTO counter VALUES (1);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY runs_id ON runs (id);\n"
        "ALTER TABLE runs ADD COLUMN done boolean;",
        "DROP TABLE runs;\nDROP TABLE counter;",
    )
    with pytest.raises(StatementFailed) as caught:
        engine(project, "migrations: { rehearse: never }\n").run_migrations()
    assert caught.value.sqlstate == "23505" and caught.value.line == 8
    with project.database.connect() as conn:
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()
        journal = conn.execute("SELECT step, status FROM dbops.migration_journal ORDER BY step")
        assert invalid == (0,)
        assert journal.fetchall() == [(1, "done"), (2, "started")]
        conn.execute("DELETE FROM runs; INSERT INTO runs VALUES (1)")
    status = {r.version: r.state for r in engine(project).get_migration_status()}
    assert status == {"20250101000001": "partial"}
    engine(project).run_migrations()
    with project.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM counter").fetchone() == (1,)  # step 1 not rerun
        assert conn.execute("SELECT count(*) FROM dbops.migration_journal").fetchone() == (0,)
        done = conn.execute("SELECT execution_mode FROM dbops.migration_history").fetchone()
    assert done == ("steps",)


def test_status_json_and_missing_file(project: Project) -> None:
    path = migration(project, "20250101000001", "CREATE TABLE a (id int);")
    migration(project, "20250101000002", "CREATE TABLE b (id int);")
    engine(project).run_migrations(target="20250101000001")
    path.unlink()
    files.write_sum(project.root / "migrations")
    result = project.run("migrate", "status", "test", "--format", "json")
    assert result.returncode == 0, result.stderr
    import json

    rows = {r["version"]: r["state"] for r in json.loads(result.stdout)["migrations"]}
    assert rows == {"20250101000001": "missing-file", "20250101000002": "pending"}
    refused = project.run("migrate", "up", "test", "--yes")
    assert "applied migration 20250101000001 m0001 has no file" in refused.stderr


def test_up_without_yes_and_without_terminal_is_refused(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    result = project.run("migrate", "up", "test")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: refusing to apply pending migrations on test without --yes (no terminal to ask)"
    )
    assert tables(project) == set()


def test_unparsable_sql_refuses_the_whole_run(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    migration(project, "20250101000002", "CREATE TABLE b (id int);\nCREAT TABLE c (id int);")
    result = project.run("migrate", "up", "test", "--yes")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: migrations/20250101000002_m0002.sql:5: syntax error at or near "CREAT"'
    )
    assert tables(project) == set()
    validate = project.run("migrate", "validate", "test")
    assert validate.returncode == 1
    assert (
        'migrations/20250101000002_m0002.sql:5: syntax error at or near "CREAT"' in validate.stderr
    )


def test_python_api_mirrors_the_seed(project: Project) -> None:
    from dbops import MigrationEngine as Exported

    migration(project, "20250101000001", "CREATE TABLE a (id int);", "DROP TABLE a;")
    e = Exported.from_plan("test")
    path = e.create_migration("add user preferences table", risk="medium")
    path.write_text(
        path.read_text()
        .replace("-- migrate:up\n", "-- migrate:up\nCREATE TABLE user_preferences (id int);\n")
        .replace("-- migrate:down\n", "-- migrate:down\nDROP TABLE user_preferences;\n")
    )
    e.write_sum()
    e = Exported.from_plan("test")
    assert e.validate_migrations() == []
    assert len(e.run_migrations().executions) == 2
    assert tables(project) == {"a", "user_preferences"}
    assert [s.state for s in e.get_migration_status()] == ["applied", "applied"]
    e.rollback_migrations(to="20250101000001")
    assert tables(project) == {"a"}


def test_cli_create_writes_the_file_and_the_sum(project: Project) -> None:
    result = project.run(
        "migrate",
        "create",
        "add user preferences table",
        "--zero-downtime",
        "--estimated-duration",
        "30 seconds",
        "--risk-level",
        "low",
    )
    assert result.returncode == 0, result.stderr
    created = result.stdout.strip().removeprefix("created ")
    assert created.startswith("migrations/") and created.endswith("_add_user_preferences_table.sql")
    text = (project.root / created).read_text()
    assert "-- dbops:zero-downtime" in text and "-- dbops:estimated-duration 30s" in text
    files.check_sum(project.root / "migrations")


def test_skipped_backup_is_audited(project: Project) -> None:
    project.write_plan("backup: { directory: backups, before_migrate: true }\n")
    migration(project, "20250101000001", "CREATE TABLE a (id int);")
    result = project.run("migrate", "up", "test", "--yes", "--skip-backup")
    assert result.returncode == 0, result.stderr
    assert not (project.root / "backups").exists() or not any(
        p for p in (project.root / "backups").iterdir() if not p.name.startswith("."))
    with project.database.connect() as conn:
        rows = conn.execute("SELECT action, result, reason FROM dbops.apply_audit").fetchall()
    assert rows == [("migrate up", "done", "1 migration(s) applied: 20250101000001; "
                     "before-migrate backup skipped (--skip-backup)")]


def test_empty_migrations_are_accepted_recorded_and_reported(project: Project) -> None:
    migration(project, "20250101000001", "CREATE TABLE a (id int);", "DROP TABLE a;")
    migration(project, "20250101000002", "-- a placeholder: this change is MySQL-only", "")
    migration(project, "20250101000003", "CREATE TABLE b (id int);", "DROP TABLE b;")
    assert project.run("migrate", "hash").returncode == 0
    lint = project.run("migrate", "lint", "--format", "json")
    assert lint.returncode == 0, lint.stdout
    [finding] = json.loads(lint.stdout)["findings"]
    assert (finding["rule"], finding["severity"], finding["file"], finding["line"]) == (
        "empty-migration", "info", "migrations/20250101000002_m0002.sql", 4)
    up = project.run("migrate", "up", "test", "--yes")
    assert up.returncode == 0, up.stderr
    assert history(project) == ["20250101000001", "20250101000002", "20250101000003"]
    assert tables(project) == {"a", "b"}
    # Nothing was done, so there is nothing to undo: the placeholder rolls back like any other.
    assert project.run("rollback", "test", "--count", "2", "--yes").returncode == 0
    assert history(project) == ["20250101000001"]
    assert tables(project) == {"a"}
