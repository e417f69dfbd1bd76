"""The asyncio shell of the connection store (`core.Store`): async connections with the pool's
bookkeeping on them, a cursor that times every statement, waits on a future, awaited connects and
rollbacks. A caller cancelled while waiting or connecting gives back what it was handed; a return
updates the store before its first await, so a cancelled return cannot lose a slot."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from time import perf_counter
from typing import Any

import psycopg

from dbops.pool.connection import Pooled, Timed
from dbops.pool.core import CONNECT, WAIT, Caller, Step, Store, Waiter

_IDLE = psycopg.pq.TransactionStatus.IDLE
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK


class AsyncPooledConnection(Pooled, psycopg.AsyncConnection[Any]):
    """An async psycopg connection that knows its pool, age, and the statements of its checkout."""


class InstrumentedAsyncCursor(psycopg.AsyncCursor[Any]):
    """Times every statement run through a pooled async connection."""

    async def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                      binary: bool | None = None) -> InstrumentedAsyncCursor:
        with Timed(self._conn, query, params):
            await super().execute(query, params, prepare=prepare, binary=binary)
        return self


async def fetch_rows(cur: psycopg.AsyncCursor[Any]) -> list[Any]:
    result = cur.pgresult
    return await cur.fetchall() if result is not None and result.status == _TUPLES_OK else []


class _TaskWaiter(Waiter):
    __slots__ = ("future",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class AsyncPool(Store):
    """The store for asyncio (one event loop): the holder of a checkout is its task."""

    sever_cancels = False  # a cancel request is a blocking round trip: the socket shutdown does

    def _waiter(self, *args: Any) -> Waiter:
        return _TaskWaiter(*args)

    async def _run(self, steps: Generator[Step, Any, Any]) -> Any:
        """Drive a slow path: answer each step with awaited I/O."""
        reply: Any = None
        failure: BaseException | None = None
        while True:
            try:
                step = steps.send(reply) if failure is None else steps.throw(failure)
            except StopIteration as done:
                return done.value
            reply, failure = None, None
            try:
                kind = step[0]
                if kind is WAIT:
                    await asyncio.wait((step[1].future,), timeout=max(step[2], 0.0))
                elif kind is CONNECT:
                    reply = await AsyncPooledConnection.connect(
                        autocommit=True, cursor_factory=InstrumentedAsyncCursor, **self.conninfo
                    )
                else:
                    reply = await _rollback(step[1])
            except BaseException as exc:
                failure = exc

    async def getconn(
        self, timeout: float, site: Caller, leak_check: bool = True, routed: bool = False
    ) -> AsyncPooledConnection:
        """A usable connection within `timeout` seconds, recorded as held by the current task
        at `site` (see Pool.getconn)."""
        started = perf_counter()
        task = asyncio.current_task()
        conn = self._take_idle(started, site, leak_check, routed, task)
        if conn is None:
            conn = await self._run(self._get(started, timeout, site, leak_check, routed, task))
        return conn  # type: ignore[no-any-return]

    async def try_getconn(
        self, site: Caller, leak_check: bool = True, routed: bool = False
    ) -> AsyncPooledConnection | None:
        """A connection if one is idle or may be opened now, else None (no waiting)."""
        steps = self._get(perf_counter(), None, site, leak_check, routed, asyncio.current_task())
        return await self._run(steps)  # type: ignore[no-any-return]

    async def putconn(self, conn: AsyncPooledConnection) -> None:
        if conn.pgconn.transaction_status == _IDLE:
            self._returned(conn, True)
        else:
            await self._run(self._put(conn))

    async def open(self) -> None:
        await self._run(self._open())

    async def fill(self) -> None:
        await self._run(self._fill())

    async def maintain(self, now: float) -> None:
        await self._run(self._maintain(now))


async def _rollback(conn: AsyncPooledConnection) -> bool:
    try:
        await conn.rollback()
        await conn.set_isolation_level(None)
        await conn.set_read_only(None)
        return True
    except psycopg.Error:
        return False
