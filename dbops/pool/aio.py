"""AsyncPoolManager: PoolManager's surface for asyncio. The asyncio shell of `base.ManagerCore`
on the same connection store (`aio_pool.AsyncPool`): the core's calls are awaited
(`drive_async`) and the background work runs in tasks. Read-your-writes and leak sites belong to
the code that calls a method: `query()`, `transaction()` and `connection()` take both when
called, so a write run through asyncio.wait_for, gather or a TaskGroup is seen by the caller's
next read."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any, TypeVar, overload

import psycopg

from dbops.pool.aio_pool import AsyncPool, AsyncPooledConnection, fetch_rows
from dbops.pool.base import (
    Intent,
    Isolation,
    ManagerCore,
    Written,
    check_intent,
    drive_async,
    isolation_level,
)
from dbops.pool.core import Caller
from dbops.pool.errors import connection_lost, reason_of
from dbops.pool.leaks import Site, site_of
from dbops.pool.status import HealthStatus
from dbops.pool.transaction import AsyncTransactionBlock, run_async

logger = logging.getLogger("dbops.pool")

T = TypeVar("T")


class _TaskIO:
    """The core's I/O steps, awaited."""

    @staticmethod
    async def run(conn: AsyncPooledConnection, sql: Any, params: Any, row_factory: Any) -> list[Any]:
        cur = conn.cursor(row_factory=row_factory) if row_factory else conn._dbops_cursor
        await cur.execute(sql, params)
        return await fetch_rows(cur)

    @staticmethod
    async def fetchone(conn: psycopg.AsyncConnection[Any], sql: str) -> tuple[Any, ...] | None:
        cur = await psycopg.AsyncCursor(conn).execute(sql)
        return await cur.fetchone()

    @staticmethod
    async def connect(kwargs: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(autocommit=True, **kwargs)

    transact = staticmethod(run_async)
    sleep = staticmethod(asyncio.sleep)


class AsyncCheckout:
    """What AsyncPoolManager.connection() returns: lends a connection for an `async with`.
    The caller's site and read-your-writes holder are taken when connection() is called."""

    __slots__ = ("_after", "_conn", "_intent", "_leak", "_manager", "_pool", "_site",
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
        self._written = manager.written()

    async def __aenter__(self) -> AsyncPooledConnection:
        self._pool, self._conn = await self._manager._checkout(
            self._intent, self._timeout, self._leak, self._after, self._site, self._written
        )
        return self._conn

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        m, pool, conn = self._manager, self._pool, self._conn
        if exc is not None and pool is not m._primary and connection_lost(exc, conn):
            m._eject(pool.node, reason_of(exc))
        # Conservatively, a write checkout marks a write whatever it ran.
        await m._release(pool, conn, self._written if self._intent == "write" else None)


class AsyncPoolManager(ManagerCore):
    """PoolManager for asyncio: the same methods, awaited (see PoolManager for the contracts).

        async with AsyncPoolManager.from_plan("production") as pool:
            await pool.transaction(start_task)
    """

    _store = AsyncPool
    _io = _TaskIO
    _not_open = "the AsyncPoolManager is not open: await open() (or async with)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the manager was opened in (the health monitor resets it there)."""

    async def open(self) -> AsyncPoolManager:
        """Connect (PoolUnavailable when the primary cannot be reached), fill min_size, measure
        the replicas once and start the maintenance and monitor tasks."""
        if not self._open:
            self.loop = asyncio.get_running_loop()
            await drive_async(self._open_steps())
            await self._start_tasks()
        return self

    async def _start_tasks(self) -> None:
        if self.router.replicas:
            await drive_async(self._monitor_steps())
            self._tasks.append(asyncio.create_task(self._monitor_loop()))
        self._tasks.append(asyncio.create_task(self._maintenance_loop()))

    async def __aenter__(self) -> AsyncPoolManager:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def last_write_lsn(self) -> str | None:
        """The position this task's reads must see (read-your-writes); None before its first
        write (or without replicas to route to)."""
        return await drive_async(self._last_write_steps())

    def connection(
        self, intent: Intent = "write", *, timeout: float | None = None,
        leak_detection: bool = True, after_lsn: str | None = None,
    ) -> AsyncCheckout:
        """An async context manager lending an autocommit connection for the block (routing as
        in PoolManager.connection)."""
        if intent != "write":
            check_intent(intent)
        return AsyncCheckout(
            self, intent, timeout, leak_detection, after_lsn, site_of(sys._getframe(1))
        )

    def query(
        self, sql: Any, params: Any = None, *, read_only: bool = False,
        timeout: float | None = None, row_factory: Any = None,
    ) -> Coroutine[Any, Any, list[Any]]:
        """One statement, its rows; reads retried on the next candidate when a server goes away,
        a write never sent twice (see PoolManager.query)."""
        site = site_of(sys._getframe(1))
        steps = self._query_steps(sql, params, read_only, timeout, row_factory, site, self.written())
        return drive_async(steps)

    @overload
    def transaction(
        self, fn: Callable[[AsyncPooledConnection], Awaitable[T]], *,
        isolation: Isolation | None = None, retries: int = 3, read_only: bool = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def transaction(
        self, fn: None = None, *, isolation: Isolation | None = None, retries: int = 3,
        read_only: bool = False, timeout: float | None = None,
    ) -> AsyncTransactionBlock: ...

    def transaction(
        self, fn: Callable[[AsyncPooledConnection], Awaitable[T]] | None = None, *,
        isolation: Isolation | None = None, retries: int = 3, read_only: bool = False,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, T] | AsyncTransactionBlock:
        """`await fn(conn)` in one transaction, retried like PoolManager.transaction; without
        `fn`, `async with pool.transaction() as conn:` runs the block once."""
        level = isolation_level(isolation)
        site, written = site_of(sys._getframe(1)), self.written()
        if fn is None:
            return AsyncTransactionBlock(self, level, read_only, timeout, site, written)
        return drive_async(
            self._transaction_steps(fn, level, retries, read_only, timeout, site, written)
        )

    async def _checkout(
        self, intent: Intent, timeout: float | None, leak_detection: bool,
        after_lsn: str | None, site: Caller, written: Written,
    ) -> tuple[AsyncPool, AsyncPooledConnection]:
        steps = self._checkout_steps(intent, timeout, leak_detection, after_lsn, site, written)
        return await drive_async(steps)

    async def _release(
        self, pool: AsyncPool, conn: AsyncPooledConnection, written: Written | None
    ) -> None:
        await drive_async(self._release_steps(pool, conn, written))

    async def get_health_status(self) -> HealthStatus:
        """See PoolManager.get_health_status."""
        return await drive_async(self._health_steps())

    async def reset(self) -> None:
        """After a failover: see PoolManager.reset."""
        running = self._open
        await self._stop_tasks()
        await drive_async(self._reset_steps(running))
        if running:
            await self._start_tasks()

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.monitor_interval)
            try:
                await drive_async(self._monitor_steps())
            except Exception:  # the monitor must outlive any one bad round
                logger.exception("replica monitor round failed")

    async def _maintenance_loop(self) -> None:
        tick = self._maintenance_tick()
        while True:
            await asyncio.sleep(tick)
            await drive_async(self._maintenance_steps(perf_counter()))

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def shutdown(self) -> None:
        """Cancel the background tasks and close every pool."""
        await self._stop_tasks()
        self._close_pools()
