"""Zero-downtime migrations against a real server: rewrites checked against PostgreSQL itself,
kills during each online step, lock blockers waited out without stalling writes, and lint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from harness import Project, fresh_database, make_project

from dbops.local import Cluster
from dbops.migrate import files
from dbops.schema_facts import schema_fingerprint

BASE = """-- the tables
-- migrate:up
CREATE TABLE pipelines (id bigint PRIMARY KEY);
CREATE TABLE tasks (id bigint PRIMARY KEY, pipeline_id bigint, status text, name text,
                    attempt int, external_id bigint);
INSERT INTO pipelines SELECT g FROM generate_series(1, 100) g;
INSERT INTO tasks SELECT g, 1 + g % 100, 'queued', 'task ' || g, 0, g
FROM generate_series(1, {rows}) g;
"""

FIVE = """-- index, foreign key, not null, unique, check
-- migrate:up
CREATE INDEX ON tasks (status);
ALTER TABLE tasks ADD FOREIGN KEY (pipeline_id) REFERENCES pipelines (id);
ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;
ALTER TABLE tasks ADD UNIQUE (external_id);
ALTER TABLE tasks ADD CHECK (attempt >= 0);
"""


def setup(project: Project, *, rows: int, zero_downtime: bool) -> None:
    # Run as written, the plain version needs lint's blessing: that is what lint is for.
    lint = "" if zero_downtime else ", lint: { fail_on: never }"
    project.write_plan(
        f"migrations: {{ zero_downtime: {str(zero_downtime).lower()}, "
        f"rehearse: never, lock_timeout: 1s{lint} }}\n"
    )
    directory = project.root / "migrations"
    (directory / "20250101000001_base.sql").write_text(BASE.format(rows=rows))
    (directory / "20250101000002_five.sql").write_text(FIVE)
    files.write_sum(directory)


@pytest.fixture
def twin(pg_primary: Cluster, tmp_path: Path) -> Iterator[Project]:
    """A second project on its own database."""
    with fresh_database(pg_primary) as db:
        yield make_project(tmp_path / "twin", db)


def fingerprint(project: Project) -> dict[str, str]:
    with project.database.connect() as conn:
        return schema_fingerprint(conn)


def test_rewrites_produce_what_the_original_statements_produce(
    project: Project, twin: Project
) -> None:
    setup(project, rows=1000, zero_downtime=False)
    setup(twin, rows=1000, zero_downtime=True)
    for side in (project, twin):  # tasks exists with rows before the run (not new in it)
        base = side.run("migrate", "up", "test", "--yes", "--target", "20250101000001")
        assert base.returncode == 0, base.stderr
    plain = project.run("migrate", "up", "test", "--yes")
    online = twin.run("migrate", "up", "test", "--yes")
    assert plain.returncode == 0 and online.returncode == 0, plain.stderr + online.stderr
    assert fingerprint(project) == fingerprint(twin)
    with twin.database.connect() as conn:
        modes = dict(conn.execute("SELECT version, execution_mode FROM dbops.migration_history"))
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE NOT convalidated"
        ).fetchone() == (0,)
    assert modes["20250101000002"] == "steps"


def test_kill_during_each_online_step_then_rerun_finishes(project: Project, twin: Project) -> None:
    setup(twin, rows=50_000, zero_downtime=False)
    assert twin.run("migrate", "up", "test", "--yes").returncode == 0
    expected = fingerprint(twin)
    killed_in: set[int] = set()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    for step in range(1, 11):  # the five statements become ten online steps
        setup(project, rows=50_000, zero_downtime=True)
        with project.database.connect() as conn:
            conn.execute(
                "DROP SCHEMA public CASCADE; CREATE SCHEMA public; "
                "DROP SCHEMA IF EXISTS dbops CASCADE"
            )
        assert (
            project.run("migrate", "up", "test", "--yes", "--target", "20250101000001").returncode
            == 0
        )
        runner = subprocess.Popen(
            [sys.executable, "-m", "dbops", "migrate", "up", "test", "--yes"],
            cwd=project.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with project.database.connect() as conn:  # kill once step - 1 steps are done
            deadline = time.monotonic() + 30
            while runner.poll() is None and time.monotonic() < deadline:
                done = (
                    conn.execute(
                        "SELECT count(*) FROM dbops.migration_journal WHERE status = 'done'"
                    ).fetchone()
                    if conn.execute("SELECT to_regclass('dbops.migration_journal')").fetchone()
                    != (None,)
                    else (0,)
                )
                if done and done[0] >= step - 1 and (step == 1 or done[0] > 0):
                    break
                time.sleep(0.001)
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            reached = conn.execute("SELECT max(step) FROM dbops.migration_journal").fetchone()
        if reached and reached[0]:
            killed_in.add(int(reached[0]))
        rerun = project.run("migrate", "up", "test", "--yes")
        assert rerun.returncode == 0, rerun.stderr
        assert fingerprint(project) == expected
        with project.database.connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
            ).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM dbops.migration_journal").fetchone() == (0,)
    assert len(killed_in) >= 5, f"kills landed in steps {sorted(killed_in)}"


def test_blocker_is_waited_for_without_stalling_writes(project: Project) -> None:
    project.write_plan(
        "migrations: { lock_timeout: 300ms, rehearse: never, "
        "retries: { attempts: 4, backoff: 200ms } }\n"
    )
    with project.database.connect() as conn:
        conn.execute(
            "CREATE TABLE busy (id int PRIMARY KEY, n int); "
            "INSERT INTO busy SELECT g, 0 FROM generate_series(1, 100) g"
        )
    (project.root / "migrations" / "20250101000001_m.sql").write_text(
        "-- migrate:up\nALTER TABLE busy ADD COLUMN note text;\n"
    )
    files.write_sum(project.root / "migrations")
    stop = threading.Event()
    latencies: list[float] = []

    def reader() -> None:  # a long report: holds ACCESS SHARE, which does not block writers
        with psycopg.connect(project.database.conninfo, application_name="nightly-report") as c:
            c.execute("SELECT count(*) FROM busy")
            stop.wait(10)

    def writer() -> None:
        with psycopg.connect(project.database.conninfo, autocommit=True) as c:
            while not stop.is_set():
                started = time.perf_counter()
                c.execute("UPDATE busy SET n = n + 1 WHERE id = 1")
                latencies.append(time.perf_counter() - started)
                time.sleep(0.01)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    try:
        result = project.run("migrate", "up", "test", "--yes")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "no lock after 4 attempts (lock_timeout 300ms); blocked by pid " in message
    assert "(nightly-report), in a transaction since " in message and "query started" in message
    assert max(latencies) < 0.3, f"a write waited {max(latencies):.3f}s"
    with project.database.connect() as conn:
        columns = conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'busy' AND column_name = 'note'"
        ).fetchone()
        assert columns == (0,)
        assert conn.execute("SELECT count(*) FROM dbops.migration_history").fetchone() == (0,)


def test_lint_command(project: Project) -> None:
    setup(project, rows=10, zero_downtime=True)
    assert (
        project.run("migrate", "up", "test", "--yes", "--target", "20250101000001").returncode == 0
    )
    five = "migrations/20250101000002_five.sql"
    project.write_plan("migrations: { zero_downtime: false }\n")
    static = project.run("migrate", "lint", five, "--format", "json")
    live = project.run("migrate", "lint", five, "--env", "test", "--format", "json")
    assert static.returncode == 0  # without a plan: zero-downtime, the default, runs it online
    assert live.returncode == 0, live.stdout  # a 10-row table: hazards are information only
    data = json.loads(live.stdout)
    assert [f["rule"] for f in data["findings"]] == [
        "index-not-concurrent",
        "constraint-not-valid",
        "set-not-null",
        "unique-builds-index",
        "constraint-not-valid",
    ]
    assert {f["severity"] for f in data["findings"]} == {"info"}
    assert "under lint.max_blocking 1 s)" in data["findings"][0]["message"]
    assert data["findings"][0]["estimate"][0].startswith("CREATE INDEX on tasks (10 rows, ")
    project.write_plan("migrations: { zero_downtime: false, lint: { fail_on: info } }\n")
    strict = project.run("migrate", "lint", five, "--env", "test")
    assert strict.returncode == 1
    assert strict.stdout.strip().endswith(
        "0 error(s), 0 warning(s), 5 info, 0 ignored; failing at info"
    )
    explain = project.run("migrate", "explain", five, "--env", "test")
    assert "step 1 (outside a transaction: CREATE INDEX CONCURRENTLY)" not in explain.stdout
    project.write_plan("")
    explain = project.run("migrate", "explain", five, "--env", "test")
    assert "step 1 (outside a transaction: CREATE INDEX CONCURRENTLY)" in explain.stdout
    assert "lock: SHARE UPDATE EXCLUSIVE on tasks" in explain.stdout


def test_online_index_build_outwaits_a_young_reader(project: Project) -> None:
    """CREATE INDEX CONCURRENTLY waits for older snapshots; lock_timeout must not kill it."""
    project.write_plan("migrations: { lock_timeout: 200ms, rehearse: never }\n")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE busy (id int PRIMARY KEY, n int); "
                     "INSERT INTO busy SELECT g, 0 FROM generate_series(1, 1000) g")
    (project.root / "migrations" / "20250101000001_m.sql").write_text(
        "-- migrate:up\nCREATE INDEX busy_n ON busy (n);\n")
    files.write_sum(project.root / "migrations")
    release = threading.Event()

    def reader() -> None:  # a running query holds a snapshot the build must wait for
        with psycopg.connect(project.database.conninfo, application_name="report") as c:
            c.execute("SELECT count(*), pg_sleep(2.5) FROM busy")
            release.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.2)
    try:
        runner = subprocess.Popen([sys.executable, "-m", "dbops", "migrate", "up", "test", "--yes"],
                                  cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env={k: v for k, v in os.environ.items()
                                                  if not k.startswith("DB_")})
        _, stderr = runner.communicate(timeout=60)  # the build waits ~2 s, past lock_timeout
        release.set()
    finally:
        release.set()
        thread.join()
    assert runner.returncode == 0, stderr
    with project.database.connect() as conn:
        valid = conn.execute("SELECT indisvalid FROM pg_index "
                             "WHERE indexrelid = 'busy_n'::regclass").fetchone()
    assert valid == (True,)
