"""The connection store of one server, for both managers: a lock, a condition and a stack of
idle connections, written once without I/O; `Pool` (threads) and `aio_pool.AsyncPool` (asyncio)
are the shells that open, wait and roll back.

Why not psycopg_pool: its checkout goes through a queue of waiting clients, each with its own
event, and background workers that add and return connections, which costs time per checkout
and spreads the waits (bench/bench_pool.py runs PoolManager on both stores side by side: on
psycopg_pool it misses the 0.95 x minimal-pool target, see bench/README.md). This store keeps the
bare shape: one lock acquisition to check a connection out and one to give it back, with the
holder record (a tuple), the acquire-wait histogram, the statement timings gathered on the
connection and the utilisation integral all updated inside those same two sections. Connections
are opened on demand by the caller that needs one (up to the current target size) and kept warm
by the manager's maintenance (min_size, max_idle, max_lifetime).

The slow paths that do I/O (open a connection, wait in line, roll back a returned transaction)
are generators yielding `(CONNECT,)`, `(WAIT, waiter, seconds)` or `(ROLLBACK, conn)`; the
shell answers each with its own I/O (blocking or awaited) and sends the result back, as psycopg
drives its own generators. Everything else (closing a connection: libpq's finish, the socket
check, the bookkeeping) is the same for both and runs here.

Every pooled connection is in autocommit: a statement on its own is one round trip; a
transaction is an explicit `conn.transaction()`. A connection returned inside a transaction is
rolled back (and a warning logged); one whose server went away is discarded; a checkout skips an
idle connection whose socket has something to read (a terminated backend's goodbye), so
connections killed while idle never reach a caller.

A checkout made without a site is the pool's own (a probe, a read-your-writes position): it is
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
from collections.abc import Generator
from threading import get_ident
from time import perf_counter
from types import FrameType
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from dbops.connect import mask
from dbops.pool.connection import InstrumentedCursor, PooledConnection, socket_is_quiet
from dbops.pool.errors import PoolClosed, PoolExhausted, PoolUnavailable
from dbops.pool.leaks import (
    Held,
    LeakReport,
    Site,
    holder,
    leak_reports,
    overdue,
    returned_after_report,
)
from dbops.pool.metrics import BUCKETS, Gauges, NodeMetrics
from dbops.pool.settings import PoolSettings

logger = logging.getLogger("dbops.pool")

_IDLE = TransactionStatus.IDLE
_IN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR)

CONNECT, WAIT, ROLLBACK = "connect", "wait", "rollback"
Step = tuple[Any, ...]
Caller = FrameType | Site | None


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


class Waiter:
    """A caller in line: the store hands it a connection (or a slot to open one in) and wakes
    it; the shell decides how it sleeps (a lock for threads, a future for asyncio)."""

    __slots__ = ("conn", "leak_check", "routed", "site", "slot", "started", "task", "thread")

    def __init__(self, started: float, site: Caller, leak_check: bool, routed: bool,
                 thread: int, task: Any) -> None:
        self.started, self.site, self.leak_check = started, site, leak_check
        self.routed, self.thread, self.task = routed, thread, task
        self.conn: Any = None
        self.slot = False

    def wake(self) -> None:
        raise NotImplementedError


class Store:
    """Connections to one server ("primary" or a replica's name), with the holders of each."""

    sever_cancels = True  # threads may cancel a reclaimed statement (a blocking round trip)

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
        self.conninfo = conninfo
        self._lock = threading.Lock()
        metrics.lock = self._lock  # statement and wait metrics are folded in under the pool lock
        self._idle: list[Any] = []  # a stack: the most recently used is reused first
        self._holders: dict[int, Held] = {}
        self._reported: set[int] = set()  # ids of checkouts reported as leaks
        self._size = 0  # open connections (idle or checked out) plus ones being opened
        self._waiters: deque[Waiter] = deque()  # callers in line, longest waiting first
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

    def _waiter(self, started: float, site: Caller, leak_check: bool, routed: bool,
                thread: int, task: Any) -> Waiter:
        raise NotImplementedError

    def _take_idle(self, started: float, site: Caller, leak_check: bool, routed: bool,
                   task: Any) -> Any:
        """The fast path: the most recently returned connection when nobody is queued and it
        looks usable, else None (the caller takes the slow path)."""
        with self._lock:
            if not self._idle or self._waiters or self._closed:
                return None
            conn = self._idle.pop()
            self._register(conn, started, started, site, leak_check, routed, get_ident(), task)
        if self._usable(conn):
            return conn
        self._drop(conn)
        return None

    def _usable(self, conn: Any) -> bool:
        return bool(perf_counter() - conn._dbops_born < self.max_lifetime and socket_is_quiet(conn))

    def _get(
        self,
        started: float,
        timeout: float | None,
        site: Caller,
        leak_check: bool,
        routed: bool,
        task: Any,
    ) -> Generator[Step, Any, Any]:
        """Take an idle connection when nobody is queued, else open one while below the target
        (growing it up to max_size when sizing is dynamic), else queue: connections returned
        while callers wait are handed to the one waiting longest (no barging, no starvation).
        With timeout None, return None instead of queueing. Raises PoolExhausted (naming the
        holders) on timeout, PoolUnavailable when a connection cannot be opened, PoolClosed."""
        thread = get_ident()
        while True:
            conn: Any = None
            waiter: Waiter | None = None
            if self._collected:
                self.reclaim_collected()
            with self._lock:
                if self._closed:
                    raise PoolClosed(f"the pool of {self.node} is closed")
                if self._idle and not self._waiters:
                    conn = self._idle.pop()
                    self._register(conn, perf_counter(), started, site, leak_check, routed,
                                   thread, task)
                elif self._size < self.target or self.target < self.max_size:
                    self.target = max(self.target, self._size + 1)  # dynamic: grow under pressure
                    self._size += 1
                elif timeout is None:
                    return None
                else:
                    waiter = self._waiter(started, site, leak_check, routed, thread, task)
                    self._waiters.append(waiter)
                    self._waits += 1
            if waiter is not None:
                assert timeout is not None
                try:
                    yield WAIT, waiter, started + timeout - perf_counter()
                except BaseException:
                    self._abandon(waiter)
                    raise
                conn = self._waited(waiter, timeout)
            if conn is None:  # a slot to open a connection in
                conn = yield from self._open_reserved()
                with self._lock:
                    self._register(conn, perf_counter(), started, site, leak_check, routed,
                                   thread, task)
                return conn
            if self._usable(conn):
                return conn
            self._drop(conn)  # killed while idle, or too old: forget it and look again

    def _waited(self, waiter: Waiter, timeout: float) -> Any:
        """After the wait: the connection handed over, None for a slot; raises on timeout."""
        with self._lock:
            if waiter.conn is not None or waiter.slot:  # handed over, maybe just as time ran out
                return waiter.conn
            self._waiters.remove(waiter)
            if self._closed:
                raise PoolClosed(f"the pool of {self.node} is closed")
            if waiter.site is not None:  # the application's checkout, not the pool's own
                self.metrics.acquire_timeouts += 1
            raise self._exhausted(timeout, perf_counter())

    def _abandon(self, waiter: Waiter) -> None:
        """A caller left the line (cancelled, interrupted): give back what it was handed."""
        with self._lock:
            if waiter.conn is not None:
                conn, waiter.conn = waiter.conn, None
                self._holders.pop(conn._dbops_id, None)
                if not self._hand_over(conn, perf_counter()):
                    self._idle.append(conn)
            elif waiter.slot:
                self._size -= 1
                self._free_slot()
            else:
                self._waiters.remove(waiter)

    def _register(
        self,
        conn: Any,
        now: float,
        started: float,
        site: Caller,
        leak_check: bool,
        routed: bool,
        thread: int,
        task: Any,
    ) -> None:
        """Record a checkout; the caller holds the lock."""
        holders = self._holders
        self._busy_area += len(holders) * (now - self._busy_mark)
        self._busy_mark = now
        holders[conn._dbops_id] = (
            (now, site.f_code, site.f_lineno, thread, leak_check, task)
            if site is not None
            else (now, None, 0, thread, leak_check, task)
        )
        if len(holders) > self._peak:
            self._peak = len(holders)
        if site is not None:  # the application's checkout, not the pool's own
            waited = now - started
            self._wait_counts[bisect_left(BUCKETS, waited)] += 1
            self.metrics.acquire_wait.sum += waited
        if routed:
            self.metrics.reads_routed += 1

    def _hand_over(self, conn: Any, now: float) -> bool:
        """Give `conn` to the longest waiter, if any; the caller holds the lock."""
        if not self._waiters:
            return False
        w = self._waiters.popleft()
        self._register(conn, now, w.started, w.site, w.leak_check, w.routed, w.thread, w.task)
        w.conn = conn
        w.wake()
        return True

    def _free_slot(self) -> None:
        """A connection closed: let the longest waiter open one in its place (lock held)."""
        if self._waiters and self._size < self.target and not self._closed:
            w = self._waiters.popleft()
            self._size += 1
            w.slot = True
            w.wake()

    def _put(self, conn: Any) -> Generator[Step, Any, None]:
        """Give a connection back: rolled back if left in a transaction (ACTIVE or lost: dropped),
        then returned. The bookkeeping runs whatever happens to the rollback."""
        keep = True
        status = conn.pgconn.transaction_status
        if status != _IDLE:
            keep = False
            try:
                if status in _IN_TRANSACTION:
                    logger.warning(
                        "a connection to %s was returned inside a transaction: rolled back",
                        self.node,
                    )
                    keep = yield ROLLBACK, conn
            finally:
                self._returned(conn, keep)
            return
        self._returned(conn, keep)

    def _returned(self, conn: Any, keep: bool) -> None:
        """The bookkeeping of a return: handed to the longest waiter if anyone waits, else
        idle; dropped if not `keep`. One reclaimed while held is just closed."""
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

    def _drop(self, conn: Any) -> None:
        """Forget a connection that was checked out by getconn but turned out unusable."""
        with self._lock:
            held = self._holders.pop(conn._dbops_id, None) is not None
            if held:
                self._size -= 1
                self._free_slot()
        self._close(conn, counted=held)

    def _open_reserved(self) -> Generator[Step, Any, Any]:
        """Open a connection for a slot already counted in _size (released again on failure)."""
        try:
            conn = yield (CONNECT,)
        except BaseException as exc:
            with self._lock:
                self._size -= 1
                self._free_slot()  # the next caller in line tries (and reports) for itself
            if isinstance(exc, psycopg.OperationalError):
                self.metrics.connect_errors += 1
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise PoolUnavailable(
                    self.node, mask(f"cannot connect to {self.node} ({self.describe}): {reason}")
                ) from None
            raise
        now = perf_counter()
        conn._dbops_id = next(self._ids)
        finalizer = weakref.finalize(conn, self._collected.append, conn._dbops_id)
        finalizer.atexit = False
        self._finalizers[conn._dbops_id] = finalizer
        conn._dbops_born = conn._dbops_idle_since = now
        conn._dbops_times = []
        conn._dbops_log_after = self.metrics.log_after
        conn._dbops_metrics = self.metrics
        conn._dbops_cursor = conn.cursor()
        conn._dbops_generation = self._generation
        self.metrics.opened += 1
        return conn

    def _close(self, conn: Any, counted: bool = True) -> None:
        """Close a connection (libpq's finish: no round trip, the same for both shells);
        `counted`: it still held a slot (a reclaimed one was counted when it was reclaimed)."""
        finalizer = self._finalizers.pop(conn._dbops_id, None)
        if finalizer is not None:
            finalizer.detach()
        if counted:
            self.metrics.closed += 1
        with contextlib.suppress(psycopg.Error):  # closing a connection whose server is gone
            conn.pgconn.finish()

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

    def _fill(self) -> Generator[Step, Any, None]:
        """Accept checkouts (after open) and open connections until min_size (and the target)
        are reached; stops at the first failure, which it raises."""
        while True:
            with self._lock:
                if self._closed or self._size >= min(self.min_size, self.target):
                    return
                self._size += 1
            conn = yield from self._open_reserved()
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

    def _open(self) -> Generator[Step, Any, None]:
        """Accept checkouts and open min_size connections (raising the first failure)."""
        with self._lock:
            self._closed = False
        yield from self._fill()

    def _maintain(self, now: float) -> Generator[Step, Any, None]:
        """Close idle connections past max_idle (above min_size), past max_lifetime, or above a
        shrunk target; adjust the target when sizing is dynamic; then refill to min_size."""
        if self.dynamic:
            self._resize(now)
        doomed: list[Any] = []
        with self._lock:
            keep: list[Any] = []
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
            yield from self._fill()
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
        taken: list[tuple[Held, Any]] = []
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
                taken.append((record, alive[0] if alive else None))
                self._free_slot()
        for record, conn in taken:
            if conn is not None:
                sever(conn, cancel=self.sever_cancels)
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
                waiter.wake()
        for conn in doomed:
            self._close(conn)


class _ThreadWaiter(Waiter):
    __slots__ = ("lock",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lock = threading.Lock()
        self.lock.acquire()

    def wake(self) -> None:
        if self.lock.locked():
            self.lock.release()


class Pool(Store):
    """The store for threads: blocking connects, waits on a lock, blocking rollbacks."""

    def _waiter(self, *args: Any) -> Waiter:
        return _ThreadWaiter(*args)

    def _run(self, steps: Generator[Step, Any, Any]) -> Any:
        """Drive a slow path: answer each step with blocking I/O."""
        reply: Any = None
        failure: BaseException | None = None
        while True:
            try:
                step = steps.throw(failure) if failure is not None else steps.send(reply)
            except StopIteration as done:
                return done.value
            reply = failure = None
            try:
                if step[0] is WAIT:
                    step[1].lock.acquire(timeout=max(step[2], 0.0))
                elif step[0] is CONNECT:
                    reply = PooledConnection.connect(
                        autocommit=True, cursor_factory=InstrumentedCursor, **self.conninfo
                    )
                else:
                    reply = _rollback(step[1])
            except BaseException as exc:
                failure = exc

    def getconn(
        self, timeout: float, frame: Caller, leak_check: bool = True, routed: bool = False
    ) -> PooledConnection:
        """A usable connection within `timeout` seconds, recorded as held by the code running in
        `frame` (`routed`: a read the router sent here, counted)."""
        started = perf_counter()
        conn = self._take_idle(started, frame, leak_check, routed, None)
        if conn is None:
            conn = self._run(self._get(started, timeout, frame, leak_check, routed, None))
        return conn  # type: ignore[no-any-return]

    def try_getconn(
        self, frame: Caller, leak_check: bool = True, routed: bool = False
    ) -> PooledConnection | None:
        """A usable connection if one is idle or may be opened now, else None (no waiting, no
        timeout counted): a busy replica lets the read go to the next candidate."""
        return self._run(self._get(perf_counter(), None, frame, leak_check, routed, None))  # type: ignore[no-any-return]

    def putconn(self, conn: PooledConnection) -> None:
        if conn.pgconn.transaction_status == _IDLE:
            self._returned(conn, True)
        else:
            self._run(self._put(conn))

    def open(self) -> None:
        self._run(self._open())

    def fill(self) -> None:
        self._run(self._fill())

    def maintain(self, now: float) -> None:
        self._run(self._maintain(now))


def _rollback(conn: PooledConnection) -> bool:
    try:
        conn.rollback()
        conn.isolation_level = conn.read_only = None
        return True
    except psycopg.Error:
        return False
