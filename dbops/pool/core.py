"""The connection pool of one server: a lock, a condition and a stack of idle connections.

Why not psycopg_pool here: its checkout goes through a waiting queue with a per-client event
and background workers, and measured here it served about 0.6 × the queries/s of a bare
semaphore-guarded list of connections (bench/bench_pool.py). This pool keeps that bare shape:
one lock acquisition to check a connection out and one to return it, with the holder record,
the acquire-wait histogram and the utilisation integral updated inside those same sections.
Connections are opened on demand by the caller that needs one (up to the current target size)
and kept warm by the manager's maintenance thread (min_size, max_idle, max_lifetime).

Every pooled connection is in autocommit: a statement on its own is one round trip; a
transaction is an explicit `with conn.transaction():` (what PoolManager.transaction does).
A connection returned inside a transaction is rolled back (and a warning logged); one whose
server went away is discarded; a checkout skips any idle connection whose socket has something
to read (a terminated backend's goodbye), so connections killed while idle never reach a caller.
"""

from __future__ import annotations

import itertools
import logging
import math
import select
import threading
from time import perf_counter
from types import FrameType
from typing import Any, cast

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus

from dbops.connect import mask
from dbops.errors import ConnectionError
from dbops.pool.errors import PoolClosed, PoolExhausted
from dbops.pool.leaks import Checkout, LeakReport, find_leaks, returned_after_report
from dbops.pool.metrics import Gauges, NodeMetrics
from dbops.pool.settings import PoolSettings

logger = logging.getLogger("dbops.pool")

_IDLE = TransactionStatus.IDLE
_OK = ConnStatus.OK


class PooledConnection(psycopg.Connection[Any]):
    """A psycopg connection that knows its pool node, age and statement count."""

    _dbops_id: int
    _dbops_born: float
    _dbops_idle_since: float
    _dbops_statements: int
    _dbops_metrics: NodeMetrics


class InstrumentedCursor(psycopg.Cursor[Any]):
    """Times and counts every statement run through a pooled connection (conn.execute included)."""

    def execute(  # type: ignore[override]
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> InstrumentedCursor:
        conn = cast(PooledConnection, self._conn)
        started = perf_counter()
        try:
            super().execute(query, params, prepare=prepare, binary=binary)
        except BaseException:
            conn._dbops_metrics.statement(query, params, perf_counter() - started, True)
            raise
        conn._dbops_metrics.statement(query, params, perf_counter() - started, False)
        conn._dbops_statements += 1
        return self


def socket_is_quiet(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """True when an idle connection looks usable: status OK, not in a transaction, and nothing
    waiting on its socket (an idle backend sends nothing unless it is going away)."""
    pgconn = conn.pgconn
    if pgconn.status != _OK or pgconn.transaction_status != _IDLE:
        return False
    readable, _, _ = select.select((pgconn.socket,), (), (), 0)
    return not readable


class Pool:
    """Connections to one server ("primary" or a replica's name), with the holders of each."""

    def __init__(
        self,
        node: str,
        conninfo: dict[str, Any],
        settings: PoolSettings,
        metrics: NodeMetrics,
        *,
        describe: str,
    ) -> None:
        self.node = node
        self.describe = describe
        self.metrics = metrics
        self.min_size = settings.min_size
        self.max_size = settings.max_size
        self.dynamic = settings.dynamic_sizing
        self.target_utilization = settings.target_utilization
        self.max_idle = settings.max_idle
        self.max_lifetime = settings.max_lifetime
        self.target = max(self.min_size, 1) if self.dynamic else self.max_size
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle: list[PooledConnection] = []  # a stack: the most recently used is reused first
        self._holders: dict[int, Checkout] = {}
        self._size = 0  # open connections (idle or checked out) plus ones being opened
        self._waiting = 0
        self._closed = False
        self._ids = itertools.count(1)
        self._busy_area = 0.0  # ∫ in_use dt since _window_start, for the utilisation
        self._busy_mark = self._window_start = perf_counter()
        self._peak = 0
        self._waits = 0

    def getconn(
        self, timeout: float, frame: FrameType | None, *, leak_check: bool = True
    ) -> PooledConnection:
        """A usable connection within `timeout` seconds, recorded with its checkout site.

        Raises PoolExhausted (naming the holders) on timeout, ConnectionError when a new
        connection cannot be opened, PoolClosed after close().
        """
        started = perf_counter()
        while True:
            conn: PooledConnection | None = None
            with self._lock:
                while True:
                    if self._closed:
                        raise PoolClosed(f"the pool of {self.node} is closed")
                    if self._idle:
                        conn = self._idle.pop()
                        break
                    if self._size < self.target:
                        self._size += 1
                        break
                    if self.target < self.max_size:  # dynamic sizing: grow under wait pressure
                        self.target += 1
                        continue
                    now = perf_counter()
                    remaining = started + timeout - now
                    if remaining <= 0:
                        self.metrics.acquire_timeouts += 1
                        raise self._exhausted(timeout, now)
                    self._waiting += 1
                    self._waits += 1
                    try:
                        self._cond.wait(remaining)
                    finally:
                        self._waiting -= 1
                if conn is not None:
                    self._register(conn, perf_counter(), started, frame, leak_check)
            if conn is None:
                conn = self._open_reserved()
                with self._lock:
                    self._register(conn, perf_counter(), started, frame, leak_check)
                return conn
            if socket_is_quiet(conn) and perf_counter() - conn._dbops_born < self.max_lifetime:
                conn._dbops_statements = 0
                return conn
            self._drop(conn)  # killed while idle, or too old: forget it and look again

    def _register(
        self,
        conn: PooledConnection,
        now: float,
        started: float,
        frame: FrameType | None,
        leak_check: bool,
    ) -> None:
        """Record a checkout; the caller holds the lock."""
        holders = self._holders
        self._busy_area += len(holders) * (now - self._busy_mark)
        self._busy_mark = now
        holders[conn._dbops_id] = Checkout(
            conn._dbops_id, self.node, now, frame, leak_check=leak_check
        )
        if len(holders) > self._peak:
            self._peak = len(holders)
        self.metrics.acquires += 1
        self.metrics.acquire_wait.observe(now - started)

    def putconn(self, conn: PooledConnection) -> None:
        """Give a connection back: rolled back if left in a transaction, dropped if broken."""
        keep = True
        status = conn.pgconn.transaction_status
        if status != _IDLE:
            keep = self._reset(conn, status)
        elif conn.isolation_level is not None or conn.read_only is not None:
            conn.isolation_level = conn.read_only = None
        now = perf_counter()
        with self._lock:
            checkout = self._holders.pop(conn._dbops_id, None)
            self._busy_area += (len(self._holders) + 1) * (now - self._busy_mark)
            self._busy_mark = now
            if keep and not self._closed and self._size <= self.target:
                conn._dbops_idle_since = now
                self._idle.append(conn)
            else:
                keep = False
                self._size -= 1
            if self._waiting:
                self._cond.notify()
        if not keep:
            self._close(conn)
        if checkout is not None and checkout.reported:
            returned_after_report(checkout, now)

    def _reset(self, conn: PooledConnection, status: TransactionStatus) -> bool:
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            logger.warning(
                "a connection to %s was returned inside a transaction: rolled back", self.node
            )
            try:
                conn.rollback()
                conn.isolation_level = conn.read_only = None
                return True
            except psycopg.Error:
                return False
        return False  # UNKNOWN (connection lost) or ACTIVE (returned mid-statement)

    def _drop(self, conn: PooledConnection) -> None:
        """Forget a connection that was checked out by getconn but turned out unusable."""
        with self._lock:
            self._holders.pop(conn._dbops_id, None)
            self._size -= 1
            if self._waiting:
                self._cond.notify()
        self._close(conn)

    def _open_reserved(self) -> PooledConnection:
        """Open a connection for a slot already counted in _size (released again on failure)."""
        try:
            return self._connect()
        except BaseException:
            with self._lock:
                self._size -= 1
                if self._waiting:
                    self._cond.notify()
            raise

    def _connect(self) -> PooledConnection:
        try:
            conn = PooledConnection.connect(
                autocommit=True, cursor_factory=InstrumentedCursor, **self._conninfo
            )
        except psycopg.OperationalError as exc:
            self.metrics.connect_errors += 1
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ConnectionError(
                mask(f"cannot connect to {self.node} ({self.describe}): {reason}")
            ) from None
        now = perf_counter()
        conn._dbops_id = next(self._ids)
        conn._dbops_born = conn._dbops_idle_since = now
        conn._dbops_statements = 0
        conn._dbops_metrics = self.metrics
        self.metrics.opened += 1
        return conn

    def _close(self, conn: PooledConnection) -> None:
        self.metrics.closed += 1
        try:
            conn.close()
        except psycopg.Error:  # closing a connection whose server is gone
            pass

    def _exhausted(self, timeout: float, now: float) -> PoolExhausted:
        holders = [c.holder(now) for c in self._holders.values()]
        return PoolExhausted(
            node=self.node,
            timeout=timeout,
            size=self._size,
            max_size=self.max_size,
            in_use=len(self._holders),
            waiting=self._waiting,
            holders=holders,
        )

    def fill(self) -> None:
        """Open connections until min_size (and the target) are reached; stops at the first
        failure, which it raises."""
        while True:
            with self._lock:
                if self._closed or self._size >= min(self.min_size, self.target):
                    return
                self._size += 1
            conn = self._open_reserved()
            with self._lock:
                if self._closed:
                    self._size -= 1
                else:
                    self._idle.insert(0, conn)
                    conn = None  # type: ignore[assignment]
            if conn is not None:
                self._close(conn)

    def maintain(self, now: float) -> None:
        """Close idle connections past max_idle (above min_size), past max_lifetime, or above a
        shrunk target; adjust the target when sizing is dynamic; then refill to min_size."""
        if self.dynamic:
            self._resize(now)
        doomed: list[PooledConnection] = []
        with self._lock:
            keep: list[PooledConnection] = []
            for conn in self._idle:  # oldest returned first
                surplus = self._size - len(doomed) > max(self.min_size, 0)
                too_old = now - conn._dbops_born >= self.max_lifetime
                too_idle = surplus and now - conn._dbops_idle_since >= self.max_idle
                over = self._size - len(doomed) > self.target
                (doomed if too_old or too_idle or over else keep).append(conn)
            self._idle = keep
            self._size -= len(doomed)
        for conn in doomed:
            self._close(conn)
        try:
            self.fill()
        except ConnectionError as exc:
            logger.warning("%s", exc)

    def _resize(self, now: float) -> None:
        """Aim the target size at in-use / target_utilization over the last window: grow when
        callers waited or utilisation ran above target, shrink when it ran under half of it."""
        with self._lock:
            in_use = len(self._holders)
            elapsed = max(now - self._window_start, 1e-9)
            average = (self._busy_area + in_use * (now - self._busy_mark)) / elapsed
            utilisation = average / self.target
            wanted = math.ceil(self._peak / self.target_utilization)
            if self._waits or utilisation > self.target_utilization:
                new = max(self.target, wanted)
            elif utilisation < self.target_utilization / 2:
                new = min(self.target, wanted)
            else:
                new = self.target
            new = max(self.min_size, 1, min(self.max_size, new))
            if new != self.target:
                logger.info(
                    "pool %s: target size %d -> %d (utilisation %.0f%%, %d waits)",
                    self.node, self.target, new, utilisation * 100, self._waits,
                )
                self.target = new
            self._busy_area, self._busy_mark, self._window_start = 0.0, now, now
            self._peak, self._waits = in_use, 0

    def scan_leaks(self, now: float, threshold: float) -> list[LeakReport]:
        with self._lock:
            checkouts = list(self._holders.values())
        reports = find_leaks(checkouts, now, threshold)
        self.metrics.leaks += len(reports)
        return reports

    def discard_idle(self) -> None:
        """Close every idle connection (its server failed); new ones are opened on demand."""
        with self._lock:
            doomed, self._idle = self._idle, []
            self._size -= len(doomed)
        for conn in doomed:
            self._close(conn)

    def gauges(self) -> Gauges:
        with self._lock:
            return Gauges(
                node=self.node,
                size=self._size,
                idle=len(self._idle),
                in_use=len(self._holders),
                waiting=self._waiting,
                min_size=self.min_size,
                max_size=self.max_size,
                target_size=self.target,
            )

    def close(self) -> None:
        """Close idle connections now; checked-out ones are closed when returned; waiters fail."""
        with self._lock:
            self._closed = True
            doomed, self._idle = self._idle, []
            self._size -= len(doomed)
            self._cond.notify_all()
        for conn in doomed:
            self._close(conn)
