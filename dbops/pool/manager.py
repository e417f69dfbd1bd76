"""PoolManager: the application's connections, from the plan, for threaded applications. A
primary pool plus one per read replica; reads go to replicas only when the caller says so; leaks
name their holder. The thread shell of `base.ManagerCore`: it runs the core's calls with
blocking I/O (`drive`) and keeps the background work in threads (`upkeep.Upkeep`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import psycopg

from dbops.pool.base import (
    UNRESOLVED,
    Intent,
    Isolation,
    ManagerCore,
    Written,
    check_intent,
    drive,
    isolation_level,
)
from dbops.pool.connection import PooledConnection
from dbops.pool.core import Caller, Pool
from dbops.pool.errors import connection_lost, reason_of
from dbops.pool.status import HealthStatus
from dbops.pool.transaction import TransactionBlock
from dbops.pool.transaction import run as run_transaction
from dbops.pool.upkeep import Upkeep

T = TypeVar("T")
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_KEEP_RESULT_ROWS = 1000


class _ThreadIO:
    """The core's I/O steps, blocking."""

    @staticmethod
    def run(conn: PooledConnection, sql: Any, params: Any, row_factory: Any) -> list[Any]:
        """Execute on `conn` and return the rows ([] without a result). The connection's own
        cursor is reused: creating a cursor per statement costs more than the pool's checkout."""
        cur = conn.cursor(row_factory=row_factory) if row_factory else conn._dbops_cursor
        cur.execute(sql, params)
        result = cur.pgresult
        if result is None or result.status != _TUPLES_OK:
            return []
        rows = cur.fetchall()
        if result.ntuples > _KEEP_RESULT_ROWS:  # do not keep a large result alive in the pool
            conn._dbops_cursor = cast(Any, conn.cursor())
        return rows

    @staticmethod
    def fetchone(conn: psycopg.Connection[Any], sql: str) -> tuple[Any, ...] | None:
        return psycopg.Cursor(conn).execute(sql).fetchone()

    @staticmethod
    def connect(kwargs: dict[str, Any]) -> psycopg.Connection[Any]:
        return psycopg.connect(autocommit=True, **kwargs)

    transact = staticmethod(run_transaction)
    sleep = staticmethod(time.sleep)


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
        m = self._manager
        self._pool, self._conn = m._checkout(
            self._intent, self._timeout, self._leak, self._after, sys._getframe(1), m.written()
        )
        return self._conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        m, pool, conn = self._manager, self._pool, self._conn
        if exc is not None and pool is not m._primary and connection_lost(exc, conn):
            m._eject(pool.node, reason_of(exc))
        # Conservatively, a write checkout marks a write whatever it ran (execute, executemany,
        # copy, pipeline, a server-side cursor): the caller's next read sees it.
        if self._intent == "write" and m._track_writes:
            m.written().lsn = UNRESOLVED
        pool.putconn(conn)


class PoolManager(ManagerCore):
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

    _store = Pool
    _io = _ThreadIO
    _not_open = "the PoolManager is not open: call open() (or use it in a with block)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._upkeep = Upkeep(self)

    def open(self) -> PoolManager:
        """Open min_size connections to the primary (raising PoolUnavailable, a dbops
        ConnectionError, if it cannot be reached) and to each replica (a replica that cannot be
        reached is ejected), measure the replicas once, and start the maintenance and
        replica-monitor threads."""
        if not self._open:
            drive(self._open_steps())
            self._upkeep.start()
        return self

    def __enter__(self) -> PoolManager:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def last_write_lsn(self) -> str | None:
        """The position this thread's reads must see (read-your-writes), as PostgreSQL spells
        LSNs; None before its first write (or without replicas to route to)."""
        return drive(self._last_write_steps())

    def connection(
        self, intent: Intent = "write", *, timeout: float | None = None,
        leak_detection: bool = True, after_lsn: str | None = None,
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
        self, sql: Any, params: Any = None, *, read_only: bool = False,
        timeout: float | None = None, row_factory: Any = None,
    ) -> list[Any]:
        """Run one statement and return its rows ([] for a statement without a result).

        read_only=True routes it like intent read, and a read whose server goes away is retried
        on the next candidate (ending on the primary). A write whose connection is lost raises
        ConnectionLost(may_have_committed=True) and is never sent again: the server may have
        run it before the session ended (57P01 included). SQL errors are psycopg's own.
        """
        return drive(self._query_steps(
            sql, params, read_only, timeout, row_factory, sys._getframe(1), self.written()
        ))

    @overload
    def transaction(
        self, fn: Callable[[PooledConnection], T], *, isolation: Isolation | None = None,
        retries: int = 3, read_only: bool = False, timeout: float | None = None,
    ) -> T: ...

    @overload
    def transaction(
        self, fn: None = None, *, isolation: Isolation | None = None,
        retries: int = 3, read_only: bool = False, timeout: float | None = None,
    ) -> TransactionBlock: ...

    def transaction(
        self, fn: Callable[[PooledConnection], T] | None = None, *,
        isolation: Isolation | None = None, retries: int = 3, read_only: bool = False,
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
        frame, written = sys._getframe(1), self.written()
        if fn is None:
            return TransactionBlock(self, level, read_only, timeout, frame, written)
        steps = self._transaction_steps(fn, level, retries, read_only, timeout, frame, written)
        return drive(steps)  # type: ignore[no-any-return]

    def _checkout(
        self, intent: Intent, timeout: float | None, leak_detection: bool,
        after_lsn: str | None, site: Caller, written: Written,
    ) -> tuple[Pool, PooledConnection]:
        return drive(self._checkout_steps(intent, timeout, leak_detection, after_lsn, site, written))

    def _release(self, pool: Pool, conn: PooledConnection, written: Written | None) -> None:
        drive(self._release_steps(pool, conn, written))

    def get_health_status(self) -> HealthStatus:
        """Checks the primary with SELECT 1 (timed) and reports the replicas as last probed."""
        return drive(self._health_steps())

    def reset(self) -> None:
        """After a failover (the health monitor's recovery calls it): close every idle
        connection now and each checked-out one when it is returned, forget the replicas'
        states, the primary's WAL history and every caller's read-your-writes position, then
        open min_size connections to whatever the endpoints reach now and measure the replicas
        again. A primary that cannot be reached yet is logged; calls reconnect on demand."""
        running = self._open
        self._upkeep.stop()
        drive(self._reset_steps(running))
        if running:
            self._upkeep.start()

    def shutdown(self) -> None:
        """Stop the background threads and close every pool; connections still checked out are
        closed when their holders return them."""
        self._upkeep.stop()
        self._close_pools()
