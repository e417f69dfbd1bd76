"""Health checks: one definition of "healthy", shared by the apply gates, `dbops health`, the
monitor and the HTTP endpoints.

A cycle reads the primary in two queries (a trivial round trip, then one query for every other
figure), each replica in one, the attached pool's metrics and the backup catalog; evaluate.py,
replication.py, pool_checks.py and backups.py turn those readings into CheckResults against the
plan's thresholds: ok, warning (above 80 % of the threshold) or critical, each with a one-line
explanation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from dbops.config.model import Plan
from dbops.config.units import format_duration
from dbops.connect import Endpoint, endpoint, mask, open_connection
from dbops.errors import ConnectFailed
from dbops.health.archiving import ArchiveHealth
from dbops.health.backup_checks import BackupFreshness
from dbops.health.evaluate import Window, evaluate_primary
from dbops.health.gates import GATE_CHECKS
from dbops.health.pool_checks import AttachedPool, PoolReading, evaluate_pool, read_pool
from dbops.health.probe import (
    Counters,
    PrimarySnapshot,
    ReplicaSnapshot,
    ServerIdentity,
    read_counters,
    read_primary,
    read_replica,
)
from dbops.health.replication import LsnTimeline, PrimaryView, evaluate_replica
from dbops.health.result import (
    WARNING_SHARE,
    CheckResult,
    HealthReport,
    Status,
    seconds,
    status_of,
)

__all__ = [
    "GATE_CHECKS",
    "WARNING_SHARE",
    "CheckResult",
    "Checker",
    "Counters",
    "HealthReport",
    "Status",
    "check_once",
    "counters",
    "gate_checks",
]

T = TypeVar("T")



def counters(conn: psycopg.Connection[Any]) -> Counters:
    """The database's cumulative totals now: the baseline an apply's error rate is measured from."""
    return read_counters(conn)


def _one_line(exc: BaseException) -> str:
    return mask(" ".join(str(exc).split()) or type(exc).__name__)


class Checker:
    """Runs check cycles for one plan.

    Kept between cycles: the connections (unless `keep_connections` is false), the previous
    cycle's counters (deadlocks, error rate and cache hits are judged per cycle), the primary's
    WAL positions over time (replica lag) and the pool's previous figures. Not thread-safe: one
    cycle at a time (the monitor holds a lock).
    """

    def __init__(self, plan: Plan, *, pool: AttachedPool | None = None, command: str = "health",
                 keep_connections: bool = True, baseline: HealthReport | None = None,
                 backups: bool = True) -> None:
        self.plan = plan
        self.pool = pool
        self.command = command
        self.keep_connections = keep_connections
        self.timeline = LsnTimeline()
        self._connections: dict[str, psycopg.Connection[Any]] = {}
        self._connected_in: dict[str, float] = {}
        self._previous: Counters | None = None
        self._identity: ServerIdentity | None = None
        self._pool_before: PoolReading | None = None
        self._backups = BackupFreshness(plan) if backups else None
        self._archiving = ArchiveHealth(plan) if backups and ArchiveHealth.applies(plan) else None
        if baseline is not None and baseline.counters is not None:
            self._previous, self._identity = baseline.counters, baseline.identity
        roles = [*plan.roles, *([plan.pool.role] if plan.pool.role else [])]
        self._roles = tuple(dict.fromkeys(roles))
        response = plan.health.thresholds.response_time
        self._statement_timeout = min(max(response * 2, timedelta(seconds=1)),
                                      timedelta(seconds=30))

    def run(self, *, since: Counters | None = None) -> HealthReport:
        """One cycle. `since` judges the error rate from that baseline ("since the apply began")
        instead of from the previous cycle."""
        started = time.perf_counter()
        checked_at = datetime.now(UTC)
        results, snap, error, queries = self._check_primary()
        if snap is not None:
            results += evaluate_primary(snap, self.plan.health.thresholds,
                                        self._window(snap, since))
            if snap.identity != self._identity:
                self.timeline.clear()
            self._identity = snap.identity
            self._previous = snap.counters
            if snap.lsn is not None:
                self.timeline.add(time.monotonic(), snap.lsn)
        view = PrimaryView(snap.lsn if snap else None, snap.streams if snap else (),
                           len(self.plan.database.replicas))
        for replica in self.plan.database.replicas:
            replica_snap, replica_error = self._read_replica(replica.name, replica)
            queries += replica_snap is not None
            results.append(evaluate_replica(
                replica.name, replica.host, replica_snap, replica_error, view,
                self.plan.health.thresholds.replication_lag.total_seconds(), self.timeline,
                time.monotonic()))
        results += self._check_pool()
        backups = self._backups.check() if self._backups is not None else None
        if backups is not None:
            results.append(backups)
        if self._archiving is not None and snap is not None:
            results += self._archiving.check(self.on_primary)
        return HealthReport(
            environment=self.plan.environment, checked_at=checked_at,
            duration=time.perf_counter() - started, queries=queries, results=tuple(results),
            identity=snap.identity if snap else None, counters=snap.counters if snap else None,
            error=error)

    def on_primary(self, act: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `act` on the primary connection the cycles use (recovery acts through it)."""
        return self._on("primary", lambda: endpoint(self.plan), act)

    def close(self) -> None:
        for key in list(self._connections):
            self._drop(key)

    def _window(self, snap: PrimarySnapshot, since: Counters | None) -> Window:
        if since is not None:
            delta = snap.counters.since(since)
            if delta is not None:
                return Window(delta, "since the apply began", False, snap.counters)
        elif self._previous is not None and snap.identity == self._identity:
            delta = snap.counters.since(self._previous)
            if delta is not None:
                return Window(delta, "since the last check", False, snap.counters)
        return Window(snap.counters, "since statistics were reset", True, snap.counters)

    def _check_primary(self) -> tuple[list[CheckResult], PrimarySnapshot | None, str | None, int]:
        """(results, snapshot, could-not-check reason, queries sent)."""
        limit = self.plan.health.thresholds.response_time
        sent = 0

        def read(conn: psycopg.Connection[Any]) -> tuple[float, PrimarySnapshot]:
            nonlocal sent
            begun = time.perf_counter()
            conn.execute("SELECT 1")
            sent += 1
            round_trip = time.perf_counter() - begun
            snapshot = read_primary(conn, roles=self._roles)
            sent += 1
            return round_trip, snapshot

        try:
            round_trip, snap = self._on("primary", lambda: endpoint(self.plan), read)
        except ConnectFailed as exc:
            return [CheckResult("connectivity", None, limit.total_seconds(), "critical",
                                str(exc))], None, None, sent
        except pg_errors.QueryCanceled:
            return [self._connectivity(None),
                    CheckResult("health_query", None, None, "critical",
                                "the health query did not finish within "
                                f"{format_duration(self._statement_timeout)}: the server is "
                                "overloaded or the query is blocked")], None, None, sent
        except psycopg.OperationalError as exc:
            return [CheckResult("connectivity", None, limit.total_seconds(), "critical",
                                f"lost the connection to {endpoint(self.plan).describe()}: "
                                f"{_one_line(exc)}")], None, None, sent
        except psycopg.Error as exc:
            reason = (f"could not check: {_one_line(exc)} "
                      f"(SQLSTATE {exc.sqlstate or 'unknown'})")
            return [CheckResult("health_query", None, None, "critical", reason)], None, reason, sent
        return [self._connectivity(round_trip)], snap, None, sent

    def _connectivity(self, round_trip: float | None) -> CheckResult:
        limit = self.plan.health.thresholds.response_time
        connected = self._connected_in.pop("primary", None)
        opened = f"connected in {seconds(connected)} and " if connected is not None else ""
        if round_trip is None:
            return CheckResult("connectivity", None, limit.total_seconds(), "ok",
                               f"{opened}connected (threshold {format_duration(limit)})")
        status: Status = status_of(round_trip, limit.total_seconds())
        return CheckResult("connectivity", round_trip, limit.total_seconds(), status,
                           f"{opened}answered in {seconds(round_trip)} "
                           f"(threshold {format_duration(limit)})",
                           {"connect_seconds": connected})

    def _read_replica(self, key: str, replica: Any) -> tuple[ReplicaSnapshot | None, str | None]:
        try:
            return self._on(key, lambda: endpoint(self.plan, replica), read_replica), None
        except ConnectFailed as exc:
            return None, str(exc)
        except psycopg.Error as exc:
            return None, _one_line(exc)

    def _on(self, key: str, where: Callable[[], Endpoint],
            act: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `act` on the kept connection `key`, opening one when there is none; a kept
        connection that died since the last cycle is replaced once, at once, so a restarted
        server does not cost a false alarm."""
        conn = self._connections.get(key)
        if conn is not None:
            try:
                return act(conn)
            except pg_errors.QueryCanceled:
                raise
            except psycopg.OperationalError:
                self._drop(key)
        begun = time.perf_counter()
        conn = open_connection(where(), command=self.command, autocommit=True,
                               statement_timeout=self._statement_timeout)
        self._connected_in[key] = time.perf_counter() - begun
        if self.keep_connections:
            self._connections[key] = conn
        try:
            return act(conn)
        except psycopg.OperationalError:
            self._drop(key)
            conn.close()
            raise
        finally:
            if not self.keep_connections:
                conn.close()

    def _drop(self, key: str) -> None:
        conn = self._connections.pop(key, None)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # already gone; nothing to release
                conn.close()

    def _check_pool(self) -> list[CheckResult]:
        if self.pool is None:
            return []
        try:
            now = read_pool(self.pool, self.plan.pool)
        except Exception as exc:  # a foreign object: whatever it raises must not end the cycle
            return [CheckResult("pool", None, None, "critical",
                                f"could not read the pool's statistics: {_one_line(exc)}")]
        results = evaluate_pool(now, self._pool_before, self.plan.health.thresholds,
                                self.plan.pool)
        self._pool_before = now
        return results


def check_once(plan: Plan, *, pool: AttachedPool | None = None,
               command: str = "health") -> HealthReport:
    """One cycle on fresh connections, closed afterwards."""
    checker = Checker(plan, pool=pool, command=command, keep_connections=False)
    try:
        return checker.run()
    finally:
        checker.close()


def gate_checks(plan: Plan, *, since: Counters | None = None,
                command: str = "gate") -> list[CheckResult]:
    """The checks an apply gate runs, with the plan's thresholds: connectivity and latency,
    connection utilisation, the longest transaction, replication lag read on each replica, and
    the error rate since `since`. A critical result fails the gate with its message."""
    checker = Checker(plan, command=command, keep_connections=False, backups=False)
    try:
        report = checker.run(since=since)
    finally:
        checker.close()
    return [r for r in report.results
            if r.kind in GATE_CHECKS and (since is not None or r.kind != "error_rate")]
