"""AsyncPoolManager: PoolManager's surface for asyncio, on psycopg_pool's AsyncConnectionPool.

psycopg_pool does the pooling (its background workers open, check and replace connections);
this module adds what it lacks, as PoolManager does for threads: replica routing with the lag
budget and read-your-writes, holders recorded per checkout (task and site) with leak reports and
exhaustion errors that name them, statement metrics, and dynamic sizing through resize().
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar, overload

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import PoolTimeout

from dbops.config.model import Plan
from dbops.connect import Endpoint, mask
from dbops.pool.aio_pool import AsyncNodePool, AsyncPooledConnection, fetch_rows
from dbops.pool.base import (
    REPLAY_LSN,
    REPLICA_PROBE,
    UNRESOLVED,
    WAL_FLUSH_LSN,
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
from dbops.pool.errors import ConnectionLost, PoolClosed, PoolError, PoolUnavailable
from dbops.pool.leaks import (
    LeakCallback,
    Site,
    deliver,
    leak_reports,
    overdue,
    site_of,
)
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
from dbops.pool.transaction import AsyncTransactionBlock, Stage, lost, run_async

logger = logging.getLogger("dbops.pool")

T = TypeVar("T")
RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_IDLE = psycopg.pq.TransactionStatus.IDLE


class AsyncCheckout:
    """What AsyncPoolManager.connection() returns: lends a connection for an `async with`.
    The caller's site and read-your-writes holder are taken when connection() is called."""

    __slots__ = ("_after", "_conn", "_intent", "_leak", "_manager", "_node", "_site",
                 "_timeout", "_written")

    def __init__(
        self,
        manager: AsyncPoolManager,
        intent: Intent,
        timeout: float | None,
        leak_detection: bool,
        after_lsn: str | None,
        site: Site,
    ) -> None:
        self._manager, self._intent, self._timeout = manager, intent, timeout
        self._leak, self._after, self._site = leak_detection, after_lsn, site
        self._written = manager._base.written()

    async def __aenter__(self) -> AsyncPooledConnection:
        self._node, self._conn = await self._manager._checkout(
            self._intent, self._timeout, self._leak, self._after, self._site, self._written
        )
        return self._conn

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        manager, node, conn = self._manager, self._node, self._conn
        if exc is not None and node is not manager._primary and connection_lost(exc, conn):
            manager._eject(node.node, reason_of(exc))
        # Conservatively, a write checkout marks a write whatever it ran.
        await manager._release(node, conn, self._written if self._intent == "write" else None)


class AsyncPoolManager:
    """PoolManager for asyncio: the same methods, awaited (see PoolManager for the contracts).

        async with AsyncPoolManager.from_plan("production") as pool:
            await pool.transaction(start_task)

    Read-your-writes and leak sites belong to the code that calls a method: `query()`,
    `transaction()` and `connection()` take both when called, so a write run through
    asyncio.wait_for, gather or a TaskGroup is seen by the caller's next read.
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
        self._base = ManagerBase(primary, replicas, settings=settings, on_leak=on_leak, **overrides)
        self.settings = self._base.settings
        self.router = self._base.router
        self._nodes = {
            node: AsyncNodePool(
                node,
                self._base.conninfo(node),
                self.settings,
                self._base.metrics[node],
                describe=ep.describe(),
                connect_failed=self._connect_failed,
            )
            for node, ep in self._base.endpoints.items()
        }
        self._base.gauges = self._gauges
        self._primary = self._nodes[PRIMARY]
        self._replicas = {name: self._nodes[name] for name in self._base.replica_names}
        self._timeout = self.settings.acquire_timeout
        self._leak_check = self.settings.leak_detection_threshold > 0
        self._tasks: list[asyncio.Task[None]] = []
        self._probes: dict[str, psycopg.AsyncConnection[Any]] = {}  # the monitor's own
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
    ) -> AsyncPoolManager:
        """From a Plan, or an environment name / plan path; not opened yet (await open())."""
        primary, replicas, settings = ManagerBase._plan_arguments(plan_or_env, root, name, overrides)
        return cls(primary, replicas, settings=settings, on_leak=on_leak)

    async def open(self) -> AsyncPoolManager:
        """Connect (PoolUnavailable when the primary cannot be reached), fill min_size, measure
        the replicas once and start the maintenance and monitor tasks."""
        if self._open:
            return self
        await self._reachable(PRIMARY)
        try:
            await self._primary.pool.open(wait=True, timeout=self._timeout)
        except PoolTimeout as exc:
            raise PoolUnavailable(PRIMARY, f"{PRIMARY}: {reason_of(exc)}") from None
        for name, node in self._replicas.items():
            try:
                await self._reachable(name)
                await node.pool.open(wait=True, timeout=self._timeout)
            except (PoolUnavailable, PoolTimeout) as exc:
                await node.pool.open(wait=False)
                self.router.eject(name, reason_of(exc))
        self._open = True
        self._start_tasks()
        if self._replicas:
            await self._monitor_round()
        return self

    def _start_tasks(self) -> None:
        self._tasks.append(asyncio.create_task(self._maintenance_loop()))
        if self._replicas:
            self._tasks.append(asyncio.create_task(self._monitor_loop()))

    async def _reachable(self, node: str) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(**self._base.conninfo(node))
        except psycopg.OperationalError as exc:
            raise PoolUnavailable(
                node,
                mask(f"cannot connect to {node} ({self._nodes[node].describe}): {reason_of(exc)}"),
            ) from None
        await conn.close()

    async def __aenter__(self) -> AsyncPoolManager:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def add_leak_callback(self, callback: LeakCallback) -> None:
        self._base.add_leak_callback(callback)

    async def last_write_lsn(self) -> str | None:
        """The position this task's reads must see (read-your-writes); None before its first
        write (or without replicas to route to)."""
        holder = self._base.written()
        lsn = holder.lsn
        if lsn == UNRESOLVED:
            lsn = await self._position_now(holder, self._timeout)
        return format_lsn(lsn) if lsn > 0 else None

    def register_metrics(self, registry: Any = None) -> Any:
        return self._base.register_metrics(registry)

    def connection(
        self,
        intent: Intent = "write",
        *,
        timeout: float | None = None,
        leak_detection: bool = True,
        after_lsn: str | None = None,
    ) -> AsyncCheckout:
        """An async context manager lending an autocommit connection for the block (routing as
        in PoolManager.connection)."""
        if intent != "write":
            check_intent(intent)
        return AsyncCheckout(
            self, intent, timeout, leak_detection, after_lsn, site_of(sys._getframe(1))
        )

    def query(
        self,
        sql: Any,
        params: Any = None,
        *,
        read_only: bool = False,
        timeout: float | None = None,
        row_factory: Any = None,
    ) -> Coroutine[Any, Any, list[Any]]:
        """One statement, its rows; reads retried on the next candidate when a server goes away,
        a write never sent twice (see PoolManager.query)."""
        return self._query(
            sql, params, read_only, timeout, row_factory, site_of(sys._getframe(1)),
            self._base.written(),
        )

    async def _query(
        self,
        sql: Any,
        params: Any,
        read_only: bool,
        timeout: float | None,
        row_factory: Any,
        site: Site,
        written: Written,
    ) -> list[Any]:
        attempts = len(self._nodes) + 1 if read_only else 1
        last: BaseException | None = None
        for _ in range(attempts):
            node, conn = await self._checkout(
                "read" if read_only else "write", timeout, True, None, site, written
            )
            try:
                cur = conn.cursor(row_factory=row_factory) if row_factory else conn.cursor()
                await cur.execute(sql, params)
                return await fetch_rows(cur)
            except psycopg.OperationalError as exc:
                if not connection_lost(exc, conn):
                    raise
                last = exc
                if node is not self._primary:
                    self._eject(node.node, reason_of(exc))
                if not read_only:
                    raise ConnectionLost(PRIMARY, reason_of(exc), may_have_committed=True) from exc
            finally:
                await self._release(node, conn, None if read_only else written)
        assert last is not None
        raise ConnectionLost(PRIMARY, reason_of(last), may_have_committed=False) from last

    @overload
    def transaction(
        self,
        fn: Callable[[AsyncPooledConnection], Awaitable[T]],
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def transaction(
        self,
        fn: None = None,
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncTransactionBlock: ...

    def transaction(
        self,
        fn: Callable[[AsyncPooledConnection], Awaitable[T]] | None = None,
        *,
        isolation: Isolation | None = None,
        retries: int = 3,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, T] | AsyncTransactionBlock:
        """`await fn(conn)` in one transaction, retried like PoolManager.transaction; without
        `fn`, `async with pool.transaction() as conn:` runs the block once."""
        level = isolation_level(isolation)
        site, written = site_of(sys._getframe(1)), self._base.written()
        if fn is None:
            return AsyncTransactionBlock(self, level, read_only, timeout, site, written)
        return self._transaction(fn, level, retries, read_only, timeout, site, written)

    async def _transaction(
        self,
        fn: Callable[[AsyncPooledConnection], Awaitable[T]],
        level: IsolationLevel | None,
        retries: int,
        read_only: bool,
        timeout: float | None,
        site: Site,
        written: Written,
    ) -> T:
        intent: Intent = "read" if read_only else "write"
        mark = None if read_only else written
        attempt = 0
        failure: ConnectionLost | None = None
        while True:
            try:
                node, conn = await self._checkout(intent, timeout, True, None, site, written)
            except PoolUnavailable as exc:
                if failure is None:
                    raise
                raise ConnectionLost(
                    failure.node, f"{failure.reason}; then {exc}", may_have_committed=False
                ) from exc
            stage = Stage()
            try:
                result = await run_async(conn, fn, level, read_only, stage)
            except RETRYABLE as exc:
                await self._release(node, conn, mark)
                if attempt >= retries:
                    raise
                logger.info(
                    "transaction retry %d/%d after %s", attempt + 1, retries, type(exc).__name__
                )
            except psycopg.OperationalError as exc:
                await self._release(node, conn, mark)
                if not connection_lost(exc, conn):
                    raise
                if node is not self._primary:
                    self._eject(node.node, reason_of(exc))
                failure = lost(node.node, exc, stage, read_only)
                if failure.may_have_committed or attempt >= retries:
                    raise failure from exc
                logger.info(
                    "transaction retry %d/%d: %s lost during %s, before COMMIT: not applied",
                    attempt + 1, retries, node.node, stage.name,
                )
            except BaseException:
                await self._release(node, conn, mark)
                raise
            else:
                await self._release(node, conn, mark)
                return result
            await asyncio.sleep(backoff(self.settings.retry_backoff, attempt))
            attempt += 1

    async def _checkout(
        self,
        intent: Intent,
        timeout: float | None,
        leak_detection: bool,
        after_lsn: str | None,
        site: Site,
        written: Written,
    ) -> tuple[AsyncNodePool, AsyncPooledConnection]:
        """Every await here gives the connection back if it is interrupted (cancelled)."""
        if not self._open:
            raise PoolClosed("the AsyncPoolManager is not open: await open() (or async with)")
        leak_check = leak_detection and self._leak_check
        wait = self._timeout if timeout is None else timeout
        primary = self._primary
        if intent != "read" or not self._replicas:
            return primary, await primary.getconn(wait, site, leak_check=leak_check)
        position = self._base._read_position(written, after_lsn)
        just_written = position == UNRESOLVED
        if just_written:
            position = await self._position_now(written, wait)
            if position == UNRESOLVED:  # the primary's position is unknown: read there
                return primary, await primary.getconn(wait, site, leak_check=leak_check)
        for name, check in self.router.candidates(position):
            node = self._nodes[name]
            if node is primary:
                conn = await node.getconn(wait, site, leak_check=leak_check)
                break
            if check and just_written:
                continue  # the write committed a moment ago: asking a replica is a wasted trip
            # A busy or dead replica does not keep the read waiting: the next candidate serves
            # it, the primary last (within its own pool's budget).
            found = await node.try_getconn(min(wait, 1.0), site, leak_check=leak_check)
            if found is None:
                if node.gauges().size == 0 and node.last_connect_error:
                    self._eject(name, node.last_connect_error)
                continue
            conn = found
            if check:
                try:
                    replayed = await self._has_replayed(node, conn, position)
                except BaseException:
                    await node.putconn(conn)
                    raise
                if not replayed:
                    await node.putconn(conn)
                    continue
            break
        node.metrics.reads_routed += 1  # one event loop: no race
        return node, conn

    async def _has_replayed(
        self, node: AsyncNodePool, conn: AsyncPooledConnection, position: int
    ) -> bool:
        """Fresh read-your-writes check (the caller gives the connection back when False)."""
        try:
            cur = await psycopg.AsyncCursor(conn).execute(REPLAY_LSN)
            row = await cur.fetchone()
        except psycopg.Error as exc:
            if connection_lost(exc, conn):
                self._eject(node.node, reason_of(exc))
            return False
        replayed = parse_lsn(row[0]) if row and row[0] else 0
        self.router.replayed(node.node, replayed)
        return replayed >= position

    async def _release(
        self, node: AsyncNodePool, conn: AsyncPooledConnection, written: Written | None
    ) -> None:
        """Give the connection back; `written`: the caller's holder, marked (a write)."""
        if written is not None and self._base._track_writes:
            written.lsn = UNRESOLVED
        await node.putconn(conn)

    async def _position_now(self, holder: Written, wait: float) -> int:
        """Resolve the caller's read-your-writes position (see PoolManager._position_now)."""
        conn = await self._primary.getconn(wait, None, leak_check=False)
        try:
            cur = await psycopg.AsyncCursor(conn).execute(WAL_INSERT_LSN)
            row = await cur.fetchone()
        except psycopg.Error as exc:
            logger.debug("read-your-writes position unknown: %s", reason_of(exc))
            return UNRESOLVED
        finally:
            await self._primary.putconn(conn)
        return self._base._resolved(holder, parse_lsn(row[0])) if row else 0

    def _connect_failed(self, node: str, exc: BaseException) -> None:
        if node != PRIMARY:
            self._eject(node, reason_of(exc), discard=False)

    def _eject(self, name: str, reason: str, *, discard: bool = True) -> None:
        self.router.eject(name, reason)
        if discard:
            # psycopg_pool's check() replaces dead idle connections in the background.
            asyncio.get_running_loop().create_task(self._nodes[name].pool.check())

    async def _probe(self, node: AsyncNodePool, sql: str, wait: float) -> tuple[Any, ...] | None:
        """One row on a pooled connection, as the pool's own checkout (health's SELECT 1)."""
        conn = await node.getconn(wait, None, leak_check=False)
        try:
            cur = await psycopg.AsyncCursor(conn).execute(sql)
            return await cur.fetchone()
        finally:
            await node.putconn(conn)

    async def _monitor_probe(self, node: str, sql: str) -> tuple[Any, ...] | None:
        """One row on the monitor's own connection to `node` (outside the pools: measured at
        any load, never in the application's metrics); raises psycopg.Error."""
        conn = self._probes.get(node)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    autocommit=True, **self._base.monitor_conninfo(node)
                )
            except psycopg.OperationalError as exc:
                where = self._nodes[node].describe
                raise psycopg.OperationalError(
                    mask(f"cannot connect to {node} ({where}): {reason_of(exc)}")
                ) from None
            self._probes[node] = conn
        try:
            cur = await conn.execute(sql)
            return await cur.fetchone()
        except BaseException:
            self._probes.pop(node, None)
            await conn.close()
            raise

    async def _monitor_round(self) -> None:
        try:
            row = await self._monitor_probe(PRIMARY, WAL_FLUSH_LSN)
            if row and row[0]:
                self.router.observe_primary(
                    parse_lsn(row[0]), perf_counter(), int(row[1]), int(row[2])
                )
        except psycopg.Error as exc:
            logger.debug("primary WAL sample skipped: %s", reason_of(exc))
        for name in self.router.due_for_probe(perf_counter()):
            try:
                row = await self._monitor_probe(name, REPLICA_PROBE)
            except psycopg.Error as exc:
                self._eject(name, reason_of(exc))
                continue
            if not row or not row[0]:
                self._eject(name, "not in recovery (promoted?): reads there could be inconsistent")
                continue
            self.router.observe_replica(
                name,
                parse_lsn(row[1]) if row[1] else None,
                perf_counter(),
                float(row[2]) if row[2] is not None else None,
            )

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.monitor_interval)
            try:
                await self._monitor_round()
            except Exception:  # the monitor must outlive any one bad round
                logger.exception("replica monitor round failed")

    async def _maintenance_loop(self) -> None:
        s = self.settings
        threshold = s.leak_detection_threshold
        tick = s.maintenance_interval
        for limit in (threshold, s.leak_reclaim_after):  # acted on within a quarter of it
            if limit > 0:
                tick = min(tick, max(limit / 4, 0.01))
        next_round = perf_counter() + s.maintenance_interval
        while True:
            await asyncio.sleep(tick)
            now = perf_counter()
            for node in self._nodes.values():
                await node.reclaim_overdue(now)
                if threshold > 0:
                    due = overdue(node.holders.items(), node.reported, now, threshold)
                    node.metrics.leaks += len(due)
                    for report in leak_reports(node.node, due, now, threshold):
                        deliver(report, self._base.leak_callbacks)
            if now >= next_round:
                next_round = now + s.maintenance_interval
                if s.dynamic_sizing:
                    for node in self._nodes.values():
                        await node.resize_tick(s.target_utilization)
                self._base.throughput.sample(sum(m.queries for m in self._base.metrics.values()))

    def _gauges(self) -> list[Gauges]:
        return [node.gauges() for node in self._nodes.values()]

    def get_pool_stats(self) -> dict[str, PoolStats]:
        return {n.node: pool_stats(n.metrics, n.gauges()) for n in self._nodes.values()}

    def get_performance_metrics(self) -> PerformanceMetrics:
        return performance([(n.metrics, n.gauges()) for n in self._nodes.values()], self._base.throughput)

    async def get_health_status(self) -> HealthStatus:
        latency, error = None, ""
        try:
            started = perf_counter()
            await self._probe(self._primary, "SELECT 1", self._timeout)
            latency = perf_counter() - started
        except (PoolError, psycopg.Error) as exc:
            error = reason_of(exc)
        return health(
            latency,
            error,
            list(self.router.replicas.values()),
            self.router.max_lag,
            self._gauges(),
            sum(len(n.reported) for n in self._nodes.values()),
        )

    async def reset(self) -> None:
        """After a failover: see PoolManager.reset (psycopg_pool replaces the connections)."""
        await self._stop_tasks()
        for node in self._nodes.values():
            await node.pool.drain()
        self.router.reset()
        self._base.reset_positions()
        logger.warning("pool %s reset: connections closed, replica states forgotten",
                       self.settings.name)
        if self._open:
            self._start_tasks()
            if self._replicas:
                await self._monitor_round()

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        probes, self._probes = self._probes, {}
        for conn in probes.values():
            await conn.close()

    async def shutdown(self) -> None:
        """Cancel the background tasks and close every pool."""
        await self._stop_tasks()
        for node in self._nodes.values():
            await node.pool.close()
        self._open = False
        self._base._unregister_metrics()
