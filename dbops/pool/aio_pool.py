"""The async pool of one server for AsyncPoolManager: psycopg_pool's AsyncConnectionPool with
the holders of its connections (task and site), statement timing, a socket check on checkout,
exhaustion errors that name the holders, and dynamic sizing through resize()."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dbops.pool.connection import record_statement, socket_is_quiet
from dbops.pool.errors import PoolExhausted
from dbops.pool.leaks import Held, held, holder, returned_after_report
from dbops.pool.metrics import Gauges, NodeMetrics
from dbops.pool.settings import PoolSettings

_IDLE = psycopg.pq.TransactionStatus.IDLE
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


class AsyncPooledConnection(psycopg.AsyncConnection[Any]):
    """An async psycopg connection that knows its node metrics, id and statement count."""

    _dbops_id: int
    _dbops_times: list[float]  # durations of this checkout's statements; failed ones negated
    _dbops_log_after: float
    _dbops_metrics: NodeMetrics


class InstrumentedAsyncCursor(psycopg.AsyncCursor[Any]):
    """Times and counts every statement run through a pooled async connection."""

    async def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> InstrumentedAsyncCursor:
        conn = cast(AsyncPooledConnection, self._conn)
        started = perf_counter()
        try:
            await super().execute(query, params, prepare=prepare, binary=binary)
        except BaseException:
            record_statement(conn, query, params, perf_counter() - started, failed=True)
            raise
        record_statement(conn, query, params, perf_counter() - started, failed=False)
        return self


async def fetch_rows(cur: psycopg.AsyncCursor[Any]) -> list[Any]:
    result = cur.pgresult
    return await cur.fetchall() if result is not None and result.status == _TUPLES_OK else []


class AsyncNodePool:
    """One server's psycopg_pool pool, with the holders of its connections.

    `connect_failed(node, exc)` is told of every failed connection attempt (psycopg_pool
    retries them in the background, where the caller would otherwise never hear of them).
    """

    def __init__(
        self,
        node: str,
        conninfo: dict[str, Any],
        settings: PoolSettings,
        metrics: NodeMetrics,
        *,
        describe: str,
        connect_failed: Callable[[str, BaseException], None],
    ) -> None:
        self.node = node
        self.metrics = metrics
        self.describe = describe
        self._connect_failed_cb = connect_failed
        self.holders: dict[int, Held] = {}
        self.reported: set[int] = set()
        self.waiting = 0
        self.min_size = settings.min_size
        self.max_size = settings.max_size
        self.target = max(self.min_size, 1) if settings.dynamic_sizing else self.max_size
        self._ids = 0
        self._peak = 0
        self._waits = 0
        failed = self._connect_failed

        class NodeConnection(AsyncPooledConnection):
            @classmethod
            async def connect(cls, *args: Any, **kwargs: Any) -> Any:
                try:
                    return await super().connect(*args, **kwargs)
                except psycopg.OperationalError as exc:
                    failed(exc)
                    raise

        self.pool: AsyncConnectionPool[AsyncPooledConnection] = AsyncConnectionPool(
            kwargs={
                **conninfo,
                "autocommit": True,
                "cursor_factory": InstrumentedAsyncCursor,
            },
            connection_class=NodeConnection,
            min_size=min(settings.min_size, self.target),
            max_size=self.target,
            open=False,
            configure=self._configure,
            name=f"{settings.name}/{node}",
            timeout=settings.acquire_timeout,
            max_idle=settings.max_idle,
            max_lifetime=settings.max_lifetime,
            reconnect_timeout=max(settings.eject_backoff_max, 1.0),
        )

    def _connect_failed(self, exc: BaseException) -> None:
        self.metrics.connect_errors += 1
        self._connect_failed_cb(self.node, exc)

    async def _configure(self, conn: AsyncPooledConnection) -> None:
        self._ids += 1
        conn._dbops_id = self._ids
        conn._dbops_times = []
        conn._dbops_log_after = self.metrics.log_after
        conn._dbops_metrics = self.metrics
        self.metrics.opened += 1

    async def getconn(
        self, timeout: float, frame: Any, *, leak_check: bool
    ) -> AsyncPooledConnection:
        started = perf_counter()
        while True:
            remaining = started + timeout - perf_counter()
            busy = self.pool.get_stats().get("pool_available", 0) == 0
            if busy:
                self.waiting += 1
                self._waits += 1
                if self.target < self.max_size:  # dynamic sizing: grow under wait pressure
                    self.target += 1
                    await self.pool.resize(self.pool.min_size, self.target)
            try:
                conn = await self.pool.getconn(max(remaining, 0.0))
            except PoolTimeout:
                self.metrics.acquire_timeouts += 1
                raise self._exhausted(timeout, counted=busy) from None
            finally:
                if busy:
                    self.waiting -= 1
            if socket_is_quiet(conn):
                break
            await conn.close()  # killed while idle: psycopg_pool replaces a closed connection
            await self.pool.putconn(conn)
        now = perf_counter()
        self.holders[conn._dbops_id] = held(now, frame, leak_check, asyncio.current_task())
        self._peak = max(self._peak, len(self.holders))
        with self.metrics.lock:
            self.metrics.acquire_wait.observe(now - started)
        conn._dbops_times.clear()
        return conn

    async def putconn(self, conn: AsyncPooledConnection) -> None:
        record = self.holders.pop(conn._dbops_id, None)
        if conn._dbops_times:
            with self.metrics.lock:
                self.metrics.fold(conn._dbops_times)
        if conn.pgconn.transaction_status == _IDLE and (
            conn.isolation_level is not None or conn.read_only is not None
        ):
            await conn.set_isolation_level(None)
            await conn.set_read_only(None)
        await self.pool.putconn(conn)
        if conn._dbops_id in self.reported:
            self.reported.discard(conn._dbops_id)
            if record is not None:
                returned_after_report(self.node, record, perf_counter())

    def _exhausted(self, timeout: float, *, counted: bool) -> PoolExhausted:
        now = perf_counter()
        stats = self.pool.get_stats()
        return PoolExhausted(
            node=self.node,
            timeout=timeout,
            size=stats.get("pool_size", 0),
            max_size=self.max_size,
            in_use=len(self.holders),
            waiting=self.waiting - 1 if counted else self.waiting,  # others, not this caller
            holders=[holder(self.node, r, now) for r in self.holders.values()],
        )

    def gauges(self) -> Gauges:
        stats = self.pool.get_stats()
        return Gauges(
            node=self.node,
            size=stats.get("pool_size", 0),
            idle=stats.get("pool_available", 0),
            in_use=len(self.holders),
            waiting=stats.get("requests_waiting", 0),
            min_size=self.min_size,
            max_size=self.max_size,
            target_size=self.target,
        )

    async def resize_tick(self, target_utilization: float) -> None:
        """Shrink the pool's max toward peak use / target_utilization when it ran idle."""
        wanted = max(self.min_size, 1, min(self.max_size, int(self._peak / target_utilization + 0.999)))
        if not self._waits and wanted < self.target:
            self.target = wanted
            await self.pool.resize(min(self.pool.min_size, wanted), wanted)
        self._peak, self._waits = len(self.holders), 0
