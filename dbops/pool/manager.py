"""PoolManager: the application's connections, from the plan. A primary pool plus one per read
replica; reads go to replicas only when the caller says so; leaks name their holder."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar, cast, overload

import psycopg
from psycopg import errors as pg_errors

from dbops.config.model import Plan
from dbops.connect import Endpoint
from dbops.pool.base import (
    REPLAY_LSN,
    UNRESOLVED,
    WAL_INSERT_LSN,
    Intent,
    Isolation,
    ManagerBase,
    Written,
    backoff,
    check_intent,
    connection_lost,
    isolation_level,
    reason_of,
)
from dbops.pool.connection import PooledConnection
from dbops.pool.core import Pool
from dbops.pool.errors import (
    ConnectionLost,
    PoolClosed,
    PoolError,
    PoolExhausted,
    PoolUnavailable,
)
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
from dbops.pool.transaction import Stage, TransactionBlock, lost, run
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
        # Conservatively, a write checkout marks a write whatever it ran (execute, executemany,
        # copy, pipeline, a server-side cursor): the caller's next read sees it.
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
      result). A read that loses its server is retried on the next candidate; a write never is.
    - `transaction(fn, isolation=, retries=)`: runs `fn(conn)` in one transaction and returns
      its result, retrying serialization failures, deadlocks and connections lost before
      COMMIT with a doubling backoff; `with pool.transaction() as conn:` runs a block once.
    - `reset()`: after a failover, close every connection and forget what the router knew.
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
            except PoolUnavailable as exc:
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
        holder = self._base.written()
        lsn = holder.lsn
        if lsn == UNRESOLVED:
            lsn = self._position_now(holder, self._timeout)
        return format_lsn(lsn) if lsn > 0 else None

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
        Raises PoolConfigError for an intent other than "write" or "read".
        """
        if intent != "write":
            check_intent(intent)
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
        ConnectionLost(may_have_committed=True) and is never sent again: the server may have
        run it before the session ended (57P01 included). SQL errors are psycopg's own.
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
            if not read_only:
                raise ConnectionLost(PRIMARY, reason_of(exc), may_have_committed=True) from exc
            return self._query_again(sql, params, timeout, row_factory, exc)
        except BaseException:
            self._release(pool, conn, not read_only)
            raise
        if self._track_writes and not read_only:
            self._base.written().lsn = UNRESOLVED
        pool.putconn(conn)
        return rows

    def _query_again(
        self, sql: Any, params: Any, timeout: float | None, row_factory: Any, first: BaseException
    ) -> list[Any]:
        """The one retry of a read whose connection was lost."""
        pool = self._primary
        try:
            conn = pool.getconn(self._timeout if timeout is None else timeout, sys._getframe(2))
        except (PoolUnavailable, PoolExhausted) as exc:
            raise ConnectionLost(
                PRIMARY, f"{reason_of(first)}; then {exc}", may_have_committed=False
            ) from first
        try:
            return _run(conn, sql, params, row_factory)
        except psycopg.OperationalError as exc:
            if connection_lost(exc, conn):
                raise ConnectionLost(PRIMARY, reason_of(exc), may_have_committed=False) from first
            raise
        finally:
            self._release(pool, conn, False)

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

    @overload
    def transaction(
        self,
        fn: Callable[[PooledConnection], T],
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> T: ...

    @overload
    def transaction(
        self,
        fn: None = None,
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> TransactionBlock: ...

    def transaction(
        self,
        fn: Callable[[PooledConnection], T] | None = None,
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> T | TransactionBlock:
        """Run `fn(conn)` inside one transaction and return its result; commit when it returns,
        roll back when it raises. Retried up to `retries` times (fn runs again, on a fresh
        transaction and connection) when nothing can have been applied: serialization failures,
        deadlocks, and a connection lost before COMMIT was sent (logged: "not applied"). A
        connection lost during COMMIT raises ConnectionLost(may_have_committed=True) at once,
        never retried; after the last retry ConnectionLost(may_have_committed=False).
        read_only=True starts a READ ONLY transaction routed like intent read.

        Without `fn`, `with pool.transaction() as conn:` runs the block in one transaction, once.
        """
        level = isolation_level(isolation)
        frame = sys._getframe(1)
        if fn is None:
            return TransactionBlock(self, level, read_only, timeout, frame)
        intent: Intent = "read" if read_only else "write"
        attempt = 0
        failure: ConnectionLost | None = None
        while True:
            try:
                pool, conn = self._checkout(intent, timeout, True, None, frame)
            except PoolUnavailable as exc:
                if failure is None:
                    raise
                raise ConnectionLost(
                    failure.node, f"{failure.reason}; then {exc}", may_have_committed=False
                ) from exc
            stage = Stage()
            try:
                result = run(conn, fn, level, read_only, stage)
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
                failure = lost(pool.node, exc, stage, read_only)
                if failure.may_have_committed or attempt >= retries:
                    raise failure from exc
                logger.info(
                    "transaction retry %d/%d: %s lost during %s, before COMMIT: not applied",
                    attempt + 1, retries, pool.node, stage.name,
                )
            except BaseException:
                self._release(pool, conn, not read_only)
                raise
            else:
                self._release(pool, conn, not read_only)
                return result
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
        primary = self._primary
        if intent != "read" or not self._replicas:
            return primary, primary.getconn(wait, frame, leak_check)
        holder = self._base.written()
        position = self._base._read_position(holder, after_lsn)
        just_written = position == UNRESOLVED
        if just_written:
            position = self._position_now(holder, wait)
            if position == UNRESOLVED:  # the primary's position is unknown: read there
                return primary, primary.getconn(wait, frame, leak_check, True)
        for node, check in self.router.candidates(position):
            pool = self._pools[node]
            if pool is primary:
                return pool, pool.getconn(wait, frame, leak_check, True)
            if check and just_written:
                continue  # the write committed a moment ago: asking a replica is a wasted trip
            try:
                # A busy replica does not keep the read waiting: the next candidate serves it,
                # the primary last (within its own pool's budget).
                conn = pool.try_getconn(frame, leak_check, not check)
            except PoolUnavailable as exc:
                self._eject(node, str(exc))
                continue
            if conn is None:
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
        except BaseException:
            pool.putconn(conn)
            raise
        replayed = parse_lsn(row[0]) if row and row[0] else 0
        self.router.replayed(pool.node, replayed)
        if replayed < position:
            pool.putconn(conn)
            return False
        return True

    def _release(self, pool: Pool, conn: PooledConnection, wrote: bool) -> None:
        if wrote and self._track_writes:
            self._base.written().lsn = UNRESOLVED
        pool.putconn(conn)

    def _position_now(self, holder: Written, wait: float) -> int:
        """Resolve the caller's read-your-writes position: the primary's WAL insert position
        now, past every commit the caller made (one round trip, on its first read after
        writing); UNRESOLVED when the primary's connection failed."""
        conn = self._primary.getconn(wait, None, False)
        try:
            row = psycopg.Cursor(conn).execute(WAL_INSERT_LSN).fetchone()
        except psycopg.Error as exc:
            logger.debug("read-your-writes position unknown: %s", reason_of(exc))
            return UNRESOLVED
        finally:
            self._primary.putconn(conn)
        return self._base._resolved(holder, parse_lsn(row[0])) if row else 0

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
        except (PoolError, psycopg.Error) as exc:
            error = reason_of(exc)
        return health(
            latency,
            error,
            list(self.router.replicas.values()),
            self.router.max_lag,
            self._gauges(),
            sum(pool.open_leaks() for pool in self._pools.values()),
        )

    def reset(self) -> None:
        """After a failover (the health monitor's recovery calls it): close every idle
        connection now and each checked-out one when it is returned, forget the replicas'
        states, the primary's WAL history and every caller's read-your-writes position, then
        open min_size connections to whatever the endpoints reach now and measure the replicas
        again. A primary that cannot be reached yet is logged; calls reconnect on demand."""
        running = self._open
        if running:
            self._upkeep.stop()
        for pool in self._pools.values():
            pool.discard_idle()
        self.router.reset()
        self._base.reset_positions()
        logger.warning("pool %s reset: connections closed, replica states forgotten",
                       self.settings.name)
        if not running:
            return
        for node, pool in self._pools.items():
            try:
                pool.fill()
            except PoolUnavailable as exc:
                if node == PRIMARY:
                    logger.warning("%s", exc)
                else:
                    self.router.eject(node, str(exc))
        self._upkeep.start()

    def shutdown(self) -> None:
        """Stop the background threads and close every pool; connections still checked out are
        closed when their holders return them."""
        self._upkeep.stop()
        for pool in self._pools.values():
            pool.close()
        self._open = False
        self._base._unregister_metrics()
