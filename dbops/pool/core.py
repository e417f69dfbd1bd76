"""The connection pool of one server: a lock, a condition and a stack of idle connections.

Why not psycopg_pool for threads: its checkout goes through a queue of waiting clients, each
with its own event, and background workers that add and return connections, which costs time
per checkout and spreads the waits (bench/bench_pool.py measures both side by side with a bare
semaphore-guarded list of connections). This pool keeps the bare shape: one lock acquisition to
check a connection out and one to give it back, with the holder record (a tuple), the
acquire-wait histogram, the statement timings gathered on the connection and the utilisation
integral all updated inside those same two sections. Connections are opened on demand by the
caller that needs one (up to the current target size) and kept warm by the manager's
maintenance thread (min_size, max_idle, max_lifetime).

Every pooled connection is in autocommit: a statement on its own is one round trip; a
transaction is an explicit `with conn.transaction():` (what PoolManager.transaction does).
A connection returned inside a transaction is rolled back (and a warning logged); one whose
server went away is discarded; a checkout skips an idle connection whose socket has something
to read (a terminated backend's goodbye), so connections killed while idle never reach a caller.

A checkout made without a frame is the pool's own (a probe, a read-your-writes position): it is
not counted in the acquire-wait histogram or the acquire timeouts, which are the application's.
A connection its holder dropped without returning it (garbage-collected) gives its slot back; with
leak_reclaim_after, one held longer than that is closed under its holder and its slot freed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import socket
import threading
import weakref
from bisect import bisect_left
from collections import deque
from threading import get_ident
from time import perf_counter
from types import FrameType
from typing import Any, cast

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus

from dbops.connect import mask
from dbops.pool.connection import InstrumentedCursor, PooledConnection, socket_is_quiet
from dbops.pool.errors import PoolClosed, PoolExhausted, PoolUnavailable
from dbops.pool.leaks import (
    Held,
    LeakReport,
    holder,
    leak_reports,
    overdue,
    returned_after_report,
)
from dbops.pool.metrics import BUCKETS, Gauges, NodeMetrics
from dbops.pool.settings import PoolSettings

logger = logging.getLogger("dbops.pool")

_IDLE = TransactionStatus.IDLE
_OK = ConnStatus.OK


def sever(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], *, cancel: bool = True
) -> None:
    """End a connection's session under its holder: cancel its statement (a blocking round
    trip: threads only) and shut its socket down (the server ends the session and rolls back;
    the holder's next call fails). Safe while the holder uses it from another thread: libpq's
    memory is freed only by the connection's own close()."""
    if cancel:
        with contextlib.suppress(Exception):
            conn.pgconn.get_cancel().cancel()
    with contextlib.suppress(Exception):
        fd = conn.pgconn.socket
        dup = socket.socket(fileno=os.dup(fd))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()


class _Waiter:
    """A caller in line: blocks on its own lock until a connection (or a slot to open one in)
    is handed to it."""

    __slots__ = ("conn", "frame", "leak_check", "lock", "routed", "slot", "started", "thread")

    def __init__(
        self, started: float, frame: FrameType | None, leak_check: bool, routed: bool, thread: int
    ) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.started, self.frame, self.leak_check = started, frame, leak_check
        self.routed, self.thread = routed, thread
        self.conn: PooledConnection | None = None
        self.slot = False


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
        self.reclaim_after = settings.leak_reclaim_after
        self.target = max(self.min_size, 1) if self.dynamic else self.max_size
        self._conninfo = conninfo
        self._lock = threading.Lock()
        metrics.lock = self._lock  # statement and wait metrics are folded in under the pool lock
        self._idle: list[PooledConnection] = []  # a stack: the most recently used is reused first
        self._holders: dict[int, Held] = {}
        self._reported: set[int] = set()  # ids of checkouts reported as leaks
        self._size = 0  # open connections (idle or checked out) plus ones being opened
        self._waiters: deque[_Waiter] = deque()  # callers in line, longest waiting first
        self._closed = True  # until open()
        self._ids = itertools.count(1)
        self._wait_counts = metrics.acquire_wait.counts
        self._busy_area = 0.0  # integral of in-use connections over time, for utilisation
        self._busy_mark = self._window_start = perf_counter()
        self._peak = 0
        self._waits = 0
        self._generation = 0  # bumped by discard_idle: older connections are not pooled again
        # Per open connection, its finalizer: it reports the connection's id to `_collected`
        # when the holder drops the connection without returning it (peek() finds it alive).
        self._finalizers: dict[int, weakref.finalize[Any, Any]] = {}
        self._collected: deque[int] = deque()  # appended by finalizers, drained under the lock

    def getconn(
        self,
        timeout: float,
        frame: FrameType | None,
        leak_check: bool = True,
        routed: bool = False,
    ) -> PooledConnection:
        """A usable connection within `timeout` seconds, recorded as held by the code running in
        `frame` (`routed`: a read the router sent here, counted). Raises PoolExhausted (naming
        the holders) on timeout, PoolUnavailable when a new connection cannot be opened,
        PoolClosed after close()."""
        started = perf_counter()
        with self._lock:
            if self._idle and not self._waiters and not self._closed:
                conn = self._idle.pop()
                self._register(conn, started, started, frame, leak_check, routed, get_ident())
            else:
                conn = None
        if conn is not None:
            if started - conn._dbops_born < self.max_lifetime and socket_is_quiet(conn):
                return conn
            self._drop(conn)
        conn = self._getconn_slow(started, timeout, frame, leak_check, routed)
        assert conn is not None
        return conn

    def try_getconn(
        self, frame: FrameType | None, leak_check: bool = True, routed: bool = False
    ) -> PooledConnection | None:
        """A usable connection if one is idle or may be opened now, else None (no waiting, no
        timeout counted): a busy replica lets the read go to the next candidate."""
        return self._getconn_slow(perf_counter(), None, frame, leak_check, routed)

    def _getconn_slow(
        self,
        started: float,
        timeout: float | None,
        frame: FrameType | None,
        leak_check: bool,
        routed: bool,
    ) -> PooledConnection | None:
        """Take an idle connection when nobody is queued, else open one while below the target
        (growing it up to max_size when sizing is dynamic), else queue: connections returned
        while callers wait are handed to the one waiting longest (no barging, no starvation).
        With timeout None, return None instead of queueing."""
        thread = get_ident()
        while True:
            conn: PooledConnection | None = None
            waiter: _Waiter | None = None
            if self._collected:
                self.reclaim_collected()
            with self._lock:
                if self._closed:
                    raise PoolClosed(f"the pool of {self.node} is closed")
                if self._idle and not self._waiters:
                    conn = self._idle.pop()
                    self._register(conn, perf_counter(), started, frame, leak_check, routed, thread)
                elif self._size < self.target or self.target < self.max_size:
                    self.target = max(self.target, self._size + 1)  # dynamic: grow under pressure
                    self._size += 1
                elif timeout is None:
                    return None
                else:
                    waiter = _Waiter(started, frame, leak_check, routed, thread)
                    self._waiters.append(waiter)
                    self._waits += 1
            if waiter is not None:
                assert timeout is not None
                conn = self._wait_in_line(waiter, started + timeout - perf_counter(), timeout)
                if conn is None:  # handed a slot to open a connection in
                    return self._open_for(started, frame, leak_check, routed, thread)
            elif conn is None:
                return self._open_for(started, frame, leak_check, routed, thread)
            if perf_counter() - conn._dbops_born < self.max_lifetime and socket_is_quiet(conn):
                return conn
            self._drop(conn)  # killed while idle, or too old: forget it and look again

    def _wait_in_line(
        self, waiter: _Waiter, remaining: float, timeout: float
    ) -> PooledConnection | None:
        """Block until a connection (or a slot) is handed to `waiter`; raises on timeout."""
        waiter.lock.acquire(timeout=max(remaining, 0.0))
        with self._lock:
            if waiter.conn is not None or waiter.slot:  # handed over, maybe just as time ran out
                return waiter.conn
            self._waiters.remove(waiter)
            if self._closed:
                raise PoolClosed(f"the pool of {self.node} is closed")
            if waiter.frame is not None:  # the application's checkout, not the pool's own
                self.metrics.acquire_timeouts += 1
            raise self._exhausted(timeout, perf_counter())

    def _open_for(
        self,
        started: float,
        frame: FrameType | None,
        leak_check: bool,
        routed: bool,
        thread: int,
    ) -> PooledConnection:
        """Open a connection in a slot already counted in _size and check it out."""
        conn = self._open_reserved()
        with self._lock:
            self._register(conn, perf_counter(), started, frame, leak_check, routed, thread)
        return conn

    def _register(
        self,
        conn: PooledConnection,
        now: float,
        started: float,
        frame: FrameType | None,
        leak_check: bool,
        routed: bool,
        thread: int,
    ) -> None:
        """Record a checkout; the caller holds the lock."""
        holders = self._holders
        self._busy_area += len(holders) * (now - self._busy_mark)
        self._busy_mark = now
        holders[conn._dbops_id] = (
            (now, frame.f_code, frame.f_lineno, thread, leak_check, None)
            if frame is not None
            else (now, None, 0, thread, leak_check, None)
        )
        if len(holders) > self._peak:
            self._peak = len(holders)
        if frame is not None:  # the application's checkout, not the pool's own
            waited = now - started
            self._wait_counts[bisect_left(BUCKETS, waited)] += 1
            self.metrics.acquire_wait.sum += waited
        if routed:
            self.metrics.reads_routed += 1

    def _hand_over(self, conn: PooledConnection, now: float) -> bool:
        """Give `conn` to the longest waiter, if any; the caller holds the lock."""
        if not self._waiters:
            return False
        w = self._waiters.popleft()
        self._register(conn, now, w.started, w.frame, w.leak_check, w.routed, w.thread)
        w.conn = conn
        w.lock.release()
        return True

    def _free_slot(self) -> None:
        """A connection closed: let the longest waiter open one in its place (lock held)."""
        if self._waiters and self._size < self.target and not self._closed:
            w = self._waiters.popleft()
            self._size += 1
            w.slot = True
            w.lock.release()

    def putconn(self, conn: PooledConnection) -> None:
        """Give a connection back: rolled back if left in a transaction, dropped if broken,
        handed to the longest waiter if anyone waits. One reclaimed while held is just closed."""
        keep = True
        if conn.pgconn.transaction_status != _IDLE:
            keep = self._reset(conn, conn.pgconn.transaction_status)
        now = perf_counter()
        with self._lock:
            record = self._holders.pop(conn._dbops_id, None)
            if conn._dbops_times:
                self.metrics.fold(conn._dbops_times)
            if record is None:  # reclaimed while its holder had it: its slot was freed then
                keep = leaked = False
            else:
                self._busy_area += (len(self._holders) + 1) * (now - self._busy_mark)
                self._busy_mark = now
                if (
                    keep
                    and self._size <= self.target
                    and conn._dbops_generation == self._generation
                    and not self._closed
                ):
                    if not self._hand_over(conn, now):
                        conn._dbops_idle_since = now
                        self._idle.append(conn)
                else:
                    keep = False
                    self._size -= 1
                    self._free_slot()
                leaked = bool(self._reported) and conn._dbops_id in self._reported
                if leaked:
                    self._reported.discard(conn._dbops_id)
        if not keep:
            self._close(conn, counted=record is not None)
        if leaked and record is not None:
            returned_after_report(self.node, record, now)

    def _reset(self, conn: PooledConnection, status: int) -> bool:
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
            held = self._holders.pop(conn._dbops_id, None) is not None
            if held:
                self._size -= 1
                self._free_slot()
        self._close(conn, counted=held)

    def _open_reserved(self) -> PooledConnection:
        """Open a connection for a slot already counted in _size (released again on failure)."""
        try:
            return self._connect()
        except BaseException:
            with self._lock:
                self._size -= 1
                self._free_slot()  # the next caller in line tries (and reports) for itself
            raise

    def _connect(self) -> PooledConnection:
        try:
            conn = PooledConnection.connect(
                autocommit=True, cursor_factory=InstrumentedCursor, **self._conninfo
            )
        except psycopg.OperationalError as exc:
            self.metrics.connect_errors += 1
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise PoolUnavailable(
                self.node, mask(f"cannot connect to {self.node} ({self.describe}): {reason}")
            ) from None
        now = perf_counter()
        conn._dbops_id = next(self._ids)
        finalizer = weakref.finalize(conn, self._collected.append, conn._dbops_id)
        finalizer.atexit = False
        self._finalizers[conn._dbops_id] = finalizer
        conn._dbops_born = conn._dbops_idle_since = now
        conn._dbops_times = []
        conn._dbops_log_after = self.metrics.log_after
        conn._dbops_metrics = self.metrics
        conn._dbops_cursor = cast(InstrumentedCursor, conn.cursor())
        conn._dbops_generation = self._generation
        self.metrics.opened += 1
        return conn

    def _close(self, conn: PooledConnection, counted: bool = True) -> None:
        """Close a connection; `counted`: it still held a slot (a reclaimed one was counted
        when it was reclaimed)."""
        finalizer = self._finalizers.pop(conn._dbops_id, None)
        if finalizer is not None:
            finalizer.detach()
        if counted:
            self.metrics.closed += 1
        with contextlib.suppress(psycopg.Error):  # closing a connection whose server is gone
            conn.close()

    def _exhausted(self, timeout: float, now: float) -> PoolExhausted:
        holders = [holder(self.node, record, now) for record in self._holders.values()]
        return PoolExhausted(
            node=self.node,
            timeout=timeout,
            size=self._size,
            max_size=self.max_size,
            in_use=len(self._holders),
            waiting=len(self._waiters),  # the others: the caller giving up has left the line
            holders=holders,
        )

    def open(self) -> None:
        """Accept checkouts and open min_size connections (raising the first failure)."""
        with self._lock:
            self._closed = False
        self.fill()

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
                pooled = not self._closed
                if pooled:
                    if not self._hand_over(conn, perf_counter()):
                        conn._dbops_idle_since = perf_counter()
                        self._idle.insert(0, conn)
                else:
                    self._size -= 1
            if not pooled:
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
        except PoolUnavailable as exc:
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
        """Leak reports for connections held past `threshold`, each reported once."""
        with self._lock:
            due = overdue(self._holders.items(), self._reported, now, threshold)
            self.metrics.leaks += len(due)
        return leak_reports(self.node, due, now, threshold) if due else []

    def reclaim_collected(self) -> int:
        """Free the slots of connections their holders dropped without returning them (the
        finalizer saw them garbage-collected; their sessions closed with them)."""
        freed: list[Held] = []
        with self._lock:
            while self._collected:
                conn_id = self._collected.popleft()
                self._finalizers.pop(conn_id, None)
                record = self._holders.pop(conn_id, None)
                if record is None:
                    continue
                self._reported.discard(conn_id)
                self._size -= 1
                self.metrics.closed += 1
                self.metrics.reclaimed += 1
                freed.append(record)
                self._free_slot()
        now = perf_counter()
        for record in freed:
            logger.warning(
                "reclaimed a connection to %s: its holder dropped it without returning it (it "
                "was %s); its slot freed", self.node, holder(self.node, record, now),
            )
        return len(freed)

    def reclaim_overdue(self, now: float) -> int:
        """With leak_reclaim_after, close connections held longer than that (not those checked
        out with leak_detection=False) under their holders and free their slots."""
        if self.reclaim_after <= 0:
            return 0
        taken: list[tuple[Held, PooledConnection | None]] = []
        with self._lock:
            for conn_id, record in list(self._holders.items()):
                if not record[4] or now - record[0] < self.reclaim_after:
                    continue
                del self._holders[conn_id]
                self._reported.discard(conn_id)
                finalizer = self._finalizers.pop(conn_id, None)
                alive = finalizer.peek() if finalizer is not None else None
                if finalizer is not None:
                    finalizer.detach()
                self._size -= 1
                self.metrics.closed += 1
                self.metrics.reclaimed += 1
                taken.append((record, cast(PooledConnection, alive[0]) if alive else None))
                self._free_slot()
        for record, conn in taken:
            if conn is not None:
                sever(conn)
            logger.warning(
                "reclaimed a connection to %s (leak_reclaim_after %.2fs): %s; its session was "
                "closed and its slot freed", self.node, self.reclaim_after,
                holder(self.node, record, now),
            )
        return len(taken)

    def count_routed(self) -> None:
        """Count a read served here after its read-your-writes check passed."""
        with self._lock:
            self.metrics.reads_routed += 1

    def open_leaks(self) -> int:
        """Connections reported as leaked and still not returned."""
        with self._lock:
            return len(self._reported)

    def discard_idle(self) -> None:
        """Close every idle connection (its server failed), and each checked-out one when it is
        returned; new ones are opened on demand."""
        with self._lock:
            self._generation += 1
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
                waiting=len(self._waiters),
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
            for waiter in self._waiters:  # they wake, see the pool closed and raise
                waiter.lock.release()
        for conn in doomed:
            self._close(conn)
