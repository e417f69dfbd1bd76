"""Faults against real servers: a replica stopped under read load, a replica whose replay is
paused, the primary restarted, idle connections terminated, a failover the health monitor
resets the pool after (both managers). Servers that get stopped or paused
are this module's own (a replica of the session primary, a primary of its own)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import TEST_SETTINGS, TestDatabase, replicated, scratch_area, start_replica
from pool_support import FAST, db_endpoint, endpoint, wait_until

from dbops.config.load import load_plan
from dbops.errors import ConnectionError
from dbops.health.monitor import HealthMonitor
from dbops.local import Cluster, free_port
from dbops.pool import (
    AsyncPoolManager,
    ConnectionLost,
    PoolClosed,
    PoolError,
    PoolExhausted,
    PoolManager,
    PoolTimeout,
    PoolUnavailable,
)


@pytest.fixture(scope="module")
def own_replica(pg_primary: Cluster) -> Iterator[Cluster]:
    """A streaming replica of the session primary that these tests may stop and pause."""
    with scratch_area() as base:
        replica = Cluster(base / "replica")
        try:
            replica = start_replica(pg_primary, replica.data_dir)
            yield replica
        finally:
            replica.down()


def _on(cluster: Cluster, db: TestDatabase) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=cluster.host, port=cluster.port, user="postgres",
                           dbname=db.name, autocommit=True)


def test_a_replica_stopped_under_read_load_fails_no_read(
    database: TestDatabase, own_replica: Cluster, pg_replica: Cluster
) -> None:
    replicated(own_replica, database)
    replicated(pg_replica, database)
    replicas = [endpoint(own_replica, database.name, "victim"),
                endpoint(pg_replica, database.name, "steady")]
    served: Counter[int] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()
    with PoolManager(db_endpoint(database), replicas, min_size=2, max_size=4,
                     read_your_writes=False, **FAST) as pool:

        def reader() -> None:
            while not stop.is_set():
                try:
                    served[pool.query("SELECT inet_server_port()", read_only=True)[0][0]] += 1
                except BaseException as exc:
                    errors.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(4)]
        for t in readers:
            t.start()
        try:
            wait_until(lambda: served[own_replica.port] > 50, what="reads on the victim")
            own_replica.down()
            wait_until(lambda: not pool.router.replicas["victim"].admitted, what="ejection")
            wait_until(lambda: "cannot connect to victim" in pool.router.replicas["victim"].reason,
                       what="a probe of the stopped replica")
            during = sum(served.values())
            time.sleep(0.3)
            assert sum(served.values()) > during + 50  # reads went on elsewhere
            before_restart = served[own_replica.port]
            own_replica.up()
            wait_until(lambda: served[own_replica.port] > before_restart + 50,
                       what="reads on the victim again after its restart")
            assert pool.router.replicas["victim"].admitted
        finally:
            stop.set()
            for t in readers:
                t.join()
        assert errors == []


def test_a_lagging_replica_gets_no_reads_and_read_your_writes_holds(
    database: TestDatabase, own_replica: Cluster, pg_primary: Cluster
) -> None:
    own_replica.up()  # in case the previous test left it stopped
    replicated(own_replica, database)
    replica = endpoint(own_replica, database.name, "lagging")
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=3,
                     max_lag=0.3, **FAST) as pool:

        def fresh_reader_ports(n: int) -> list[int]:
            """Ports serving n reads of a thread that wrote nothing (no read-your-writes)."""
            ports: list[int] = []

            def read() -> None:
                ports.extend(pool.query("SELECT inet_server_port()", read_only=True)[0][0]
                             for _ in range(n))

            t = threading.Thread(target=read)
            t.start()
            t.join()
            return ports

        pool.query("CREATE TABLE counter (n int)")
        pool.query("INSERT INTO counter VALUES (0)")
        wait_until(lambda: fresh_reader_ports(1) == [own_replica.port], what="replica in rotation")
        with _on(own_replica, database) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            i, deadline = 0, time.monotonic() + 1.0
            while time.monotonic() < deadline:  # a write-then-read loop while replay is paused
                i += 1
                pool.query("UPDATE counter SET n = %s", (i,))
                assert pool.query("SELECT n FROM counter", read_only=True) == [(i,)]
            state = pool.router.replicas["lagging"]
            assert state.lag is not None and state.lag > 0.3
            assert pool.get_health_status().nodes[1].state == "lagging"
            assert set(fresh_reader_ports(20)) == {pg_primary.port}
        finally:
            with _on(own_replica, database) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: set(fresh_reader_ports(5)) == {own_replica.port},
                   what="the replica back in rotation once replay resumed")
        assert pool.query("SELECT n FROM counter", read_only=True) == [(i,)]


def test_a_primary_restart_fails_calls_in_flight_and_later_calls_succeed(
    scratch_dir: object,
) -> None:
    cluster = Cluster(scratch_dir / "primary", settings=TEST_SETTINGS)  # type: ignore[operator]
    cluster.up()
    with PoolManager(endpoint(cluster, "postgres"), min_size=2, max_size=4, **FAST) as pool:
        pool.query("CREATE TABLE t (v int)")
        outcome: list[BaseException] = []

        def long_call() -> None:
            try:
                pool.query("SELECT pg_sleep(30)")
            except BaseException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=long_call)
        caller.start()
        wait_until(lambda: pool.get_pool_stats()["primary"].in_use == 1, what="the call in flight")
        time.sleep(0.1)
        cluster.down()
        caller.join(timeout=10)
        assert len(outcome) == 1 and isinstance(outcome[0], ConnectionLost)
        message = str(outcome[0])
        assert message.startswith("the connection to primary was lost during the call (")
        assert "terminating connection due to administrator command" in message
        # Whether libpq delivered the server's 57P01 before the socket closed decides if the
        # pool can say the statement did not run; either way the caller is told plainly.
        assert message.endswith((
            "; it was not applied; later calls use new connections",
            "; it may or may not have been applied; later calls use new connections",
        ))

        with pytest.raises(ConnectionError, match=r"^cannot connect to primary \(postgres@"):
            pool.query("SELECT 1")

        cluster.up()
        assert pool.query("INSERT INTO t VALUES (1)") == []
        with pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert pool.get_health_status().status == "healthy"


def test_idle_connections_terminated_by_the_server_are_replaced(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=4, max_size=4, **FAST) as pool:
        app = "dbops/" + pool.settings.application_name

        def sessions() -> int:
            with database.connect() as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity"
                                   " WHERE application_name = %s", (app,)).fetchone()
            return int(row[0]) if row else 0

        assert sessions() == 4
        with database.connect() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = %s", (app,))
        wait_until(lambda: sessions() == 0, what="the pool's sessions to end")
        held = [pool.connection() for _ in range(4)]
        for checkout in held:  # four checkouts at once: none gets a dead connection
            assert checkout.__enter__().execute("SELECT 1").fetchone() == (1,)
        for checkout in held:
            checkout.__exit__(None, None, None)
        assert sessions() == 4
        assert pool.get_pool_stats()["primary"].closed == 4


def test_a_paused_replica_serves_no_read_within_max_lag_and_one_interval_under_load(
    database: TestDatabase, own_replica: Cluster
) -> None:
    """4 readers keep the replica's small pool busy and a writer keeps the primary writing;
    replay paused: after max_lag + one monitor interval no read is served by the replica;
    resumed: reads come back to it."""
    own_replica.up()
    replicated(own_replica, database)
    served: Counter[int] = Counter()
    errors: list[BaseException] = []
    stop = threading.Event()
    settings = {**FAST, "monitor_interval": 0.2, "max_lag": 1.0}
    with PoolManager(db_endpoint(database), [endpoint(own_replica, database.name, "r")],
                     min_size=1, max_size=2, read_your_writes=False, **settings) as pool:
        pool.query("CREATE TABLE counter (n int)")
        pool.query("INSERT INTO counter VALUES (0)")

        def load(write: bool) -> None:
            while not stop.is_set():
                try:
                    if write:
                        pool.query("UPDATE counter SET n = n + 1")
                    else:
                        port = pool.query("SELECT inet_server_port()", read_only=True)[0][0]
                        served[port] += 1
                except BaseException as exc:
                    errors.append(exc)

        workers = [threading.Thread(target=load, args=(n == 0,)) for n in range(5)]
        for t in workers:
            t.start()
        try:
            wait_until(lambda: served[own_replica.port] > 20, what="reads on the replica")
            with _on(own_replica, database) as conn:
                conn.execute("SELECT pg_wal_replay_pause()")
            paused = time.monotonic()
            try:
                wait_until(lambda: (pool.router.replicas["r"].lag or 0) > 1.0,
                           what="the paused replica's lag past max_lag")
                # max_lag + one monitor interval, and a probe's round trip on a loaded machine
                assert time.monotonic() - paused < 1.0 + 0.2 + 0.5
                time.sleep(0.1)  # reads routed there before the round finish
                before = served[own_replica.port]
                time.sleep(1.0)
                assert served[own_replica.port] == before
            finally:
                with _on(own_replica, database) as conn:
                    conn.execute("SELECT pg_wal_replay_resume()")
            back = served[own_replica.port]
            wait_until(lambda: served[own_replica.port] > back + 20,
                       what="reads on the replica once replay resumed")
        finally:
            stop.set()
            for t in workers:
                t.join()
        assert errors == []


def _kill_when_running(database: TestDatabase, marker: str) -> None:
    """Terminate the backend running a statement containing `marker` (as a DBA would)."""
    def killed() -> bool:
        with database.connect() as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE %s AND pid <> pg_backend_pid()", (f"%{marker}%",)
            ).fetchone()
        return bool(row and row[0])

    wait_until(killed, what=f"a backend running {marker}")


def test_a_terminated_statement_is_never_run_again(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, **FAST) as pool:
        pool.query("CREATE TABLE applied (n int)")
        pool.query("CREATE PROCEDURE apply_once() LANGUAGE plpgsql AS $$ BEGIN"
                   " INSERT INTO applied VALUES (1); COMMIT; PERFORM pg_sleep(30); END $$")
        killer = threading.Thread(target=_kill_when_running, args=(database, "apply_once"))
        killer.start()
        with pytest.raises(ConnectionLost) as caught:
            pool.query("CALL apply_once()")
        killer.join()
        assert caught.value.may_have_committed is True
        assert str(caught.value).endswith(
            "; it may or may not have been applied; later calls use new connections")
        assert pool.query("SELECT count(*) FROM applied") == [(1,)]  # committed once, not twice

        # A transaction lost before COMMIT was not applied: it is retried, and says so.
        attempts: list[int] = []

        def body(conn: psycopg.Connection[object]) -> None:
            attempts.append(1)
            conn.execute("INSERT INTO applied VALUES (2)")
            if len(attempts) == 1:
                # Long enough for a loaded machine to find it; the kill ends it at once.
                threading.Thread(target=_kill_when_running,
                                 args=(database, "pg_sleep(29.5)")).start()
                conn.execute("SELECT pg_sleep(29.5)")

        pool.transaction(body)
        assert len(attempts) == 2
        assert pool.query("SELECT n, count(*) FROM applied GROUP BY n ORDER BY n") == [
            (1, 1), (2, 1)]


def test_every_pool_error_is_a_pool_error(database: TestDatabase) -> None:
    dead = replace(db_endpoint(database), port=free_port())
    with PoolManager(dead, min_size=0, max_size=1, **FAST) as pool:
        with pytest.raises(PoolError) as caught:
            pool.query("SELECT 1")
        assert isinstance(caught.value, PoolUnavailable)
        assert isinstance(caught.value, ConnectionError)  # dbops's, as before
        assert str(caught.value).startswith("cannot connect to primary (postgres@127.0.0.1:")
    assert issubclass(PoolExhausted, PoolTimeout) and issubclass(PoolTimeout, PoolError)
    assert issubclass(ConnectionLost, PoolError) and issubclass(PoolClosed, PoolError)


def test_reset_after_a_real_promotion_moves_the_pool_to_the_new_primary(
    scratch_dir: Path,
) -> None:
    """The primary goes away, its replica is promoted and takes over its address: reset()
    closes the old connections, forgets the old replica state and opens new ones."""
    primary = Cluster(scratch_dir / "primary", settings=TEST_SETTINGS)
    primary.up()
    replica = start_replica(primary, scratch_dir / "replica")
    moved: Cluster | None = None
    try:
        with PoolManager(endpoint(primary, "postgres"), [endpoint(replica, "postgres", "r1")],
                         min_size=2, max_size=3, **FAST) as pool:
            pool.query("CREATE TABLE t (v int)")
            pool.query("INSERT INTO t VALUES (1)")
            lsn = pool.last_write_lsn()
            with psycopg.connect(host=replica.host, port=replica.port, user="postgres",
                                 dbname="postgres", autocommit=True) as conn:
                wait_until(lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                                (lsn,)).fetchone() == (True,), what="replay")
            assert pool.router.replicas["r1"].admitted
            moved = _failover(primary, replica)  # the promoted server at the primary's address

            pool.reset()
            assert pool.get_pool_stats()["primary"].size == 2
            pool.query("INSERT INTO t VALUES (2)")
            assert pool.query("SELECT pg_is_in_recovery(), count(*) FROM t") == [(False, 2)]
            assert pool.last_write_lsn() is not None
            wait_until(lambda: not pool.router.replicas["r1"].admitted,
                       what="the vanished replica ejected")
            assert pool.query("SELECT count(*) FROM t", read_only=True) == [(2,)]
    finally:
        if moved is not None:
            moved.down()
        replica.down()
        primary.down()


def _failover(primary: Cluster, replica: Cluster) -> Cluster:
    """Stop the primary, promote its replica and serve it at the primary's address."""
    address = primary.port
    primary.down()
    with psycopg.connect(host=replica.host, port=replica.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:
        assert conn.execute("SELECT pg_promote()").fetchone() == (True,)
    replica.down()
    # pg_basebackup copied the primary's socket lock file: the address is free now.
    (replica.data_dir / f".s.PGSQL.{address}.lock").unlink(missing_ok=True)
    moved = Cluster(replica.data_dir, port=address, settings=TEST_SETTINGS)
    moved.up()
    return moved


@pytest.mark.parametrize("flavour", ["threads", "asyncio"])
def test_the_health_monitor_resets_a_real_pool_after_a_real_promotion(
    scratch_dir: Path, tmp_path: Path, flavour: str
) -> None:
    """The health monitor sees the primary change (a replica promoted at the primary's address)
    and its recovery resets the attached pool: PoolManager in the monitor's thread,
    AsyncPoolManager on its own event loop. The pool opens min_size fresh connections to the
    new primary at once, and writes go there."""
    primary = Cluster(scratch_dir / "primary", settings=TEST_SETTINGS)
    primary.up()
    replica = start_replica(primary, scratch_dir / "replica")
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "faults.yaml").write_text(
        "apiVersion: dbops/v1\nenvironment: faults\ndatabase:\n"
        f"  host: 127.0.0.1\n  port: {primary.port}\n  name: postgres\n  user: postgres\n"
        "  sslmode: disable\n  connect_timeout: 2s\n"
        "pool: { instances: 1, min_size: 2, max_size: 3 }\n"
        "health:\n  recovery: { enabled: true, reset_pool_after_failover: { enabled: true } }\n")
    plan = load_plan("faults", root=tmp_path, environ={})
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    moved: Cluster | None = None
    pool: PoolManager | AsyncPoolManager
    if flavour == "threads":
        pool = PoolManager.from_plan(plan, **FAST)
        call: Callable[[Any], Any] = lambda result: result  # noqa: E731
    else:
        pool = AsyncPoolManager.from_plan(plan, **FAST)
        call = lambda work: asyncio.run_coroutine_threadsafe(work, loop).result(15)  # noqa: E731
    try:
        call(pool.open())
        call(pool.query("CREATE TABLE t (v int)"))
        call(pool.query("INSERT INTO t VALUES (1)"))
        lsn = call(pool.query("SELECT pg_current_wal_insert_lsn()::text"))[0][0]
        with psycopg.connect(host=replica.host, port=replica.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            wait_until(lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                            (lsn,)).fetchone() == (True,), what="replay")
        with HealthMonitor(plan, pool=pool, persist=False, alerts=False) as monitor:
            assert monitor.force_health_check().actions == ()
            opened = pool.get_pool_stats()["primary"].opened
            moved = _failover(primary, replica)
            report = monitor.force_health_check()
            assert len(report.actions) == 1
            assert report.actions[0].startswith("recovery: reset the pool: the primary changed")
            stats = pool.get_pool_stats()["primary"]
            assert (stats.opened - opened, stats.size, stats.idle) == (2, 2, 2)
        call(pool.query("INSERT INTO t VALUES (2)"))
        assert call(pool.query("SELECT pg_is_in_recovery(), count(*) FROM t")) == [(False, 2)]
    finally:
        call(pool.shutdown())
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
        if moved is not None:
            moved.down()
        replica.down()
        primary.down()
