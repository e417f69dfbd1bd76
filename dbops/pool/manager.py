"""PoolManager: the application's connections, from the plan. A primary pool plus one per read
replica; reads go to replicas only when the caller says so; leaks name their holder."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors

from dbops.config.model import Plan
from dbops.connect import Endpoint
from dbops.errors import ConnectionError
from dbops.pool.base import (
    REPLAY_LSN,
    UNRESOLVED,
    WAL_INSERT_LSN,
    Intent,
    Isolation,
    ManagerBase,
    backoff,
    connection_lost,
    isolation_level,
    reason_of,
    session_ended_before_commit,
)
from dbops.pool.connection import PooledConnection
from dbops.pool.core import Pool
from dbops.pool.errors import ConnectionLost, PoolClosed, PoolExhausted
from dbops.pool.leaks import LeakCallback
from dbops.pool.metrics import Gauges
from dbops.pool.routing import PRIMARY, format_lsn, parse_lsn
from dbops.pool.settings import PoolSettings
from dbops.pool.status import (
    HealthStatus,
    PerformanceMetrics,
    PoolStats,
    health,
    performance,
    pool_stats,
)
from dbops.pool.upkeep import Upkeep, probe

logger = logging.getLogger("dbops.pool")

T = TypeVar("T")
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_KEEP_RESULT_ROWS = 1000
_NOT_OPEN = "the PoolManager is not open: call open() (or use it in a with block)"
RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


def _run(conn: PooledConnection, sql: Any, params: Any, row_factory: Any) -> list[Any]:
    """Execute on `conn` and return the rows ([] without a result). The connection's own cursor
    is reused: creating a cursor per statement costs more than the pool's whole checkout."""
    cur = conn.cursor(row_factory=row_factory) if row_factory else conn._dbops_cursor
    cur.execute(sql, params)
    result = cur.pgresult
    if result is None or result.status != _TUPLES_OK:
        return []
    rows = cur.fetchall()
    if result.ntuples > _KEEP_RESULT_ROWS:  # do not keep a large result alive in the pool
        conn._dbops_cursor = cast(Any, conn.cursor())
    return rows


class Checkout:
    """What PoolManager.connection() returns: lends a connection for a `with` block.

    A small class rather than a generator-based context manager: it is on every checkout.
    """

    __slots__ = ("_after", "_conn", "_intent", "_leak", "_manager", "_pool", "_timeout")

    def __init__(
        self,
        manager: PoolManager,
        intent: Intent,
        timeout: float | None,
        leak_detection: bool,
        after_lsn: str | None,
    ) -> None:
        self._manager, self._intent, self._timeout = manager, intent, timeout
        self._leak, self._after = leak_detection, after_lsn

    def __enter__(self) -> PooledConnection:
        self._pool, self._conn = self._manager._checkout(
            self._intent, self._timeout, self._leak, self._after, sys._getframe(1)
        )
        return self._conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        manager, pool, conn = self._manager, self._pool, self._conn
        if exc is not None and pool is not manager._primary and connection_lost(exc, conn):
            manager._eject(pool.node, reason_of(exc))
        manager._release(pool, conn, self._intent == "write")


class PoolManager:
    """Connections to the plan's primary and read replicas, for threaded applications.

    Build with `PoolManager.from_plan("production")` (or from endpoints and settings), then
    `open()` it or use it as a context manager; `shutdown()` closes everything.

    - `connection(intent="write"|"read")`: a context manager yielding an autocommit psycopg
      connection; `with conn.transaction():` groups statements. Intent read goes to a replica
      chosen by the plan's strategy (round_robin or least_lag) among those within max_lag, and
      after a write by the same thread only to one that has replayed it; otherwise the primary.
    - `query(sql, params, read_only=False)`: one statement, its rows (a list; empty without a
      result). A read that loses its server is retried on the next candidate.
    - `transaction(fn, isolation=, retries=)`: runs `fn(conn)` in one transaction and returns
      its result, retrying serialization failures and deadlocks with a doubling backoff.
    - `get_pool_stats()`, `get_performance_metrics()`, `get_health_status()`,
      `register_metrics()` (prometheus_client).
    """

    def __init__(
        self,
        primary: Endpoint,
        replicas: Sequence[Endpoint] = (),
        *,
        settings: PoolSettings | None = None,
        on_leak: LeakCallback | None = None,
        **overrides: Any,
    ) -> None:
        self._base = ManagerBase(
            primary, replicas, settings=settings, on_leak=on_leak, **overrides
        )
        b = self._base
        self.settings = b.settings
        self.router = b.router
        self._pools = {
            node: Pool(
                node, b.conninfo(node), self.settings, b.metrics[node], describe=ep.describe()
            )
            for node, ep in b.endpoints.items()
        }
        b.gauges = self._gauges
        self._primary = self._pools[PRIMARY]
        self._replicas = {name: self._pools[name] for name in b.replica_names}
        self._timeout = self.settings.acquire_timeout
        self._leak_check = self.settings.leak_detection_threshold > 0
        self._track_writes = b._track_writes
        self._written = b._written
        self._upkeep = Upkeep(self._base, self._pools, self._eject)
        self._open = False

    @classmethod
    def from_plan(
        cls,
        plan_or_env: Plan | str | Path,
        *,
        root: Path | None = None,
        name: str | None = None,
        on_leak: LeakCallback | None = None,
        **overrides: Any,
    ) -> PoolManager:
        """From a Plan, or an environment name / plan path resolved like the CLI does.
        `overrides` replace PoolSettings values (e.g. maintenance_interval=0.05 in tests)."""
        primary, replicas, settings = ManagerBase._plan_arguments(plan_or_env, root, name, overrides)
        return cls(primary, replicas, settings=settings, on_leak=on_leak)

    def open(self) -> PoolManager:
        """Open min_size connections to the primary (raising ConnectionError if it cannot be
        reached) and to each replica (a replica that cannot be reached is ejected), measure the
        replicas once, and start the maintenance and replica-monitor threads."""
        if self._open:
            return self
        self._primary.open()
        for name, pool in self._replicas.items():
            try:
                pool.open()
            except ConnectionError as exc:
                self.router.eject(name, str(exc))
        self._open = True
        self._upkeep.start()
        return self

    def __enter__(self) -> PoolManager:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def add_leak_callback(self, callback: LeakCallback) -> None:
        """Call `callback(LeakReport)` for every leak found (the health monitor's alert hook)."""
        self._base.add_leak_callback(callback)

    def last_write_lsn(self) -> str | None:
        """The position this thread's reads must see (read-your-writes), as PostgreSQL spells
        LSNs; None before its first write (or without replicas to route to)."""
        lsn = self._written.get()
        if lsn == UNRESOLVED:
            lsn = self._position_now(self._timeout)
        return format_lsn(lsn) if lsn else None

    def register_metrics(self, registry: Any = None) -> Any:
        """Export the metrics as a prometheus_client collector (default registry unless given)."""
        return self._base.register_metrics(registry)

    def connection(
        self,
        intent: Intent = "write",
        *,
        timeout: float | None = None,
        leak_detection: bool = True,
        after_lsn: str | None = None,
    ) -> Checkout:
        """A context manager lending a connection for the block and taking it back afterwards.

        intent="read" may go to a replica (see the class); `after_lsn` asks for a server that has
        replayed that position (read-your-writes across threads or processes).
        `leak_detection=False` opts this checkout out of leak reports (expected long work).
        """
        return Checkout(self, intent, timeout, leak_detection, after_lsn)

    def query(
        self,
        sql: Any,
        params: Any = None,
        *,
        read_only: bool = False,
        timeout: float | None = None,
        row_factory: Any = None,
    ) -> list[Any]:
        """Run one statement and return its rows ([] for a statement without a result).

        read_only=True routes it like intent read, and a read whose server goes away is retried
        on the next candidate (ending on the primary). A write whose connection is lost raises
        ConnectionLost, unless the server said the session ended before the statement ran: then
        it is taken once more on a new connection. SQL errors are psycopg's own exceptions.
        """
        if read_only and self._replicas:
            return self._read_query(sql, params, timeout, row_factory, sys._getframe(1))
        if not self._open:
            raise PoolClosed(_NOT_OPEN)
        pool = self._primary
        conn = pool.getconn(
            self._timeout if timeout is None else timeout, sys._getframe(1), self._leak_check
        )
        try:
            rows = _run(conn, sql, params, row_factory)
        except psycopg.OperationalError as exc:
            self._release(pool, conn, not read_only)
            if not connection_lost(exc, conn):
                raise
            if not (read_only or session_ended_before_commit(exc)):
                raise ConnectionLost(PRIMARY, reason_of(exc), may_have_committed=True) from exc
            return self._query_again(sql, params, timeout, row_factory, read_only, exc)
        except BaseException:
            self._release(pool, conn, not read_only)
            raise
        if self._track_writes and not read_only:
            self._written.set(UNRESOLVED)
        pool.putconn(conn)
        return rows

    def _query_again(
        self,
        sql: Any,
        params: Any,
        timeout: float | None,
        row_factory: Any,
        read_only: bool,
        first: BaseException,
    ) -> list[Any]:
        """The one retry of a statement whose session ended before it ran."""
        pool = self._primary
        try:
            conn = pool.getconn(self._timeout if timeout is None else timeout, sys._getframe(2))
        except (ConnectionError, PoolExhausted) as exc:
            raise ConnectionLost(
                PRIMARY, f"{reason_of(first)}; then {exc}", may_have_committed=False
            ) from first
        try:
            return _run(conn, sql, params, row_factory)
        except psycopg.OperationalError as exc:
            if connection_lost(exc, conn):
                raise ConnectionLost(
                    PRIMARY, reason_of(exc), may_have_committed=not read_only
                ) from first
            raise
        finally:
            self._release(pool, conn, not read_only)

    def _read_query(
        self, sql: Any, params: Any, timeout: float | None, row_factory: Any, frame: Any
    ) -> list[Any]:
        last: BaseException | None = None
        for _ in range(len(self._pools) + 1):
            pool, conn = self._checkout("read", timeout, True, None, frame)
            try:
                return _run(conn, sql, params, row_factory)
            except psycopg.OperationalError as exc:
                if not connection_lost(exc, conn):
                    raise
                last = exc
                if pool is not self._primary:
                    self._eject(pool.node, reason_of(exc))
            finally:
                self._release(pool, conn, False)
        assert last is not None
        raise ConnectionLost(PRIMARY, reason_of(last), may_have_committed=False) from last

    def transaction(
        self,
        fn: Callable[[PooledConnection], T],
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> T:
        """Run `fn(conn)` inside one transaction and return its result; commit when it returns,
        roll back when it raises. Serialization failures and deadlocks are retried up to
        `retries` times (fn runs again, on a fresh transaction); then the last one is raised.
        read_only=True starts a READ ONLY transaction routed like intent read; it is also taken
        again on another server when its server goes away. A write transaction whose connection
        is lost raises ConnectionLost.
        """
        level = isolation_level(isolation)
        intent: Intent = "read" if read_only else "write"
        frame = sys._getframe(1)
        attempt = 0
        while True:
            pool, conn = self._checkout(intent, timeout, True, None, frame)
            try:
                conn.isolation_level = level
                conn.read_only = True if read_only else None
                with conn.transaction():
                    result = fn(conn)
                conn.isolation_level = conn.read_only = None
                self._release(pool, conn, not read_only)
                return result
            except RETRYABLE as exc:
                self._release(pool, conn, not read_only)
                if attempt >= retries:
                    raise
                logger.info(
                    "transaction retry %d/%d after %s", attempt + 1, retries, type(exc).__name__
                )
            except psycopg.OperationalError as exc:
                self._release(pool, conn, not read_only)
                if not connection_lost(exc, conn):
                    raise
                if pool is not self._primary:
                    self._eject(pool.node, reason_of(exc))
                if not read_only or attempt >= retries:
                    raise ConnectionLost(
                        pool.node,
                        reason_of(exc),
                        may_have_committed=not read_only and not session_ended_before_commit(exc),
                    ) from exc
            except BaseException:
                self._release(pool, conn, not read_only)
                raise
            time.sleep(backoff(self.settings.retry_backoff, attempt))
            attempt += 1

    def _checkout(
        self,
        intent: Intent,
        timeout: float | None,
        leak_detection: bool,
        after_lsn: str | None,
        frame: Any,
    ) -> tuple[Pool, PooledConnection]:
        if not self._open:
            raise PoolClosed(_NOT_OPEN)
        leak_check = leak_detection and self._leak_check
        wait = self._timeout if timeout is None else timeout
        if intent != "read" or not self._replicas:
            return self._primary, self._primary.getconn(wait, frame, leak_check)
        position = self._base._read_position(after_lsn)
        just_written = position == UNRESOLVED
        if just_written:
            position = self._position_now(wait)
        for node, check in self.router.candidates(position):
            pool = self._pools[node]
            if pool is self._primary:
                return pool, pool.getconn(wait, frame, leak_check, True)
            if check and just_written:
                continue  # the write committed a moment ago: asking a replica is a wasted trip
            try:
                conn = pool.getconn(wait, frame, leak_check, not check)
            except ConnectionError as exc:
                self._eject(node, str(exc))
                continue
            if not check:
                return pool, conn
            if self._has_replayed(pool, conn, position):
                pool.count_routed()
                return pool, conn
        raise AssertionError("the primary is always a candidate")

    def _has_replayed(self, pool: Pool, conn: PooledConnection, position: int) -> bool:
        """Fresh read-your-writes check; returns the connection to the pool when it fails."""
        try:
            row = psycopg.Cursor(conn).execute(REPLAY_LSN).fetchone()
        except psycopg.Error as exc:
            pool.putconn(conn)
            if connection_lost(exc, conn):
                self._eject(pool.node, reason_of(exc))
            return False
        replayed = parse_lsn(row[0]) if row and row[0] else 0
        self.router.replayed(pool.node, replayed)
        if replayed < position:
            pool.putconn(conn)
            return False
        return True

    def _release(self, pool: Pool, conn: PooledConnection, wrote: bool) -> None:
        if wrote and self._track_writes and conn._dbops_times:
            self._written.set(UNRESOLVED)
        pool.putconn(conn)

    def _position_now(self, wait: float) -> int:
        """Resolve the caller's read-your-writes position: the primary's WAL insert position
        now, past every commit the caller made (one round trip, on its first read after
        writing)."""
        conn = self._primary.getconn(wait, None, False)
        try:
            row = psycopg.Cursor(conn).execute(WAL_INSERT_LSN).fetchone()
        finally:
            self._primary.putconn(conn)
        return self._base._resolved(parse_lsn(row[0])) if row else 0

    def _eject(self, node: str, reason: str) -> None:
        self.router.eject(node, reason)
        self._pools[node].discard_idle()

    def _gauges(self) -> list[Gauges]:
        return [pool.gauges() for pool in self._pools.values()]

    def get_pool_stats(self) -> dict[str, PoolStats]:
        """Per server ("primary" and each replica's name): sizes now and counters since open."""
        return {
            pool.node: pool_stats(self._base.metrics[pool.node], pool.gauges())
            for pool in self._pools.values()
        }

    def get_performance_metrics(self) -> PerformanceMetrics:
        """Throughput, error rate, slow queries, query-time and acquire-wait percentiles."""
        return performance(
            [(self._base.metrics[g.node], g) for g in self._gauges()], self._base.throughput
        )

    def get_health_status(self) -> HealthStatus:
        """Checks the primary with SELECT 1 (timed) and reports the replicas as last probed."""
        latency, error = None, ""
        try:
            started = perf_counter()
            probe(self._primary, "SELECT 1", self._timeout)
            latency = perf_counter() - started
        except (PoolExhausted, ConnectionError, PoolClosed, psycopg.Error) as exc:
            error = reason_of(exc)
        return health(
            latency,
            error,
            list(self.router.replicas.values()),
            self.router.max_lag,
            self._gauges(),
            sum(pool.open_leaks() for pool in self._pools.values()),
        )

    def shutdown(self) -> None:
        """Stop the background threads and close every pool; connections still checked out are
        closed when their holders return them."""
        self._upkeep.stop()
        for pool in self._pools.values():
            pool.close()
        self._open = False
        self._base._unregister_metrics()
