"""The runner under SIGKILL and under contention: history always matches the schema, no lock is
left behind, a re-run completes, concurrent runners apply every migration exactly once, and what a
killed run created is credited to migrations, not reported as drift."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from harness import Project, fresh_database, make_project

from dbops.local import Cluster
from dbops.migrate import files
from dbops.migration_history import LOCK_KEY
from dbops.render import NO_CHANGES

COUNT = 10
STEPS_MIGRATION = 6  # runs outside a transaction: a table, then CREATE INDEX CONCURRENTLY


def version(n: int) -> str:
    return f"202501010000{n:02d}"


def write_migrations(project: Project) -> None:
    # Kills should land in the run itself, not in a rehearsal on a schema copy before it.
    project.write_plan("migrations: { rehearse: never }\n")
    directory = project.root / "migrations"
    for n in range(1, COUNT + 1):
        up = (
            f"CREATE TABLE t{n} (id int);\nINSERT INTO applied_log VALUES ('{version(n)}');\n"
            "SELECT pg_sleep(0.03);"
        )
        if n == 1:
            up = "CREATE TABLE applied_log (version text NOT NULL);\n" + up
        if n == STEPS_MIGRATION:
            up += f"\nCREATE INDEX CONCURRENTLY t{n}_idx ON t{n} (id);"
        (directory / f"{version(n)}_m{n}.sql").write_text(
            f"-- step {n}\n-- migrate:up\n{up}\n-- migrate:down\nDROP TABLE t{n};\n"
        )
    files.write_sum(directory)


def start_runner(project: Project) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    return subprocess.Popen(
        [sys.executable, "-m", "dbops", "migrate", "up", "test", "--yes"],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_consistent(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    """History matches the schema exactly; returns the applied versions."""
    has_history = conn.execute("SELECT to_regclass('dbops.migration_history')").fetchone()
    applied = set()
    if has_history and has_history[0]:
        applied = {r[0] for r in conn.execute("SELECT version FROM dbops.migration_history")}
    tables = {
        r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    logged: dict[str, int] = {}
    if "applied_log" in tables:
        logged = dict(conn.execute("SELECT version, count(*) FROM applied_log GROUP BY version"))
    for n in range(1, COUNT + 1):
        v = version(n)
        assert logged.get(v, 0) <= 1, f"{v} ran twice"
        if n == STEPS_MIGRATION:
            if v in applied:
                valid = conn.execute(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('t6_idx')"
                ).fetchone()
                assert valid == (True,)
            continue
        assert (v in applied) == (f"t{n}" in tables), f"history and schema disagree on {v}"
        assert (v in applied) == (logged.get(v, 0) == 1)
    return applied


def wait_for_orphans(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """A killed runner's server sessions may still finish the message they were sent (a whole
    migration, atomically): wait until they are gone before looking."""
    deadline = time.monotonic() + 30
    while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                       "'dbops/%' AND datname = current_database()").fetchone() != (0,):
        assert time.monotonic() < deadline, "a killed runner's session never ended"
        time.sleep(0.02)


def assert_lock_released(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    wait_for_orphans(conn)
    deadline = time.monotonic() + 10
    while conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
        (LOCK_KEY,),
    ).fetchone() != (0,):
        assert time.monotonic() < deadline, "the runner lock is still held"
        time.sleep(0.05)


@pytest.fixture
def projects(pg_primary: Cluster, tmp_path: Path) -> Iterator[Iterator[Project]]:
    """Fresh projects on fresh databases, as many as a test asks for."""

    def make() -> Iterator[Project]:
        n = 0
        while True:
            n += 1
            with fresh_database(pg_primary) as db:
                project = make_project(tmp_path / f"p{n}", db)
                write_migrations(project)
                yield project

    maker = make()
    yield maker
    maker.close()


def applied_count(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    if conn.execute("SELECT to_regclass('dbops.migration_history')").fetchone() == (None,):
        return 0
    row = conn.execute("SELECT count(*) FROM dbops.migration_history").fetchone()
    return int(row[0]) if row else 0


def kill_during_a_run(project: Project, after: int, extra: float, seed: int) -> None:
    """Start `migrate up`, SIGKILL it `extra` seconds after `after` migrations are applied, and
    check the server released its runner lock."""
    runner = start_runner(project)
    with project.database.connect() as conn:
        deadline = time.monotonic() + 60
        while runner.poll() is None and applied_count(conn) < after:
            assert time.monotonic() < deadline, f"seed {seed}: the runner made no progress"
            time.sleep(0.002)
        time.sleep(extra)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        assert_lock_released(conn)


def test_sigkill_at_random_points_never_breaks_history(projects: Iterator[Project]) -> None:
    """20 runs, each killed at a random point: after a random number of migrations (0..9) and a
    random few milliseconds more, so kills land anywhere from start-up to the last migration,
    whatever the machine's speed."""
    seed = int(os.environ.get("DBOPS_CRASH_SEED", time.time()))
    rng = random.Random(seed)
    progress: list[int] = []  # migrations applied when the kill landed
    for _ in range(12):
        project = next(projects)
        after, extra = rng.randrange(COUNT), rng.uniform(0.0, 0.04)
        kill_during_a_run(project, after, extra, seed)
        with project.database.connect() as conn:
            progress.append(len(assert_consistent(conn)))
        rerun = project.run("migrate", "up", "test", "--yes")
        assert rerun.returncode == 0, f"seed {seed}: {rerun.stderr}"
        with project.database.connect() as conn:
            assert assert_consistent(conn) == {version(n) for n in range(1, COUNT + 1)}
            assert conn.execute(
                "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
            ).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM dbops.migration_journal").fetchone() == (0,)
    assert len({p for p in progress if p < COUNT}) >= 4, f"seed {seed}: kills at {progress}"


def test_two_runners_at_once_apply_each_migration_exactly_once(projects: Iterator[Project]) -> None:
    for _ in range(3):
        project = next(projects)
        first, second = start_runner(project), start_runner(project)
        assert first.wait(timeout=60) == 0, first.communicate()[1]
        assert second.wait(timeout=60) == 0, second.communicate()[1]
        with project.database.connect() as conn:
            assert assert_consistent(conn) == {version(n) for n in range(1, COUNT + 1)}
            counts = conn.execute("SELECT count(*), count(DISTINCT version) FROM applied_log")
            assert counts.fetchone() == (COUNT, COUNT)


def drift_items(project: Project) -> tuple[int, dict[str, str]]:
    result = project.run("drift", "test", "--format", "json")
    data = json.loads(result.stdout)
    return result.returncode, {i["address"]: i["kind"] for i in data["items"]}


def test_what_a_killed_run_created_is_not_drift_after_a_rerun(projects: Iterator[Project]) -> None:
    """Applied, then a migration run killed at a random point: drift names the dead run (not its
    objects); after a re-run (migrate up, or apply) drift is in sync, and a table made by hand
    afterwards is still drift."""
    seed = int(os.environ.get("DBOPS_CRASH_SEED", time.time()))
    rng = random.Random(seed)
    first = 2  # applied by `dbops apply` before the killed run
    died = 0  # runs killed while crediting was open
    for attempt in range(3):
        project = next(projects)
        project.write_plan(f"migrations: {{ rehearse: never, target: '{version(first)}' }}\n")
        applied = project.run("apply", "test", "--yes")
        assert applied.returncode == 0, applied.stderr
        project.write_plan("migrations: { rehearse: never }\n")
        after, extra = rng.randrange(first, COUNT), rng.uniform(0.0, 0.04)
        kill_during_a_run(project, after, extra, seed)
        code, items = drift_items(project)
        out_of_band = {a for a, kind in items.items() if kind == "out-of-band"}
        assert out_of_band <= {"migration.run"}, f"seed {seed}: {items}"
        assert code == (2 if out_of_band else 3 if items else 0), f"seed {seed}: {items}"
        if out_of_band:
            died += 1
            human = project.run("drift", "test").stdout
            assert "a migration run died (started " in human, human
            with project.database.connect() as conn:  # a runner holds the lock: still going
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                still_going = drift_items(project)[1]
                assert "out-of-band" not in still_going.values(), still_going
        rerun = (project.run("migrate", "up", "test", "--yes") if attempt % 2
                 else project.run("apply", "test", "--yes"))
        assert rerun.returncode == 0, f"seed {seed}: {rerun.stderr}"
        if NO_CHANGES in rerun.stdout and "migration.run" in out_of_band:
            # The dead run had applied every migration: apply has nothing to run; drift said so.
            rerun = project.run("migrate", "up", "test", "--yes")
            assert rerun.returncode == 0, f"seed {seed}: {rerun.stderr}"
        assert drift_items(project) == (0, {}), f"seed {seed}, killed after {after} migrations"
        with project.database.connect() as conn:
            conn.execute("CREATE TABLE by_hand (id int)")
        assert drift_items(project) == (2, {"table.public.by_hand": "out-of-band"})
    assert died >= 1, f"seed {seed}: no kill landed inside a run"
