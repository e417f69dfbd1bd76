"""Read routing: the router's rules on plain values, then reads against the session's primary
and streaming replica (intent, round robin, read-your-writes)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import psycopg
import pytest
from harness import Project, TestDatabase, replicated
from pool_support import FAST, db_endpoint, endpoint, install_taskmaster, wait_until

from dbops.local import Cluster, free_port
from dbops.pool import PoolConfigError, PoolManager
from dbops.pool.routing import PRIMARY, Router, WalHistory, format_lsn, parse_lsn, record_end


def _router(strategy: str = "round_robin") -> Router:
    return Router(["a", "b", "c"], strategy=strategy, max_lag=1.0,  # type: ignore[arg-type]
                  eject_backoff=1.0, eject_backoff_max=4.0)


def test_lsn_text_and_record_ends() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert record_end(parse_lsn("0/5000028")) == parse_lsn("0/5000000")  # after a segment header
    assert record_end(parse_lsn("0/5002018")) == parse_lsn("0/5002000")  # after a page header
    assert record_end(parse_lsn("0/5002019")) == parse_lsn("0/5002019")


def test_lag_is_the_age_of_the_oldest_unreplayed_primary_position() -> None:
    history = WalHistory()
    history.record(100, now=10.0)
    history.record(100, now=11.0)  # same position: the first sighting counts
    history.record(200, now=12.0)
    assert history.lag(200, now=20.0) == 0.0
    assert history.lag(150, now=20.0) == 8.0
    assert history.lag(50, now=20.0) == 10.0


def test_router_orders_candidates_and_skips_lagging_and_ejected_replicas() -> None:
    router = _router()
    assert router.candidates() == [(PRIMARY, False)]  # nothing probed yet: primary only
    router.observe_primary(1000, now=0.0)
    for name in "abc":
        router.observe_replica(name, 1000, now=0.5)
    rounds = sorted([n for n, _ in router.candidates()] for _ in range(3))
    assert rounds == [["a", "b", "c", PRIMARY], ["b", "c", "a", PRIMARY], ["c", "a", "b", PRIMARY]]

    router.observe_primary(2000, now=1.0)
    router.observe_replica("b", 1000, now=2.5)  # 1.5 s behind the 2000 first seen at 1.0
    assert router.replicas["b"].reason == "lag 1.5s over max_lag 1.0s"
    assert {n for n, _ in router.candidates()} == {"a", "c", PRIMARY}

    router.eject("a", "connection refused", now=3.0)
    assert [n for n, _ in router.candidates()] in (["c", PRIMARY],)
    assert router.due_for_probe(3.5) == ["b", "c"]  # a is backing off for 1 s
    router.eject("a", "still refused", now=4.0)  # a failed probe doubles the backoff
    assert router.replicas["a"].ejected_until == 6.0
    router.observe_replica("a", 2000, now=6.0)
    assert router.replicas["a"].admitted and router.replicas["a"].failures == 0


def test_least_lag_and_read_your_writes_checks() -> None:
    router = _router("least_lag")
    router.observe_primary(1000, now=0.0)
    router.observe_primary(3000, now=1.0)
    router.observe_replica("a", 1000, now=1.5)  # lag 0.5
    router.observe_replica("b", 3000, now=1.5)  # lag 0
    router.observe_replica("c", 2000, now=1.2)  # lag 0.2
    assert [n for n, _ in router.candidates()] == ["b", "c", "a", PRIMARY]
    # After this caller's write at 2500: b has replayed it; a and c need a fresh check.
    assert router.candidates(2500) == [("b", False), ("c", True), ("a", True), (PRIMARY, False)]


def _replayed(replica: Cluster, db: TestDatabase, lsn: str | None) -> None:
    with psycopg.connect(host=replica.host, port=replica.port, user="postgres", dbname=db.name,
                         autocommit=True) as conn:
        wait_until(lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                        (lsn,)).fetchone() == (True,), what=f"replay of {lsn}")


def _port(pool: PoolManager, **kwargs: object) -> int:
    return int(pool.query("SELECT inet_server_port()", read_only=True, **kwargs)[0][0])  # type: ignore[arg-type]


def test_reads_go_to_replicas_only_by_intent(
    database: TestDatabase, pg_primary: Cluster, pg_replica: Cluster
) -> None:
    replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=3, **FAST) as pool:
        in_recovery = "SELECT pg_is_in_recovery()"
        assert pool.query(in_recovery) == [(False,)]  # a SELECT, but not said to be a read
        assert pool.query(in_recovery, read_only=True) == [(True,)]
        with pool.connection("read") as conn:
            assert conn.execute(in_recovery).fetchone() == (True,)
        with pool.connection("write") as conn:
            assert conn.execute(in_recovery).fetchone() == (False,)

        def read_only_body(conn: psycopg.Connection[object]) -> tuple[object, ...] | None:
            return conn.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone()

        assert pool.transaction(read_only_body, read_only=True) == (True, "on")
        stats = pool.get_pool_stats()
        assert stats["r1"].reads_routed == 3 and stats["primary"].reads_routed == 0
        health = pool.get_health_status()
        assert [(n.node, n.role, n.state) for n in health.nodes] == [
            ("primary", "primary", "up"), ("r1", "replica", "up")
        ]


def test_round_robin_spreads_reads(database: TestDatabase, pg_replica: Cluster) -> None:
    replicated(pg_replica, database)
    replicas = [endpoint(pg_replica, database.name, name) for name in ("r1", "r2")]
    with PoolManager(db_endpoint(database), replicas, min_size=1, max_size=2, **FAST) as pool:
        for _ in range(10):
            assert _port(pool) == pg_replica.port
        stats = pool.get_pool_stats()
        assert (stats["r1"].reads_routed, stats["r2"].reads_routed) == (5, 5)


def test_read_your_writes_with_the_replica_in_rotation(
    database: TestDatabase, pg_primary: Cluster, pg_replica: Cluster
) -> None:
    replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=3, **FAST) as pool:
        pool.query("CREATE TABLE counter (n int)")
        pool.query("INSERT INTO counter VALUES (0)")
        assert pool.last_write_lsn() is not None
        served_by_replica = 0
        for i in range(1, 61):
            pool.query("UPDATE counter SET n = %s", (i,))
            if i % 15 == 0:  # sometimes give the replica time to replay this write
                _replayed(pg_replica, database, pool.last_write_lsn())
            rows = pool.query("SELECT n, inet_server_port() FROM counter", read_only=True)
            assert rows[0][0] == i  # never an older value
            served_by_replica += rows[0][1] == pg_replica.port
        assert served_by_replica >= 4

        # Read-your-writes belongs to the caller: another thread that wrote nothing reads from
        # the replica right away; after_lsn asks for a position explicitly.
        ports: list[int] = []
        thread = threading.Thread(target=lambda: ports.append(_port(pool)))
        thread.start()
        thread.join()
        assert ports == [pg_replica.port]
        with pool.connection("read", after_lsn="0/0") as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_a_replica_that_cannot_be_reached_is_ejected_at_open(database: TestDatabase) -> None:
    dead = replace(db_endpoint(database, "gone"), port=free_port())
    with PoolManager(db_endpoint(database), [dead], min_size=1, max_size=2, **FAST) as pool:
        assert pool.query("SELECT pg_is_in_recovery()", read_only=True) == [(False,)]
        node = pool.get_health_status().nodes[1]
        assert (node.node, node.state) == ("gone", "ejected")
        assert node.reason.startswith("cannot connect to gone (postgres@127.0.0.1:")
        assert pool.get_health_status().status == "degraded"


@pytest.mark.parametrize("strategy", ["round_robin", "least_lag"])
def test_both_strategies_route_reads(
    database: TestDatabase, pg_replica: Cluster, strategy: str
) -> None:
    replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=2,
                     strategy=strategy, **FAST) as pool:
        assert _port(pool) == pg_replica.port


def test_taskmaster_load_with_a_replica_reads_its_own_writes(
    project: Project, pg_replica: Cluster
) -> None:
    """The example's repositories under load: 6 workers each create, claim and finish tasks
    and read each one back at once (intent read, replica in the plan): no lost update, every
    read sees the caller's own write."""
    from examples.taskmaster import PipelineRepository, TaskRepository

    install_taskmaster(project)
    replicated(pg_replica, project.database)
    replica = endpoint(pg_replica, project.database.name, "r1")
    errors: list[BaseException] = []
    with PoolManager(db_endpoint(project.database), [replica], min_size=2, max_size=4,
                     **FAST) as pool:
        tasks = TaskRepository(pool)
        pipeline = PipelineRepository(pool).create("load", "git@example.com:load")

        def worker(n: int) -> None:
            try:
                for i in range(10):
                    task = tasks.create(pipeline, f"w{n}-{i}", priority=i)
                    claimed = tasks.claim_next()
                    assert claimed is not None
                    done = tasks.update_status(claimed.id, "succeeded", f"by worker {n}")
                    seen = tasks.get(done.id)
                    assert seen is not None and seen.status == "succeeded"
                    assert tasks.get(task.id) is not None
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert pool.query("SELECT status, count(*), sum(attempt) FROM tasks GROUP BY status") == [
            ("succeeded", 60, 60)
        ]
        assert pool.query("SELECT count(*) FROM task_logs") == [(60,)]
        stats = pool.get_pool_stats()
        assert stats["r1"].reads_routed + stats["primary"].reads_routed == 120


def _pause(replica: Cluster, db: TestDatabase, pause: bool) -> None:
    with psycopg.connect(host=replica.host, port=replica.port, user="postgres", dbname=db.name,
                         autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if pause else "SELECT pg_wal_replay_resume()")


def test_read_your_writes_after_every_way_of_writing(
    database: TestDatabase, pg_replica: Cluster
) -> None:
    """Replay paused: a read after executemany, COPY, a pipeline or a transaction block sees the
    write (so it is not served by the stale replica)."""
    replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=2, **FAST) as pool:
        pool.query("CREATE TABLE counter (n int)")
        pool.query("INSERT INTO counter VALUES (0)")
        _replayed(pg_replica, database, pool.last_write_lsn())
        read = "SELECT n FROM counter"
        _pause(pg_replica, database, True)
        try:
            with pool.connection() as conn:
                conn.cursor().executemany("UPDATE counter SET n = %s", [(1,)])
            assert pool.query(read, read_only=True) == [(1,)]
            with pool.connection() as conn, conn.cursor().copy(
                "COPY counter (n) FROM STDIN"
            ) as copy:
                copy.write_row((2,))
            assert pool.query("SELECT max(n) FROM counter", read_only=True) == [(2,)]
            with pool.connection() as conn, conn.pipeline():
                conn.execute("UPDATE counter SET n = 3")
            assert pool.query("SELECT min(n) FROM counter", read_only=True) == [(3,)]
            with pool.transaction() as conn:
                conn.execute("UPDATE counter SET n = 4")
            assert pool.query("SELECT min(n) FROM counter", read_only=True) == [(4,)]
        finally:
            _pause(pg_replica, database, False)


def test_a_busy_replica_sends_reads_to_the_primary_and_intents_are_checked(
    database: TestDatabase, pg_primary: Cluster, pg_replica: Cluster
) -> None:
    replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=1,
                     read_your_writes=False, **FAST) as pool:
        with pytest.raises(PoolConfigError, match=r"^unknown intent 'reed': 'write' or 'read'$"):
            pool.connection("reed")  # type: ignore[arg-type]
        with pool.connection("read") as held:
            assert held.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            started = time.monotonic()
            ports: list[int] = []
            thread = threading.Thread(target=lambda: ports.append(_port(pool)))
            thread.start()
            thread.join()
            assert ports == [pg_primary.port]  # not PoolExhausted after the acquire timeout
            assert time.monotonic() - started < 1.0
        assert _port(pool) == pg_replica.port


def test_transaction_block_commits_and_rolls_back(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=1, max_size=1, **FAST) as pool:
        pool.query("CREATE TABLE t (v int)")
        with pool.transaction(isolation="serializable") as conn:
            conn.execute("INSERT INTO t VALUES (1)")
            assert conn.execute("SHOW transaction_isolation").fetchone() == ("serializable",)
        with pytest.raises(RuntimeError), pool.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("undo")
        assert pool.query("SELECT array_agg(v) FROM t") == [([1],)]
        assert pool.query("SHOW transaction_isolation") == [("read committed",)]
