"""Faults that need servers of their own (never the session's): a replica paused, broken or
stopped, a failover, the database going down under the monitor, max_connections nearly used up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import start_replica

from dbops.cli import exits
from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.health.checks import Checker, check_once
from dbops.health.monitor import HealthMonitor
from dbops.health.result import CheckResult, HealthReport
from dbops.health.server import readiness
from dbops.local import Cluster

FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def cluster_plan(root: Path, primary: Cluster, replicas: Mapping[str, Cluster] | None = None,
                 extra: str = "") -> Plan:
    (root / "plans").mkdir(parents=True, exist_ok=True)
    listed = "".join(f"    - {{ name: {name}, host: 127.0.0.1, port: {c.port} }}\n"
                     for name, c in (replicas or {}).items())
    (root / "plans" / "faults.yaml").write_text(
        "apiVersion: dbops/v1\nenvironment: faults\ndatabase:\n"
        f"  host: 127.0.0.1\n  port: {primary.port}\n  name: postgres\n  user: postgres\n"
        "  sslmode: disable\n  connect_timeout: 2s\n"
        + (f"  replicas:\n{listed}" if listed else "")
        + "pool: { instances: 1, min_size: 1, max_size: 4 }\n" + extra)
    return load_plan("faults", root=root, environ={})


def sql(cluster: Cluster, statement: str, *, user: str = "postgres") -> Any:
    with psycopg.connect(host=cluster.host, port=cluster.port, user=user, dbname="postgres",
                         autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else None


def result(report: HealthReport, name: str) -> CheckResult:
    found = report.result(name)
    assert found is not None, [r.name for r in report.results]
    return found


def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_replica_lag_is_zero_on_an_idle_primary_and_grows_while_replay_is_paused(
    scratch_dir: Path, tmp_path: Path
) -> None:
    primary = Cluster(scratch_dir / "primary", settings=FAST)
    primary.up()
    replica = start_replica(primary, scratch_dir / "replica")
    plan = cluster_plan(tmp_path, primary, {"r1": replica},
                        "health:\n  thresholds: { replication_lag: 1s }\n")
    checker = Checker(plan)
    try:
        sql(primary, "CREATE TABLE ticks (at timestamptz DEFAULT now())")
        wait_until(lambda: result(checker.run(), "replication_lag.r1").details.get("bytes") == 0)
        time.sleep(1.3)  # the primary idles: the last replayed transaction gets old
        naive = sql(replica, "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())")
        idle = result(checker.run(), "replication_lag.r1")
        assert naive[0][0] > 1.0  # now() - pg_last_xact_replay_timestamp() would call it lag
        # (a background WAL record may land between the two reads: a few bytes, a few ms)
        assert idle.status == "ok" and idle.value is not None and idle.value < 0.5, idle.message
        assert idle.message.startswith("r1 is ") and idle.message.endswith("(threshold 1s)")

        sql(replica, "SELECT pg_wal_replay_pause()")
        for _ in range(8):
            sql(primary, "INSERT INTO ticks DEFAULT VALUES")
            paused = result(checker.run(), "replication_lag.r1")
            time.sleep(0.2)
        assert paused.status == "critical", paused.message
        assert paused.value is not None and paused.value > 1.0
        assert isinstance(paused.details["bytes"], int) and paused.details["bytes"] > 0
        assert paused.message.startswith(f"r1 is {paused.details['bytes']} bytes and ")
        assert paused.message.endswith("behind (threshold 1s); replay is paused")

        sql(replica, "SELECT pg_wal_replay_resume()")
        wait_until(lambda: result(checker.run(), "replication_lag.r1").status == "ok")
    finally:
        checker.close()


def test_broken_stream_on_an_idle_primary_then_a_stopped_replica(
    scratch_dir: Path, tmp_path: Path
) -> None:
    primary = Cluster(scratch_dir / "primary", settings=FAST)
    primary.up()
    replica = start_replica(primary, scratch_dir / "replica")
    plan = cluster_plan(tmp_path, primary, {"r1": replica})
    assert result(check_once(plan), "replication_lag.r1").status == "ok"

    sql(replica, "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1 user=postgres'")
    sql(replica, "SELECT pg_reload_conf()")
    wait_until(lambda: sql(replica, "SELECT count(*) FROM pg_stat_wal_receiver") == [(0,)])
    report = check_once(plan)
    broken = result(report, "replication_lag.r1")
    assert broken.status == "critical"
    assert broken.message.startswith(
        "r1's WAL stream is broken: no WAL receiver is running (it cannot reach the primary); "
        "r1 is ")
    assert broken.details["streaming"] is False
    assert readiness(report) == []  # the primary itself is fine
    assert readiness(report, lag=5.0) == [f"replication_lag.r1: {broken.message}"]

    replica.down()
    stopped = result(check_once(plan), "replication_lag.r1")
    assert stopped.status == "critical"
    assert stopped.message.startswith(
        f"r1 cannot be reached: cannot connect to postgres@127.0.0.1:{replica.port}/postgres: ")


class FakePool:
    def __init__(self) -> None:
        self.resets = 0

    def get_pool_stats(self) -> Mapping[str, float]:
        return {"size": 2, "max_size": 4, "in_use": 1, "waiting": 0}

    def reset(self) -> None:
        self.resets += 1


def test_a_failover_resets_the_attached_pool(scratch_dir: Path, tmp_path: Path) -> None:
    primary = Cluster(scratch_dir / "primary", settings=FAST)
    primary.up()
    replica = start_replica(primary, scratch_dir / "replica")
    address = primary.port
    plan = cluster_plan(tmp_path, primary, extra=(
        "health:\n  recovery: { enabled: true, reset_pool_after_failover: { enabled: true } }\n"))
    pool = FakePool()
    with HealthMonitor(plan, pool=pool, persist=False, alerts=False) as monitor:
        before = monitor.force_health_check()
        assert result(before, "writable").message == "accepts writes (timeline 1)"
        system = before.identity.system_id if before.identity else "?"

        primary.down()  # the old primary dies; the replica is promoted and takes its address
        sql(replica, "SELECT pg_promote()")
        replica.down()
        for stale in replica.data_dir.glob(".s.PGSQL.*.lock"):  # copied by pg_basebackup
            stale.unlink()
        Cluster(replica.data_dir, port=address).up()

        after = monitor.force_health_check()
        again = monitor.force_health_check()
    assert result(after, "writable").message == "accepts writes (timeline 2)"
    assert after.actions == (f"recovery: reset the pool: the primary changed (system {system} "
                             f"timeline 1 -> system {system} timeline 2)",)
    assert again.actions == ()
    assert pool.resets == 1


def test_the_database_going_down_under_the_monitor(
    scratch_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    primary = Cluster(scratch_dir / "primary", settings=FAST)
    primary.up()
    plan = cluster_plan(tmp_path, primary)
    monitor = HealthMonitor(plan, persist=False, alerts=False, interval=0.1)

    def connectivity() -> str | None:
        latest = monitor.latest()
        found = latest.result("connectivity") if latest else None
        return found.status if found else None

    try:
        assert monitor.start_monitoring()
        wait_until(lambda: connectivity() == "ok")
        primary.down()
        wait_until(lambda: connectivity() == "critical")
        down = monitor.latest()
        assert down is not None and exits.health(down) == 3
        assert result(down, "connectivity").message.startswith(
            f"cannot connect to postgres@127.0.0.1:{primary.port}/postgres: ")
        cycles = monitor.cycles
        wait_until(lambda: monitor.cycles >= cycles + 3)
        assert monitor.running

        primary.up()
        wait_until(lambda: connectivity() == "ok")

        real_run = monitor._checker.run
        calls = {"n": 0}

        def fails_once(**kwargs: Any) -> HealthReport:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a bug in one cycle")
            return real_run(**kwargs)

        monitor._checker.run = fails_once  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR, logger="dbops.health.monitor"):
            wait_until(lambda: calls["n"] >= 3)
        assert monitor.running and monitor.failures == 1
        assert monitor.last_error == "RuntimeError: a bug in one cycle"
        assert "health check cycle for faults failed; monitoring goes on" in caplog.text
    finally:
        monitor.stop_monitoring()
    assert not monitor.running
    statuses = [r.result("connectivity").status for r in monitor.get_health_history()
                if r.result("connectivity") is not None]  # type: ignore[union-attr]
    first_down = statuses.index("critical")
    assert "ok" in statuses[:first_down] and "ok" in statuses[first_down:]


def test_max_connections_nearly_used_up_by_real_connections(
    scratch_dir: Path, tmp_path: Path
) -> None:
    primary = Cluster(scratch_dir / "primary", settings={**FAST, "max_connections": "20"})
    primary.up()
    sql(primary, "CREATE ROLE app_limited LOGIN CONNECTION LIMIT 10")
    plan = cluster_plan(tmp_path, primary, extra="roles:\n  app_limited: { connection_limit: 10 }\n")
    held = [psycopg.connect(host=primary.host, port=primary.port, dbname="postgres",
                            user="app_limited" if n < 9 else "postgres") for n in range(16)]
    try:
        report = check_once(plan)
    finally:
        for conn in held:
            conn.close()
    used = result(report, "connection_utilization")
    assert used.status == "critical"
    assert used.message == ("17 of 20 connections in use (85%, threshold 80%; 3 more reserved "
                            "for superusers)")
    role = result(report, "role_connections.app_limited")
    assert (role.status, role.message) == (
        "critical", "app_limited has 9 of its 10 connections in use (90%, threshold 80%)")
