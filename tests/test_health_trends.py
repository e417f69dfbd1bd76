"""Trends (pure: a line through the values, when it crosses the threshold) and the history that
feeds them, kept on disk so trends survive a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Project

from dbops.config.load import load_plan
from dbops.health.monitor import HealthMonitor
from dbops.health.probe import ReplicaSnapshot, Stream
from dbops.health.replication import LsnTimeline, PrimaryView, evaluate_replica
from dbops.health.result import CheckResult, HealthReport
from dbops.health.timeline import HealthHistory
from dbops.health.trends import forecast, trends

DAY, MINUTE = 86400.0, 60.0
NOW = 1_800_000_000.0


def line(start: float, end: float, span: float, points: int = 10) -> list[tuple[float, float]]:
    step = span / (points - 1)
    return [(NOW - span + n * step, start + (end - start) * n / (points - 1))
            for n in range(points)]


def test_transaction_id_age_forecast_in_days() -> None:
    trend = forecast("xid_wraparound", line(0.30, 0.35, 5 * DAY), 0.5, NOW)
    assert trend is not None
    assert trend.message == "transaction-ID age reaches 50% in ~15 days"
    assert abs(trend.eta - 15 * DAY) < 60


def test_connections_forecast_in_minutes() -> None:
    trend = forecast("connection_utilization", line(0.40, 0.60, 20 * MINUTE), 0.8, NOW)
    assert trend is not None and trend.message == "connections reach 80% in ~20 min"


def test_falling_cache_hit_ratio_and_a_replica_falling_behind() -> None:
    cache = forecast("cache_hit_ratio", line(0.99, 0.95, 40 * MINUTE), 0.9, NOW)
    assert cache is not None and cache.message == "the cache hit ratio falls to 90% in ~50 min"
    lag = forecast("replication_lag.r1", line(1.0, 4.0, 30 * MINUTE), 10.0, NOW)
    assert lag is not None and lag.message == "r1's replication lag reaches 10s in ~60 min"


def test_no_forecast_without_a_convincing_trend_towards_the_threshold() -> None:
    assert forecast("connection_utilization", line(0.6, 0.4, 600), 0.8, NOW) is None  # falling
    assert forecast("connection_utilization", line(0.9, 0.95, 600), 0.8, NOW) is None  # past it
    assert forecast("connection_utilization", line(0.4, 0.6, 600, points=4), 0.8, NOW) is None
    noisy = [(NOW - 600 + 60 * n, 0.5 + (0.1 if n % 2 else -0.1) + n * 0.001) for n in range(10)]
    assert forecast("connection_utilization", noisy, 0.8, NOW) is None
    assert forecast("xid_wraparound", line(0.1000, 0.1001, DAY), 0.5, NOW) is None  # > a year


def report_at(at: float, value: float) -> HealthReport:
    result = CheckResult("connection_utilization", value, 0.8, "ok", "")
    return HealthReport("test", datetime.fromtimestamp(at, UTC), 0.01, 2, (result,))


def test_trends_come_from_the_reports_of_the_window_only() -> None:
    old = [report_at(NOW - 2 * 3600 + n, 0.9) for n in range(5)]  # outside the hour: ignored
    recent = [report_at(at, v) for at, v in line(0.4, 0.6, 20 * MINUTE)]
    found = trends(old + recent, NOW)
    assert [t.message for t in found] == ["connections reach 80% in ~20 min"]


def test_history_survives_a_restart_on_disk(project: Project) -> None:
    plan = load_plan("test", root=project.root, environ={})
    with HealthMonitor(plan, alerts=False, recover=False) as first:
        for _ in range(3):
            first.force_health_check()
    path = project.root / ".dbops" / "health" / "test.jsonl"
    assert len(path.read_text().splitlines()) == 3
    with HealthMonitor(plan, alerts=False, recover=False) as second:
        restored = second.get_health_history()
        assert len(restored) == 3
        assert restored[0].result("connectivity") is not None
        assert {r.status for r in restored} == {"ok"}
        fresh = second.force_health_check()
        summary = second.get_health_report()
    deadlocks = fresh.result("deadlocks")
    assert deadlocks is not None and deadlocks.message == "no deadlocks since the last check"
    assert len(path.read_text().splitlines()) == 4
    assert summary.current is fresh and summary.cycles == 1
    connectivity = next(c for c in summary.checks if c.name == "connectivity")
    assert connectivity.ok_share == 1.0 and connectivity.since == restored[0].checked_at
    assert json.loads(json.dumps(summary.to_dict()))["status"] == "ok"


def test_history_file_is_compacted_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HealthHistory("test", path, keep_on_disk=10)
    for n in range(13):
        history.add(report_at(NOW + n, n / 100))
    assert len(path.read_text().splitlines()) == 10
    with path.open("a") as handle:
        handle.write('{"at": "2026-01-01T00:0')  # a crash mid-write
    reloaded = HealthHistory("test", path)
    values = [r.results[0].value for r in reloaded.reports()]
    assert values == [n / 100 for n in range(3, 13)]


def replica(replay_lsn: int, *, replay_age: float | None, status: str | None = "streaming",
            silent: float = 0.1) -> ReplicaSnapshot:
    return ReplicaSnapshot(in_recovery=True, receive_lsn=replay_lsn, replay_lsn=replay_lsn,
                           replay_age=replay_age, paused=False, receiver_status=status,
                           receiver_silent=silent, receiver_timeout=60.0, application="")


def test_replica_time_lag_rules() -> None:
    timeline = LsnTimeline()
    caught_up = evaluate_replica("r1", "h", replica(1000, replay_age=3600.0), None,
                                 PrimaryView(1000, (), 1), 10.0, timeline, 100.0)
    assert (caught_up.value, caught_up.status) == (0.0, "ok")  # idle for an hour is not lag

    stream = Stream("walreceiver", "127.0.0.1", "streaming", 1000, 4.0)
    measured = evaluate_replica("r1", "h", replica(1000, replay_age=3600.0), None,
                                PrimaryView(5000, (stream,), 1), 10.0, timeline, 100.0)
    assert measured.value == 4.0 and measured.message.startswith("r1 is 4000 bytes and 4.0s")

    timeline.add(80.0, 3000)
    timeline.add(100.0, 5000)
    seen = evaluate_replica("r1", "h", replica(2000, replay_age=None), None,
                            PrimaryView(5000, (), 2), 10.0, timeline, 100.0)
    assert seen.value == 20.0 and seen.status == "critical"  # behind what it had at t=80

    bound = evaluate_replica("r1", "h", replica(9000, replay_age=3.0), None,
                             PrimaryView(9500, (), 2), 10.0, LsnTimeline(), 100.0)
    assert bound.message == "r1 is 500 bytes and at most 3.0s behind (threshold 10s)"

    silent = evaluate_replica("r1", "h", replica(1000, replay_age=1.0, silent=75.0), None,
                              PrimaryView(1000, (), 1), 10.0, LsnTimeline(), 100.0)
    assert silent.status == "critical"
    assert silent.message.startswith("r1's WAL stream is broken: no message from the primary "
                                     "for 75.0s (wal_receiver_timeout 60.0s)")


def test_history_keeps_what_a_report_needs_for_a_baseline(tmp_path: Path) -> None:
    from dbops.health.probe import Counters, ServerIdentity

    path = tmp_path / "h.jsonl"
    report = HealthReport("test", datetime.now(UTC) - timedelta(seconds=5), 0.002, 2, (),
                          identity=ServerIdentity("42", 3, False),
                          counters=Counters(10, 2, 1, 500, 5))
    HealthHistory("test", path).add(report)
    latest = HealthHistory("test", path).latest()
    assert latest is not None
    assert (latest.identity, latest.counters) == (report.identity, report.counters)
