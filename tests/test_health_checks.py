"""Health checks against the session's PostgreSQL: each fault shows up with the right status and
explanation, a cycle is two queries on one connection, and the apply gates keep their messages."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from harness import FakePool, Project, TestDatabase, idle_for, wait_until, waiting_for_lock
from psycopg import sql

from dbops.cli import exits
from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.health.checks import Checker, check_once, gate_checks
from dbops.health.probe import read_counters, read_primary
from dbops.health.result import CheckResult, HealthReport
from dbops.local import Cluster
from dbops.locks import LockHolder

PRIMARY_CHECKS = [
    "connectivity", "writable", "connection_utilization", "idle_in_transaction",
    "long_transaction", "long_query", "blocked_sessions", "deadlocks", "error_rate",
    "xid_wraparound", "cache_hit_ratio", "invalid_indexes", "pending_restart",
]


def plan_of(project: Project, extra: str = "", database: str = "") -> Plan:
    project.write_plan(extra, database=database)
    return load_plan("test", root=project.root, environ={})


def result(report: HealthReport, name: str) -> CheckResult:
    found = report.result(name)
    assert found is not None, [r.name for r in report.results]
    return found


def session(db: TestDatabase, application: str, *, user: str = "postgres",
            autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=db.host, port=db.port, dbname=db.name, user=user,
                           application_name=application, autocommit=autocommit)


def pid(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    return conn.info.backend_pid


@pytest.fixture
def make_role(pg_primary: Cluster) -> Iterator[Callable[..., str]]:
    """Login roles for one test, dropped (sessions and all) afterwards."""
    made: list[str] = []
    admin = TestDatabase(pg_primary.host, pg_primary.port, "postgres")

    def make(suffix: str, *, limit: int = -1, replication: bool = False) -> str:
        name = f"app_h{uuid.uuid4().hex[:6]}_{suffix}"
        with admin.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT {} {}").format(
                sql.Identifier(name), sql.Literal(limit),
                sql.SQL("REPLICATION" if replication else "")))
        made.append(name)
        return name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE usename = %s", (name,))
            wait_until(lambda name=name: conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (name,)
            ).fetchone() == (0,))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_a_healthy_database_is_ok_in_two_queries_on_one_connection(project: Project) -> None:
    plan = plan_of(project)
    checker = Checker(plan)
    try:
        first, second = checker.run(), checker.run()
        with project.database.connect() as conn:
            health_sessions = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbops/health'"
            ).fetchone()
    finally:
        checker.close()
    assert health_sessions == (1,)
    assert (first.queries, second.queries) == (2, 2)
    assert [r.name for r in first.results] == PRIMARY_CHECKS
    assert first.status == "ok" and exits.health(first) == 0, [r.message for r in first.results]
    assert result(first, "connectivity").message.startswith("connected in ")
    assert result(second, "connectivity").message.startswith("answered in ")
    assert result(second, "deadlocks").message == "no deadlocks since the last check"
    assert result(first, "writable").message == "accepts writes (timeline 1)"


def test_idle_in_transaction_session_is_named_with_its_age(project: Project) -> None:
    plan = plan_of(project, "health:\n  thresholds: { idle_in_transaction: 300ms, "
                            "long_transaction: 10s }\n")
    with session(project.database, "report-job") as idler:
        idler.execute("SELECT 1")  # opens the transaction and leaves it idle
        wait_until(lambda: idle_for(project.database, pid(idler)) > 0.3,
                   what="the session to be idle in a transaction past 300ms")
        report = check_once(plan)
        idle = result(report, "idle_in_transaction")
        assert idle.status == "critical"
        assert idle.message.startswith(
            f"1 session(s) idle in a transaction; oldest: pid {pid(idler)} (report-job, postgres)"
            " for ")
        assert idle.message.endswith("(threshold 300ms)")
        assert result(report, "long_transaction").status == "ok"
        assert result(report, "long_transaction").message.startswith(
            f"oldest transaction: pid {pid(idler)} (report-job) open for ")
        assert exits.health(report) == 3


def test_the_probe_names_sessions_as_lock_holders_with_the_servers_times(project: Project) -> None:
    """The health probe and the runner/apply locks share one model of a session (LockHolder):
    `since` is pg_stat_activity's own time (the transaction's start for the oldest transaction
    and a lock holder, the lock wait's start for a waiter), `age` the server's count of it."""
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE jobs (id int)")
    head = session(project.database, "holder")
    head.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
    head_pid = pid(head)

    def wait_on_jobs() -> None:
        with session(project.database, "waiter", autocommit=True) as conn:
            conn.execute("SELECT 1 FROM jobs")

    waiter = threading.Thread(target=wait_on_jobs)
    try:
        waiter.start()
        wait_until(functools.partial(waiting_for_lock, project.database, "waiter"),
                   what="the waiter to wait for its lock")
        with project.database.connect() as conn:
            snap = read_primary(conn, roles=())
            started = conn.execute("SELECT xact_start, host(client_addr) FROM pg_stat_activity"
                                   " WHERE pid = %s", (head_pid,)).fetchone()
    finally:
        head.rollback()
        head.close()
        waiter.join(10)
    assert started is not None
    oldest = snap.oldest_transaction
    assert isinstance(oldest, LockHolder)
    assert (oldest.pid, oldest.application_name, oldest.user) == (head_pid, "holder", "postgres")
    assert oldest.since == started[0]
    assert oldest.age >= 0
    assert oldest.client == started[1]
    client = f" from {started[1]}" if started[1] else ""
    assert str(oldest).startswith(f"pid {head_pid} (holder, user postgres{client}) since ")
    [blocked] = snap.blocked
    assert blocked.session.application_name == "waiter"
    assert blocked.session.state == "active"
    assert blocked.session.since >= started[0]
    assert [(b.pid, b.since, b.state) for b in blocked.blockers] == [
        (head_pid, started[0], "idle in transaction")]


def test_blocked_lock_chain_names_the_blocker_and_the_longest_query(project: Project) -> None:
    plan = plan_of(project, "health:\n  thresholds: { slow_query: 300ms }\n")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE jobs (id int)")
    head = session(project.database, "migrator")
    head.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
    head_pid = pid(head)
    waiters: list[threading.Thread] = []
    pids: list[int] = []

    def wait_on_jobs(application: str, statement: str) -> None:
        with session(project.database, application, autocommit=True) as conn:
            pids.append(pid(conn))
            conn.execute(statement)

    try:
        for app, statement in (("writer", "ALTER TABLE jobs ADD COLUMN note text"),
                               ("reader", "SELECT count(*) FROM jobs")):
            waiters.append(threading.Thread(target=wait_on_jobs, args=(app, statement)))
            waiters[-1].start()
            # the writer queues first, the reader behind it
            wait_until(functools.partial(waiting_for_lock, project.database, app),
                       what=f"{app} to wait for its lock")
        wait_until(lambda: all(idle_for(project.database, p, state="active") > 0.3
                               for p in pids), what="both to have waited past 300ms")
        report = check_once(plan)
    finally:
        head.rollback()
        head.close()
        for thread in waiters:
            thread.join(10)
    blocked = result(report, "blocked_sessions")
    assert blocked.status == "critical", blocked.message
    assert blocked.message.startswith(
        f"2 session(s) waiting on locks; longest: pid {pids[0]} (writer) waiting ")
    assert f" on pid {head_pid} (migrator), idle in transaction" in blocked.message
    assert blocked.details["chain_heads"] == str(head_pid)
    longest = result(report, "long_query")
    assert longest.status == "critical"
    assert longest.message.startswith(f"longest query: pid {pids[0]} (writer, postgres) running for ")


def test_invalid_index_warns(project: Project) -> None:
    plan = plan_of(project)
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id)")
    report = check_once(plan)
    invalid = result(report, "invalid_indexes")
    assert (invalid.status, invalid.value) == ("warning", 1)
    assert invalid.message == ("1 INVALID index(es), left by a failed concurrent build: t_id_key "
                               "(drop and rebuild them)")
    assert report.status == "warning" and exits.health(report) == 2


def test_setting_pending_restart_warns(scratch_dir: Path, tmp_path: Path) -> None:
    # A server of its own: once written, a restart-only setting stays pending until a restart.
    cluster = Cluster(scratch_dir / "primary", settings={"fsync": "off"})
    cluster.up()
    admin = TestDatabase(cluster.host, cluster.port, "postgres")
    with admin.connect() as conn:
        conn.execute("ALTER SYSTEM SET max_prepared_transactions = 7")
        conn.execute("SELECT pg_reload_conf()")
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "own.yaml").write_text(
        f"apiVersion: dbops/v1\nenvironment: own\ndatabase:\n  host: 127.0.0.1\n"
        f"  port: {cluster.port}\n  name: postgres\n  user: postgres\n  sslmode: disable\n"
        "pool: { instances: 1, min_size: 1, max_size: 4 }\n")
    plan = load_plan("own", root=tmp_path, environ={})
    wait_until(lambda: result(check_once(plan), "pending_restart").status == "warning")
    pending = result(check_once(plan), "pending_restart")
    assert pending.message == ("1 setting(s) changed but waiting for a restart: "
                               "max_prepared_transactions")


def test_role_connections_against_the_role_limit(
    project: Project, make_role: Callable[..., str]
) -> None:
    role = make_role("limited", limit=4)
    plan = plan_of(project, f"roles:\n  {role}: {{ connection_limit: 4 }}\n")
    conns = [session(project.database, "app", user=role, autocommit=True) for _ in range(3)]
    try:
        report = check_once(plan)
    finally:
        for conn in conns:
            conn.close()
    use = result(report, f"role_connections.{role}")
    assert use.status == "warning"
    assert use.message == f"{role} has 3 of its 4 connections in use (75%, threshold 80%)"


def test_error_rate_and_deadlocks_are_judged_since_the_last_check(project: Project) -> None:
    plan = plan_of(project)
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE a (id int); INSERT INTO a VALUES (1), (2)")
    checker = Checker(plan)
    try:
        checker.run()
        with session(project.database, "app") as conn:
            for n in range(30):
                conn.execute("SELECT 1")
                conn.rollback() if n % 5 == 0 else conn.commit()
        first, second = session(project.database, "one"), session(project.database, "two")
        for conn in (first, second):
            conn.execute("SET deadlock_timeout = '50ms'")
        first.execute("UPDATE a SET id = id WHERE id = 1")
        second.execute("UPDATE a SET id = id WHERE id = 2")
        failures: list[BaseException] = []

        def cross(conn: psycopg.Connection[tuple[object, ...]], row: int) -> None:
            try:
                conn.execute("UPDATE a SET id = id WHERE id = %s", (row,))
            except psycopg.errors.DeadlockDetected as exc:
                failures.append(exc)
            conn.rollback()

        threads = [threading.Thread(target=cross, args=(first, 2)),
                   threading.Thread(target=cross, args=(second, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        first.close()
        second.close()
        assert len(failures) == 1
        time.sleep(1.1)  # backends flush their statistics at most once a second
        report = checker.run()
    finally:
        checker.close()
    errors = result(report, "error_rate")
    assert errors.status == "critical", errors.message
    assert " transactions rolled back since the last check (" in errors.message
    deadlocks = result(report, "deadlocks")
    assert (deadlocks.status, deadlocks.message) == (
        "warning", "1 deadlock(s) since the last check")


def test_gate_checks_keep_their_checks_and_messages(project: Project, pg_replica: Cluster) -> None:
    plan = plan_of(project, database=(
        f"  replicas:\n    - {{ name: replica1, host: 127.0.0.1, port: {pg_replica.port} }}\n"))
    wait_until(lambda: _exists_on(pg_replica, project.database.name))
    with project.database.connect() as conn:
        since = read_counters(conn)
    plain = gate_checks(plan)
    assert [r.name for r in plain] == ["connectivity", "connection_utilization",
                                       "long_transaction", "replication_lag.replica1"]
    assert plain[-1].message.startswith("replica1 is 0 bytes and 0s behind (threshold 10s)")
    assert plain[-1].status == "ok"
    with_since = gate_checks(plan, since=since)
    assert "error_rate" in [r.name for r in with_since]
    assert "since the apply began" in next(r for r in with_since if r.name == "error_rate").message


def _exists_on(cluster: Cluster, name: str) -> bool:
    with psycopg.connect(host=cluster.host, port=cluster.port, user="postgres",
                         dbname="postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def test_an_unreachable_database_is_critical_with_a_masked_reason(project: Project) -> None:
    sentinel = "Sentinel-Pw-9c2f"
    project.write_plan(database="")
    text = project.plan.read_text().replace(f"port: {project.database.port}", "port: 1")
    project.plan.write_text(text)
    plan = load_plan("test", root=project.root, environ={"DB_PASSWORD": sentinel})
    report = check_once(plan)
    connectivity = result(report, "connectivity")
    assert connectivity.status == "critical" and exits.health(report) == 3
    assert connectivity.message.startswith("cannot connect to postgres@")
    assert sentinel not in repr(report.to_dict())


def test_pool_checks_read_an_attached_pool(project: Project) -> None:
    plan = plan_of(project)
    pool = FakePool({"size": 4, "max_size": 4, "in_use": 4, "waiting": 3, "requests": 100,
                     "errors": 1, "slow_queries": 2, "leaks": 0})
    checker = Checker(plan, pool=pool)
    try:
        first = checker.run()
        pool.stats.update(requests=200, errors=21, slow_queries=2, in_use=2, waiting=0, leaks=1)
        second = checker.run()
    finally:
        checker.close()
    assert result(first, "pool_utilization").message == (
        "the pool lends 4 of at most 4 connections (100%, threshold 80%)")
    assert result(first, "pool_utilization").status == "critical"
    waiting = result(first, "pool_waiting")
    assert (waiting.status, waiting.message) == (
        "critical", "3 request(s) wait for a connection from the pool; it is exhausted")
    assert result(first, "pool_leaks").status == "ok"
    assert result(first, "pool_slow_queries").status == "warning"
    errors = result(second, "pool_error_rate")
    assert errors.status == "critical"
    assert errors.message == ("20 of 100 pool requests failed since the last check (20.0%, "
                              "threshold 5%)")
    assert result(second, "pool_slow_queries").message == (
        "0 queries slower than 1s since the last check")
    leaks = result(second, "pool_leaks")
    assert (leaks.status, leaks.message) == (
        "warning", "1 connection(s) of the pool held longer than 30s since the last check (leaks)")
    assert result(second, "pool_waiting").status == "ok"


@dataclass(frozen=True)
class ServerStats:
    """Shaped like the PoolManager's per-server PoolStats (the fields the checks read)."""

    size: int
    in_use: int
    waiting: int
    max_size: int
    leaks: int
    acquires: int


@dataclass(frozen=True)
class Performance:
    queries: int
    errors: int
    slow_queries: int


class ManagerShapedPool:
    """Per-server statistics and query totals, as dbops.pool.PoolManager reports them."""

    def __init__(self) -> None:
        self.servers = {"primary": ServerStats(5, 5, 2, 5, 0, 900),
                        "replica1": ServerStats(3, 1, 0, 5, 0, 300)}
        self.performance = Performance(queries=1000, errors=10, slow_queries=0)

    def get_pool_stats(self) -> Mapping[str, ServerStats]:
        return self.servers

    def get_performance_metrics(self) -> Performance:
        return self.performance

    def reset(self) -> None:
        pass


def test_pool_checks_per_server_of_a_pool_manager(project: Project) -> None:
    pool = ManagerShapedPool()
    checker = Checker(plan_of(project), pool=pool)
    try:
        first = checker.run()
        pool.performance = Performance(queries=1100, errors=20, slow_queries=3)
        second = checker.run()
    finally:
        checker.close()
    assert result(first, "pool_waiting.primary").message == (
        "2 request(s) wait for a connection from the primary pool; it is exhausted")
    assert result(first, "pool_utilization.replica1").message == (
        "the replica1 pool lends 1 of at most 5 connections (20%, threshold 80%)")
    assert result(first, "pool_error_rate").message == (
        "10 of 1000 pool requests failed so far (1.0%, threshold 5%)")
    errors = result(second, "pool_error_rate")
    assert (errors.status, errors.message) == (
        "critical", "10 of 100 pool requests failed since the last check (10.0%, threshold 5%)")
    assert result(second, "pool_slow_queries").message == (
        "3 queries slower than 1s since the last check")


def test_pool_checks_understand_psycopg_pool_statistics(project: Project) -> None:
    from psycopg_pool import ConnectionPool

    class Wrapped:
        def __init__(self, pool: ConnectionPool) -> None:
            self.pool = pool

        def get_pool_stats(self) -> Mapping[str, float]:
            return self.pool.get_stats()

        def reset(self) -> None:
            self.pool.check()

    plan = plan_of(project)
    with ConnectionPool(project.database.conninfo, min_size=2, max_size=5, open=True) as pool:
        pool.wait()
        with pool.connection():
            report = Checker(plan, pool=Wrapped(pool)).run()
    use = result(report, "pool_utilization")
    assert use.message == "the pool lends 1 of at most 5 connections (20%, threshold 80%)"
    assert result(report, "pool_waiting").status == "ok"


def test_backup_freshness_against_the_plans_schedule(project: Project) -> None:
    from dbops.backup import manager as backup

    assert check_once(plan_of(project)).result("backup_freshness") is None  # no policy
    plan = plan_of(project, "backup:\n  directory: backups\n  schedule: \"0 3 * * *\"\n")
    expected = backup.BackupManager(plan).overdue()
    fresh = result(check_once(plan), "backup_freshness")
    assert fresh.status == ("warning" if expected else "ok")
    assert fresh.message == (expected or "the newest backup is on schedule ('0 3 * * *')")
