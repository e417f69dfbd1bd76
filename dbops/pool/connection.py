"""A pooled connection: psycopg's Connection with the pool's bookkeeping on it, a cursor that
times every statement, and the liveness check a checkout makes."""

from __future__ import annotations

import select
from time import perf_counter
from typing import Any

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus

from dbops.pool.metrics import NodeMetrics

_IDLE = TransactionStatus.IDLE
_OK = ConnStatus.OK


class Pooled:
    """The pool's bookkeeping on a connection (thread or asyncio): its id, age, generation,
    reused cursor and the statements of its current checkout."""

    _dbops_id: int
    _dbops_born: float
    _dbops_idle_since: float
    _dbops_times: list[float]  # durations of this checkout's statements; failed ones negated
    _dbops_log_after: float
    _dbops_metrics: NodeMetrics
    _dbops_cursor: Any
    _dbops_generation: int


class PooledConnection(Pooled, psycopg.Connection[Any]):
    """A psycopg connection that knows its pool, age, and the statements of its checkout."""


class Timed:
    """Times one statement of a checkout (`with Timed(conn, query, params):` around it), for
    its timings and, when slow enough, the statement log; shared by both cursors."""

    __slots__ = ("conn", "params", "query", "started")

    def __init__(self, conn: Any, query: Any, params: Any) -> None:
        self.conn, self.query, self.params = conn, query, params
        self.started = perf_counter()

    def __enter__(self) -> None:
        pass

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        record_statement(self.conn, self.query, self.params, perf_counter() - self.started,
                         failed=exc_type is not None)


_cursor_execute = psycopg.Cursor.execute


class InstrumentedCursor(psycopg.Cursor[Any]):
    """Times every statement run through a pooled connection (conn.execute included)."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> InstrumentedCursor:
        with Timed(self._conn, query, params):
            _cursor_execute(self, query, params, prepare=prepare, binary=binary)
        return self


def record_statement(conn: Any, query: Any, params: Any, elapsed: float, *, failed: bool) -> None:
    """One statement of a checkout, for its timings and (when slow enough) the statement log.
    `conn` carries the `_dbops_*` attributes (Pooled)."""
    conn._dbops_times.append(-elapsed if failed else elapsed)
    if elapsed >= conn._dbops_log_after:
        conn._dbops_metrics.log_statement(query, params, elapsed, failed)


def socket_is_quiet(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True when an idle connection looks usable: status OK, not in a transaction, and nothing
    waiting on its socket (an idle backend sends nothing unless it is going away)."""
    pgconn = conn.pgconn
    if pgconn.status != _OK or pgconn.transaction_status != _IDLE:
        return False
    readable, _, _ = select.select((pgconn.socket,), (), (), 0)
    return not readable
