"""One transaction on a pooled connection, for PoolManager.transaction and AsyncPoolManager's:
which stage it reached (so a lost connection says whether it may have committed, and a retry
is made only when nothing can have been applied), and BEGIN/COMMIT failures counted like any
failed statement. Also the `with pool.transaction() as conn:` forms."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import IsolationLevel

from dbops.pool.connection import PooledConnection, record_statement
from dbops.pool.errors import ConnectionLost, connection_lost, reason_of

if TYPE_CHECKING:
    from dbops.pool.aio import AsyncPoolManager
    from dbops.pool.aio_pool import AsyncPooledConnection
    from dbops.pool.base import Written
    from dbops.pool.manager import PoolManager

T = TypeVar("T")

BEGIN, BODY, COMMIT = "BEGIN", "the transaction's statements", "COMMIT"


class Stage:
    """How far one attempt got: BEGIN (nothing of the caller's sent yet), BODY, or COMMIT
    (sent: the server may have committed)."""

    __slots__ = ("name", "started")

    def __init__(self) -> None:
        self.name = BEGIN
        self.started = perf_counter()

    def enter(self, name: str) -> None:
        self.name, self.started = name, perf_counter()

    def failed(self, conn: Any) -> None:
        """The attempt raised: a failed BEGIN or COMMIT is counted as a failed statement (the
        body's statements are counted by the cursor)."""
        if self.name != BODY:
            record_statement(conn, self.name, None, perf_counter() - self.started, failed=True)


def lost(node: str, exc: BaseException, stage: Stage, read_only: bool) -> ConnectionLost:
    """The error for a connection lost during a transaction: only a lost COMMIT of a write may
    have committed; before COMMIT the server rolled the transaction back."""
    return ConnectionLost(
        node,
        f"{reason_of(exc)} (during {stage.name})",
        may_have_committed=stage.name == COMMIT and not read_only,
    )


def plain(conn: psycopg.Connection[Any]) -> None:
    """Back to the pool's defaults (autocommit, no isolation or read-only override)."""
    with contextlib.suppress(psycopg.Error):
        conn.isolation_level = conn.read_only = None


def run(
    conn: PooledConnection,
    fn: Callable[[PooledConnection], T],
    level: IsolationLevel | None,
    read_only: bool,
    stage: Stage,
) -> T:
    """`fn(conn)` in one transaction, committed when it returns; `stage` follows it."""
    try:
        conn.isolation_level = level
        conn.read_only = True if read_only else None
        with conn.transaction():
            stage.enter(BODY)
            result = fn(conn)
            stage.enter(COMMIT)
    except BaseException:
        stage.failed(conn)
        plain(conn)
        raise
    plain(conn)
    return result


async def run_async(
    conn: AsyncPooledConnection,
    fn: Callable[[AsyncPooledConnection], Awaitable[T]],
    level: IsolationLevel | None,
    read_only: bool,
    stage: Stage,
) -> T:
    """The asyncio twin of run()."""
    try:
        await conn.set_isolation_level(level)
        await conn.set_read_only(True if read_only else None)
        async with conn.transaction():
            stage.enter(BODY)
            result = await fn(conn)
            stage.enter(COMMIT)
    except BaseException:
        stage.failed(conn)
        await plain_async(conn)
        raise
    await plain_async(conn)
    return result


async def plain_async(conn: psycopg.AsyncConnection[Any]) -> None:
    """plain() for an async connection (no round trip: the connection is idle)."""
    with contextlib.suppress(psycopg.Error):
        await conn.set_isolation_level(None)
        await conn.set_read_only(None)


class _Block:
    """What both transaction blocks keep: the call's arguments, the checkout, its stage."""

    __slots__ = ("_conn", "_level", "_manager", "_pool", "_read_only", "_site", "_stage",
                 "_timeout", "_tx", "_written")
    _pool: Any
    _conn: Any
    _stage: Stage
    _tx: Any

    def __init__(self, manager: Any, level: IsolationLevel | None, read_only: bool,
                 timeout: float | None, site: Any, written: Written) -> None:
        self._manager, self._level, self._read_only = manager, level, read_only
        self._timeout, self._site, self._written = timeout, site, written

    def _checkout_args(self) -> tuple[Any, ...]:
        intent = "read" if self._read_only else "write"
        return intent, self._timeout, True, None, self._site, self._written

    def _marked(self) -> Written | None:
        """The caller's read-your-writes holder to mark on return (a write), else None."""
        return None if self._read_only else self._written

    def _raise_if_lost(self, exc: BaseException | None) -> None:
        """After the return: a lost connection raises ConnectionLost (from `exc`)."""
        m, pool, conn = self._manager, self._pool, self._conn
        if exc is not None and connection_lost(exc, conn):
            if pool is not m._primary:
                m._eject(pool.node, reason_of(exc))
            raise lost(pool.node, exc, self._stage, self._read_only) from exc


class TransactionBlock(_Block):
    """`with pool.transaction() as conn:`: one transaction, committed at the end of the block,
    rolled back when it raises. Not retried (a block cannot run twice); a lost connection raises
    ConnectionLost saying whether the COMMIT was sent."""

    _manager: PoolManager

    def __enter__(self) -> PooledConnection:
        self._pool, conn = self._manager._checkout(*self._checkout_args())
        self._conn, self._stage = conn, Stage()
        try:
            conn.isolation_level = self._level
            conn.read_only = True if self._read_only else None
            self._tx = conn.transaction()
            self._tx.__enter__()
        except BaseException as exc:
            self._stage.failed(conn)
            plain(conn)
            self._finish(exc)
            raise
        self._stage.enter(BODY)
        return conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        conn = self._conn
        if exc is None:
            self._stage.enter(COMMIT)
        try:
            self._tx.__exit__(exc_type, exc, tb)
        except BaseException as failure:
            self._stage.failed(conn)
            plain(conn)
            self._finish(failure)
            raise
        plain(conn)
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._manager._release(self._pool, self._conn, self._marked())
        self._raise_if_lost(exc)


class AsyncTransactionBlock(_Block):
    """`async with pool.transaction() as conn:` (see TransactionBlock)."""

    _manager: AsyncPoolManager

    async def __aenter__(self) -> AsyncPooledConnection:
        self._pool, conn = await self._manager._checkout(*self._checkout_args())
        self._conn, self._stage = conn, Stage()
        try:
            await conn.set_isolation_level(self._level)
            await conn.set_read_only(True if self._read_only else None)
            self._tx = conn.transaction()
            await self._tx.__aenter__()
        except BaseException as exc:
            self._stage.failed(conn)
            await plain_async(conn)
            await self._finish(exc)
            raise
        self._stage.enter(BODY)
        return conn

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self._stage.enter(COMMIT)
        try:
            await self._tx.__aexit__(exc_type, exc, tb)
        except BaseException as failure:
            self._stage.failed(self._conn)
            await plain_async(self._conn)
            await self._finish(failure)
            raise
        await plain_async(self._conn)
        await self._finish(exc)

    async def _finish(self, exc: BaseException | None) -> None:
        await self._manager._release(self._pool, self._conn, self._marked())
        self._raise_if_lost(exc)
