"""The async pool of one server for AsyncPoolManager: psycopg_pool's AsyncConnectionPool with
the holders of its connections (task and site), statement timing, a socket check on checkout,
exhaustion errors that name the holders, reclaim past leak_reclaim_after, and dynamic sizing
through resize(). A connection is given back to psycopg_pool even when the task returning it
is cancelled (the return finishes in a task of its own)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, cast

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dbops.connect import mask
from dbops.pool.connection import record_statement, socket_is_quiet
from dbops.pool.core import sever
from dbops.pool.errors import PoolExhausted, PoolUnavailable
from dbops.pool.leaks import Held, Site, held, holder, returned_after_report
from dbops.pool.metrics import Gauges, NodeMetrics
from dbops.pool.settings import PoolSettings

logger = logging.getLogger("dbops.pool")

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
        self._lent: dict[int, weakref.ref[AsyncPooledConnection]] = {}  # checked out now
        self._returning: set[asyncio.Task[None]] = set()
        self.reclaim_after = settings.leak_reclaim_after
        self.last_connect_error = ""
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
        self.last_connect_error = mask(" ".join(str(exc).split()))
        self._connect_failed_cb(self.node, exc)

    async def _configure(self, conn: AsyncPooledConnection) -> None:
        self._ids += 1
        conn._dbops_id = self._ids
        conn._dbops_times = []
        conn._dbops_log_after = self.metrics.log_after
        conn._dbops_metrics = self.metrics
        self.metrics.opened += 1

    async def getconn(
        self, timeout: float, site: Site | None, *, leak_check: bool
    ) -> AsyncPooledConnection:
        """A usable connection within `timeout`, recorded as held by `site` (None: the pool's
        own checkout, not counted as the application's). Raises PoolExhausted, or
        PoolUnavailable when no connection could be opened at all."""
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
                if self.gauges().size == 0 and self.last_connect_error:
                    raise PoolUnavailable(self.node, self._unavailable(timeout)) from None
                if site is not None:
                    self.metrics.acquire_timeouts += 1
                raise self._exhausted(timeout, counted=busy) from None
            finally:
                if busy:
                    self.waiting -= 1
            if socket_is_quiet(conn):
                break
            # Killed while idle: closed and given back (psycopg_pool replaces it), even if this
            # task is cancelled meanwhile.
            await self._give_back(conn, close=True)
        self._lend(conn, site, leak_check)
        if site is not None:
            with self.metrics.lock:
                self.metrics.acquire_wait.observe(perf_counter() - started)
        return conn

    async def try_getconn(
        self, timeout: float, site: Site | None, *, leak_check: bool
    ) -> AsyncPooledConnection | None:
        """A connection if one is free or can be opened within `timeout`, else None (nothing
        counted): a busy replica lets the read go to the next candidate."""
        stats = self.pool.get_stats()
        if stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= self.target:
            return None
        try:
            conn = await self.pool.getconn(timeout)
        except PoolTimeout:
            return None
        if not socket_is_quiet(conn):
            await self._give_back(conn, close=True)
            return None
        self._lend(conn, site, leak_check)
        return conn

    def _lend(self, conn: AsyncPooledConnection, site: Site | None, leak_check: bool) -> None:
        now = perf_counter()
        self.holders[conn._dbops_id] = held(now, site, leak_check, asyncio.current_task())
        self._lent[conn._dbops_id] = weakref.ref(conn)
        self._peak = max(self._peak, len(self.holders))
        conn._dbops_times.clear()

    def _unavailable(self, timeout: float) -> str:
        return (
            f"cannot connect to {self.node} ({self.describe}) within {timeout:.2f}s: "
            f"{self.last_connect_error}"
        )

    async def putconn(self, conn: AsyncPooledConnection) -> None:
        """Give a connection back (the return completes even if this task is cancelled); one
        reclaimed while held is not given back twice."""
        record = self.holders.pop(conn._dbops_id, None)
        self._lent.pop(conn._dbops_id, None)
        if conn._dbops_times:
            with self.metrics.lock:
                self.metrics.fold(conn._dbops_times)
        if record is None:  # reclaimed: psycopg_pool has had it back since
            return
        if conn._dbops_id in self.reported:
            self.reported.discard(conn._dbops_id)
            returned_after_report(self.node, record, perf_counter())
        await self._give_back(conn)

    def _give_back(self, conn: AsyncPooledConnection, *, close: bool = False) -> Awaitable[None]:
        """Return `conn` to psycopg_pool in a task of its own, awaited through a shield: a
        cancellation of the caller cannot leave it half-returned (and its slot lost)."""
        task = asyncio.get_running_loop().create_task(self._return(conn, close))
        self._returning.add(task)
        task.add_done_callback(self._returning.discard)
        return asyncio.shield(task)

    async def _return(self, conn: AsyncPooledConnection, close: bool) -> None:
        try:
            if close:
                await conn.close()
            elif conn.pgconn.transaction_status == _IDLE and (
                conn.isolation_level is not None or conn.read_only is not None
            ):
                await conn.set_isolation_level(None)
                await conn.set_read_only(None)
        except psycopg.Error:
            await conn.close()
        await self.pool.putconn(conn)

    async def reclaim_overdue(self, now: float) -> int:
        """With leak_reclaim_after, close the sessions of connections held longer than that
        (not those checked out with leak_detection=False) and give them back to psycopg_pool,
        which replaces them."""
        if self.reclaim_after <= 0:
            return 0
        due = [(i, r) for i, r in self.holders.items() if r[4] and now - r[0] >= self.reclaim_after]
        for conn_id, record in due:
            del self.holders[conn_id]
            self.reported.discard(conn_id)
            ref = self._lent.pop(conn_id, None)
            conn = ref() if ref is not None else None
            self.metrics.reclaimed += 1
            self.metrics.closed += 1
            logger.warning(
                "reclaimed a connection to %s (leak_reclaim_after %.2fs): %s; its session was "
                "closed and its slot freed", self.node, self.reclaim_after,
                holder(self.node, record, now),
            )
            if conn is not None:  # psycopg_pool replaces it: its socket is found shut at checkout
                sever(conn, cancel=False)
                await self._give_back(conn)
        return len(due)

    def _exhausted(self, timeout: float, *, counted: bool) -> PoolExhausted:
        """`counted`: this caller was counted in `waiting` (the others are reported)."""
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
