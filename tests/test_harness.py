"""The test harness itself: a streaming replica and a fresh database per test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from harness import REPO, TestDatabase, child_env

from dbops.local import Cluster

T = TypeVar("T")

_seen_databases: list[str] = []


def _poll(what: str, attempt: Callable[[], T], timeout: float = 10.0) -> T:
    """Call `attempt` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = attempt()
        except psycopg.Error as exc:  # e.g. the database has not reached the replica yet
            last_error = exc
        else:
            if result:
                return result
        time.sleep(0.05)
    pytest.fail(f"{what} within {timeout:.0f}s (last error: {last_error})")


def test_a_row_written_on_the_primary_is_read_on_the_replica(
    pg_replica: Cluster, database: TestDatabase
) -> None:
    with database.connect() as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO notes VALUES (1, 'streamed')")
    on_replica = TestDatabase(pg_replica.host, pg_replica.port, database.name)

    def read_row() -> list[tuple[object, ...]]:
        with on_replica.connect() as conn:
            return conn.execute("SELECT id, body FROM notes").fetchall()

    assert _poll("the row did not reach the replica", read_row) == [(1, "streamed")]


def test_the_replica_is_in_recovery_and_the_primary_streams_to_it(
    pg_primary: Cluster, pg_replica: Cluster
) -> None:
    replica = TestDatabase(pg_replica.host, pg_replica.port, "postgres")
    primary = TestDatabase(pg_primary.host, pg_primary.port, "postgres")

    with replica.connect() as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        # Settings written into the primary's data directory reach the replica.
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)

    def streaming() -> list[tuple[object, ...]]:
        with primary.connect() as conn:
            return conn.execute(
                "SELECT state FROM pg_stat_replication WHERE state = 'streaming'"
            ).fetchall()

    assert _poll("pg_stat_replication showed no streaming replica", streaming)


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_empty_database(
    run: int, pg_primary: Cluster, database: TestDatabase
) -> None:
    with database.connect() as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
        ).fetchone()
        conn.execute("CREATE TABLE leftover (id int)")
    assert tables == (0,)
    assert database.name not in _seen_databases
    assert (database.host, database.port, database.user) == (
        "127.0.0.1",
        pg_primary.port,
        "postgres",
    )

    with TestDatabase(pg_primary.host, pg_primary.port, "postgres").connect() as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert database.name in existing
    assert not existing & set(_seen_databases)  # earlier tests' databases were dropped
    _seen_databases.append(database.name)


def test_pytest_and_spawned_commands_import_this_checkout() -> None:
    """Run from a git worktree, both the tests and `python -m dbops` use that worktree's code."""
    import dbops

    assert Path(dbops.__file__).resolve().parent == REPO / "dbops"
    done = subprocess.run(
        [sys.executable, "-c", "import dbops; print(dbops.__file__)"],
        cwd="/", env=child_env(), capture_output=True, text=True, timeout=60, check=True)
    assert Path(done.stdout.strip()).resolve().parent == REPO / "dbops"
