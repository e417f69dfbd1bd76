"""Health checks: each reads a value, compares it with the plan's threshold and says ok, warning
(at 80 % of the threshold) or critical, in one line. The apply gates and `dbops health` use these."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from dbops.config.model import Plan
from dbops.config.units import format_duration
from dbops.connect import endpoint, open_connection

Status = Literal["ok", "warning", "critical"]
WARNING_SHARE = 0.8


@dataclass(frozen=True)
class CheckResult:
    name: str
    value: float | None
    threshold: float | None
    status: Status
    message: str


@dataclass(frozen=True)
class Counters:
    """pg_stat_database totals, to compute an error rate between two moments."""

    commits: int
    rollbacks: int


def _status(value: float, threshold: float) -> Status:
    if value > threshold:
        return "critical"
    return "warning" if value > threshold * WARNING_SHARE else "ok"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def counters(conn: psycopg.Connection[Any]) -> Counters:
    row = conn.execute("SELECT xact_commit, xact_rollback FROM pg_stat_database"
                       " WHERE datname = current_database()").fetchone()
    return Counters(int(row[0]), int(row[1])) if row else Counters(0, 0)


def gate_checks(plan: Plan, *, since: Counters | None = None,
                command: str = "gate") -> list[CheckResult]:
    """The checks an apply gate runs: connectivity and latency, connection utilisation, the
    longest transaction, replication lag read on each replica, and the error rate since `since`."""
    t = plan.health.thresholds
    results: list[CheckResult] = []
    started = time.perf_counter()
    with open_connection(endpoint(plan), command=command, autocommit=True) as conn:
        conn.execute("SELECT 1")
        latency = time.perf_counter() - started
        limit = t.response_time.total_seconds()
        results.append(CheckResult("connectivity", latency, limit, _status(latency, limit),
                                   f"connected and answered in {_seconds(latency)} "
                                   f"(threshold {format_duration(t.response_time)})"))
        results.append(_utilisation(conn, t.connection_utilization))
        results.append(_long_transaction(conn, t.long_transaction.total_seconds()))
        primary_lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        if since is not None:
            results.append(_error_rate(since, counters(conn), t.error_rate))
    for replica in plan.database.replicas:
        results.append(_replica_lag(plan, replica.name, primary_lsn[0] if primary_lsn else None,
                                    t.replication_lag.total_seconds(), command))
    return results


def _utilisation(conn: psycopg.Connection[Any], threshold: float) -> CheckResult:
    row = conn.execute("SELECT count(*), current_setting('max_connections')::int"
                       " FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()
    used, limit = (int(row[0]), int(row[1])) if row else (0, 1)
    share = used / limit
    return CheckResult("connection_utilization", share, threshold, _status(share, threshold),
                       f"{used} of {limit} connections in use ({share:.0%}, "
                       f"threshold {threshold:.0%})")


def _long_transaction(conn: psycopg.Connection[Any], threshold: float) -> CheckResult:
    row = conn.execute(
        "SELECT pid, extract(epoch FROM now() - xact_start)::float8, application_name"
        " FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' ORDER BY xact_start LIMIT 1").fetchone()
    if row is None:
        return CheckResult("long_transaction", 0.0, threshold, "ok", "no open transactions")
    pid, age, app = int(row[0]), float(row[1]), row[2] or "no application_name"
    return CheckResult("long_transaction", age, threshold, _status(age, threshold),
                       f"oldest transaction: pid {pid} ({app}) open for {_seconds(age)} "
                       f"(threshold {_seconds(threshold)})")


def _error_rate(before: Counters, now: Counters, threshold: float) -> CheckResult:
    commits, rollbacks = now.commits - before.commits, now.rollbacks - before.rollbacks
    total = commits + rollbacks
    rate = rollbacks / total if total else 0.0
    return CheckResult("error_rate", rate, threshold, _status(rate, threshold),
                       f"{rollbacks} of {total} transactions rolled back since the apply began "
                       f"({rate:.1%}, threshold {threshold:.0%})")


def _replica_lag(plan: Plan, name: str, primary_lsn: str | None, threshold: float,
                 command: str) -> CheckResult:
    """Lag read on the replica itself: bytes behind the primary's current LSN, and the age of the
    last replayed transaction only while it is behind (an idle primary is not lag)."""
    replica = next(r for r in plan.database.replicas if r.name == name)
    with open_connection(endpoint(plan, replica), command=command, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::float8,"
            " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            (primary_lsn,)).fetchone()
    in_recovery, behind, age = (row or (False, None, None))
    if not in_recovery:
        return CheckResult(f"replication_lag.{name}", None, threshold, "critical",
                           f"{name} is not replaying: it is not in recovery")
    if behind is None:
        return CheckResult(f"replication_lag.{name}", None, threshold, "critical",
                           f"{name} has replayed nothing yet")
    lag = 0.0 if behind <= 0 else float(age or 0.0)
    return CheckResult(f"replication_lag.{name}", lag, threshold, _status(lag, threshold),
                       f"{name} is {int(max(behind, 0))} bytes and {_seconds(lag)} behind "
                       f"(threshold {_seconds(threshold)})")
