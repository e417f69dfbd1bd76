"""dbops.pool: the PoolManager from the plan, its API, sizing, metrics and the TaskMaster
example, against real PostgreSQL (routing, leaks, faults and asyncio have their own files)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace

import psycopg
import pytest
from harness import Project, TestDatabase
from pool_support import FAST, db_endpoint, endpoint, install_taskmaster, wait_until
from prometheus_client import CollectorRegistry, generate_latest

from dbops.config.load import load_plan
from dbops.local import Cluster, free_port
from dbops.pool import (
    PoolClosed,
    PoolConfigError,
    PoolExhausted,
    PoolManager,
    PoolUnavailable,
    connection_budget,
    settings_from_plan,
)


def _on_replica(replica: Cluster, dbname: str) -> bool:
    try:
        psycopg.connect(host=replica.host, port=replica.port, user="postgres",
                        dbname=dbname).close()
    except psycopg.OperationalError:
        return False
    return True


def _sessions(db: TestDatabase, application_name: str) -> int:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
            (application_name, db.name),
        ).fetchone()
    return int(row[0]) if row else 0


def test_settings_from_plan_apply_profile_overrides_and_the_role_budget(project: Project) -> None:
    project.write_plan(
        "roles:\n  app_pool:\n    connection_limit: 23\n",
        database="",
    )
    text = project.plan.read_text().replace(
        "pool: { instances: 1, min_size: 1, max_size: 4 }",
        "pool: { profile: analytics, role: app_pool, instances: 3, min_size: 2, max_size: 6,"
        " reserve: 5, dynamic_sizing: { enabled: true, target_utilization: 0.5 },"
        " read_routing: { strategy: least_lag, max_lag: 2s } }",
    )
    project.plan.write_text(text)
    plan = load_plan("test")
    budget, rule = connection_budget(plan)
    assert budget == 6  # (23 - 5) // 3
    assert rule == (
        "role app_pool: (connection_limit 23 - reserve 5) // 3 instances = 6 per server"
    )
    s = settings_from_plan(plan)
    assert (s.min_size, s.max_size, s.budget) == (2, 6, 6)
    assert s.acquire_timeout == 60.0  # from the analytics profile
    assert s.leak_detection_threshold == 1800.0
    assert (s.dynamic_sizing, s.target_utilization) == (True, 0.5)
    assert (s.strategy, s.max_lag, s.read_your_writes) == ("least_lag", 2.0, True)
    # Explicit values beyond the budget are refused, not clipped.
    with pytest.raises(PoolConfigError, match=r"pool max_size 7 exceeds the connection budget of 6"
                       r" per server \(role app_pool: \(connection_limit 23 - reserve 5\)"):
        s.with_changes(max_size=7)


def test_without_a_role_limit_max_size_alone_bounds_the_pool(project: Project) -> None:
    plan = load_plan("test", environ={"DB_POOL_MAX": "7", "DB_SLOW_QUERY_THRESHOLD": "250"})
    assert connection_budget(plan) == (None, "no pool.role in the plan: max_size bounds each pool")
    s = settings_from_plan(plan)
    assert (s.max_size, s.slow_query_threshold) == (7, 0.25)


def test_sizes_outside_their_bounds_are_refused(database: TestDatabase) -> None:
    with pytest.raises(PoolConfigError, match="min_size must be within"):
        PoolManager(db_endpoint(database), min_size=5, max_size=2)


def test_from_plan_opens_tagged_sessions_and_runs_queries(project: Project) -> None:
    with PoolManager.from_plan("test", maintenance_interval=0.05) as pool:
        app = "dbops/" + pool.settings.application_name
        assert app == f"dbops/pool/test/{os.getpid()}"
        assert _sessions(project.database, app) == 1  # min_size of the test plan
        assert pool.query("SELECT current_database()") == [(project.database.name,)]
        assert pool.query("CREATE TABLE t (id int PRIMARY KEY, v text)") == []
        assert pool.query("INSERT INTO t VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b")) == []
        rows = pool.query("SELECT id, v FROM t ORDER BY id", row_factory=psycopg.rows.dict_row)
        assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
        with pool.connection() as conn:
            assert conn.execute("SELECT current_setting('application_name')").fetchone() == (app,)
    assert _sessions(project.database, app) == 0
    with pytest.raises(PoolClosed):
        pool.query("SELECT 1")


def test_seed_example_status_and_log_in_one_transaction(project: Project) -> None:
    install_taskmaster(project)
    with PoolManager.from_plan("test", **FAST) as pool:
        pool.query("INSERT INTO pipelines (name, repository) VALUES ('p', 'r')")
        task_id = pool.query(
            "INSERT INTO tasks (pipeline_id, name) SELECT id, 'build' FROM pipelines RETURNING id"
        )[0][0]

        def start(conn: psycopg.Connection[object]) -> str:
            conn.execute("UPDATE tasks SET status = %s WHERE id = %s", ("running", task_id))
            conn.execute(
                "INSERT INTO task_logs (task_id, level, message) VALUES (%s, %s, %s)",
                (task_id, "info", "Task started"),
            )
            return "started"

        assert pool.transaction(start) == "started"
        assert pool.query("SELECT status FROM tasks") == [("running",)]
        assert pool.query("SELECT level, message FROM task_logs") == [("info", "Task started")]

        def fail_half_way(conn: psycopg.Connection[object]) -> None:
            conn.execute("UPDATE tasks SET status = 'failed' WHERE id = %s", (task_id,))
            conn.execute("INSERT INTO task_logs (task_id, level, message) VALUES (%s, 'oops', 'x')",
                         (task_id,))  # violates task_logs_level_check

        with pytest.raises(psycopg.errors.CheckViolation):
            pool.transaction(fail_half_way)
        assert pool.query("SELECT status FROM tasks") == [("running",)]  # rolled back together
        assert pool.get_pool_stats()["primary"].in_use == 0


def test_taskmaster_repositories_over_the_pool(project: Project) -> None:
    from examples.taskmaster import PipelineRepository, TaskContextRepository, TaskRepository

    install_taskmaster(project)
    with PoolManager.from_plan("test", **FAST) as pool:
        tasks, contexts = TaskRepository(pool), TaskContextRepository(pool)
        pipeline = PipelineRepository(pool).create("api", "git@example.com:api")
        low = tasks.create(pipeline, "lint", priority=1)
        high = tasks.create(pipeline, "build", priority=9)
        contexts.set(high.id, "image", {"tag": "1.2.3"})
        contexts.set(high.id, "image", {"tag": "1.2.4"})
        assert contexts.all(high.id) == {"image": {"tag": "1.2.4"}}
        assert [t.id for t in tasks.queued()] == [high.id, low.id]
        claimed = tasks.claim_next()
        assert claimed is not None and claimed.id == high.id and claimed.status == "running"
        done = tasks.update_status(high.id, "succeeded", "built")
        assert done.finished_at is not None and done.attempt == 1
        assert [(log.level, log.message) for log in tasks.logs(high.id)] == [("info", "built")]
        assert tasks.get(low.id) == low


def _race(pool: PoolManager, isolation: str, first: list[str], second: list[str]) -> list[int]:
    """Two threads, each a transaction of `first[n]` then (once both ran it) `second[n]`;
    returns how many times each body ran."""
    attempts = [0, 0]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        def body(conn: psycopg.Connection[object]) -> None:
            attempts[n] += 1
            conn.execute("SET LOCAL deadlock_timeout = '50ms'")
            conn.execute(first[n])
            if attempts[n] == 1:
                barrier.wait(timeout=5)
            conn.execute(second[n])

        try:
            pool.transaction(body, isolation=isolation, retries=3)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return attempts


def test_transaction_retries_deadlocks(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=2, max_size=2, **FAST) as pool:
        pool.query("CREATE TABLE acc (id int PRIMARY KEY, n int)")
        pool.query("INSERT INTO acc VALUES (1, 0), (2, 0)")
        one, two = (f"UPDATE acc SET n = n + 1 WHERE id = {i}" for i in (1, 2))
        attempts = _race(pool, "read committed", [one, two], [two, one])
        assert sorted(attempts) == [1, 2]  # the deadlock victim ran again, and committed
        assert pool.query("SELECT n FROM acc ORDER BY id") == [(2,), (2,)]


def test_transaction_retries_serialization_failures(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=2, max_size=2, **FAST) as pool:
        pool.query("CREATE TABLE doc (id int PRIMARY KEY, n int)")
        pool.query("INSERT INTO doc VALUES (1, 0), (2, 0)")
        read = "SELECT sum(n) FROM doc"
        writes = [f"UPDATE doc SET n = (SELECT sum(n) FROM doc) + 1 WHERE id = {i}" for i in (1, 2)]
        attempts = _race(pool, "serializable", [read, read], writes)  # write skew
        assert sorted(attempts) == [1, 2]
        assert pool.query("SELECT sum(n) FROM doc") == [(3,)]  # as if serial: 1, then 1 + 1

        def always_conflicts(conn: psycopg.Connection[object]) -> None:
            raise psycopg.errors.SerializationFailure("forced")

        calls_before = pool.get_pool_stats()["primary"].acquires
        with pytest.raises(psycopg.errors.SerializationFailure):
            pool.transaction(always_conflicts, retries=2)
        assert pool.get_pool_stats()["primary"].acquires - calls_before == 3


def test_connection_returned_inside_a_transaction_is_rolled_back(
    database: TestDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    with PoolManager(db_endpoint(database), min_size=1, max_size=1, **FAST) as pool:
        pool.query("CREATE TABLE t (v int)")
        with pool.connection() as conn:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t VALUES (1)")
        assert "returned inside a transaction: rolled back" in caplog.text
        assert pool.query("SELECT count(*) FROM t") == [(0,)]


def test_dynamic_sizing_grows_under_pressure_and_shrinks_when_idle(database: TestDatabase) -> None:
    settings = {**FAST, "dynamic_sizing": True, "target_utilization": 0.5}
    with PoolManager(db_endpoint(database), min_size=1, max_size=5, **settings) as pool:
        assert pool.get_pool_stats()["primary"].target_size == 1
        release = threading.Event()
        holding = threading.Barrier(5)

        def hold() -> None:
            with pool.connection():
                holding.wait(timeout=5)
                release.wait(timeout=5)

        threads = [threading.Thread(target=hold) for _ in range(5)]
        for t in threads:
            t.start()
        wait_until(lambda: pool.get_pool_stats()["primary"].in_use == 5, what="5 in use")
        assert pool.get_pool_stats()["primary"].size == 5
        release.set()
        for t in threads:
            t.join()
        stats = wait_until(
            lambda: (s := pool.get_pool_stats()["primary"]).size == 1 and s,
            what="the pool to shrink back to min_size",
        )
        assert stats.target_size == 1 and stats.idle == 1


def test_pool_never_grows_past_the_role_budget(database: TestDatabase) -> None:
    settings = {**FAST, "dynamic_sizing": True, "budget": 2}
    with pytest.raises(PoolConfigError, match=r"^pool max_size 3 exceeds the connection budget "
                       r"of 2 per server \(set by the caller\)$"):
        PoolManager(db_endpoint(database), min_size=1, max_size=3, **settings)
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, **settings) as pool:
        assert pool.settings.max_size == 2
        with pool.connection(), pool.connection():
            with pytest.raises(PoolExhausted) as caught, pool.connection(timeout=0.1):
                pass
            assert caught.value.size == 2 and caught.value.max_size == 2
        assert pool.get_pool_stats()["primary"].opened == 2


def test_metrics_slow_queries_and_redacted_logs(
    database: TestDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dbops.pool")
    settings = {**FAST, "slow_query_threshold": 0.05, "log_queries": True}
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, **settings) as pool:
        pool.query("SELECT %s::text", ("hunter2-secret",))
        pool.query("SELECT pg_sleep(0.08), %s::text", ("another-secret",))
        with pytest.raises(psycopg.errors.DivisionByZero):
            pool.query("SELECT 1 / 0")
        m = pool.get_performance_metrics()
        assert (m.queries, m.errors, m.slow_queries) == (3, 1, 1)
        assert m.error_rate == pytest.approx(1 / 3)
        assert m.query_time_p99 is not None and m.query_time_p99 >= 0.05
        assert m.acquire_wait_p50 is not None and m.acquire_timeouts == 0
        assert "hunter2-secret" not in caplog.text and "another-secret" not in caplog.text
        assert "query on primary took" in caplog.text
        assert "SELECT $1::text" not in caplog.text and "[1 parameter redacted]" in caplog.text
        slow = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(slow) == 1 and "slow query on primary" in slow[0].getMessage()
        assert "SELECT pg_sleep(0.08), %s::text" in slow[0].getMessage()

        registry = CollectorRegistry()
        pool.register_metrics(registry)
        text = generate_latest(registry).decode()
        assert 'dbops_pool_queries_total{node="primary",pool="app"} 3.0' in text
        assert 'dbops_pool_query_errors_total{node="primary",pool="app"} 1.0' in text
        assert 'dbops_pool_slow_queries_total{node="primary",pool="app"} 1.0' in text
        assert "dbops_pool_acquire_wait_seconds_bucket" in text
        assert 'dbops_pool_connections{node="primary",pool="app",state="idle"}' in text
    assert generate_latest(registry) == b""  # shutdown unregistered the collector


def test_health_and_stats(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=2, max_size=3, **FAST) as pool:
        status = pool.get_health_status()
        assert status.status == "healthy" and status.message == "all servers up"
        assert status.level == "ok" and status.to_dict()["status"] == "healthy"
        assert status.nodes[0].latency is not None
        with pool.connection():
            stats = pool.get_pool_stats()["primary"]
            assert (stats.size, stats.in_use, stats.idle, stats.max_size) == (2, 1, 1, 3)
            assert stats.utilization == pytest.approx(1 / 3)
        assert pool.get_performance_metrics().utilization == 0.0


def test_throughput_is_measured(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, **FAST) as pool:
        for _ in range(50):
            pool.query("SELECT 1")
        time.sleep(0.12)  # two maintenance rounds sample the counters
        m = pool.get_performance_metrics()
        assert m.queries == 50 and m.throughput > 0


def test_under_contention_callers_are_served_in_turn(database: TestDatabase) -> None:
    """20 threads over 3 connections: every checkout is served (first come, first served, so
    nobody starves), and afterwards every connection is back and idle."""
    waits: list[float] = []
    errors: list[BaseException] = []
    with PoolManager(db_endpoint(database), min_size=1, max_size=3, **FAST) as pool:

        def worker() -> None:
            try:
                for _ in range(15):
                    checkout = pool.connection()
                    began = time.perf_counter()
                    conn = checkout.__enter__()
                    waits.append(time.perf_counter() - began)
                    try:
                        conn.execute("SELECT pg_sleep(0.002)")
                    finally:
                        checkout.__exit__(None, None, None)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(waits) == 300
        # In turn: a caller waits for about one round of the others (20 callers over
        # 3 connections, 2 ms each), never for many rounds while others jump the queue.
        assert max(waits) < 0.5
        stats = pool.get_pool_stats()["primary"]
        assert (stats.size, stats.idle, stats.in_use, stats.waiting) == (3, 3, 0, 0)
        assert stats.acquires == 300


def test_every_exported_counter_matches_what_the_test_did(
    database: TestDatabase, pg_replica: Cluster
) -> None:
    """The replica monitor runs many rounds meanwhile; none of them shows in the counters."""
    replica = endpoint(pg_replica, database.name, "r1")
    wait_until(lambda: _on_replica(pg_replica, database.name), what="the database on the replica")
    settings = {**FAST, "monitor_interval": 0.02}
    registry = CollectorRegistry()
    with PoolManager(db_endpoint(database), [replica], min_size=1, max_size=2,
                     **settings) as pool:
        pool.register_metrics(registry)
        for _ in range(3):
            pool.query("SELECT 1", read_only=True)  # r1: 3 checkouts, 3 statements
        pool.query("CREATE TABLE u (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        with pytest.raises(psycopg.errors.DivisionByZero):
            pool.query("SELECT 1 / 0")

        def duplicate(conn: psycopg.Connection[object]) -> None:
            conn.execute("INSERT INTO u VALUES (1)")
            conn.execute("INSERT INTO u VALUES (1)")

        with pytest.raises(psycopg.errors.UniqueViolation):  # at COMMIT
            pool.transaction(duplicate)
        held = [pool.connection(), pool.connection()]
        for checkout in held:
            checkout.__enter__()
        with pytest.raises(PoolExhausted), pool.connection(timeout=0.05):
            pass
        for checkout in held:
            checkout.__exit__(None, None, None)
        time.sleep(0.3)  # about 15 monitor rounds
        text = generate_latest(registry).decode()

    def value(name: str, node: str) -> float:
        line = f'{name}{{node="{node}",pool="app"}} '
        return float(next(x for x in text.splitlines() if x.startswith(line))[len(line):])

    # primary: CREATE, 1/0, the transaction, two held; statements: CREATE, 1/0, 2 INSERTs, COMMIT
    expected = {
        "primary": {"acquire_wait_seconds_count": 5, "acquire_timeouts_total": 1,
                    "queries_total": 5, "query_errors_total": 2, "connect_errors_total": 0,
                    "reads_routed_total": 0},
        "r1": {"acquire_wait_seconds_count": 3, "acquire_timeouts_total": 0,
               "queries_total": 3, "query_errors_total": 0, "connect_errors_total": 0,
               "reads_routed_total": 3},
    }
    seen = {node: {k: value(f"dbops_pool_{k}", node) for k in counters}
            for node, counters in expected.items()}
    assert seen == expected

    dead = PoolManager(replace(db_endpoint(database), port=free_port()), min_size=0, **FAST)
    with dead:
        for _ in range(2):
            with pytest.raises(PoolUnavailable):
                dead.query("SELECT 1")
        registry = CollectorRegistry()
        dead.register_metrics(registry)
        text = generate_latest(registry).decode()
    assert value("dbops_pool_connect_errors_total", "primary") == 2


def test_leak_reclaim_after_is_read_from_the_plan(project: Project) -> None:
    text = project.plan.read_text().replace(
        "pool: { instances: 1, min_size: 1, max_size: 4 }",
        "pool: { instances: 1, min_size: 1, max_size: 4, leak_reclaim_after: 2m }",
    )
    project.plan.write_text(text)
    assert settings_from_plan(load_plan("test")).leak_reclaim_after == 120.0
