"""Temporary variant for bench_pool.py (issue 15, item 5): PoolManager's per-server store on
psycopg_pool.ConnectionPool instead of dbops' own, with the same bookkeeping per checkout
(holder record, acquire-wait histogram, statement timings folded on return, socket check), so the
two stores are compared under the same manager, side by side in one run."""

from __future__ import annotations

import threading
from bisect import bisect_left
from threading import get_ident
from time import perf_counter
from types import FrameType
from typing import Any, cast

from psycopg_pool import ConnectionPool
from psycopg_pool import PoolTimeout as PsycopgPoolTimeout

from dbops.pool import PoolManager
from dbops.pool.connection import InstrumentedCursor, PooledConnection, socket_is_quiet
from dbops.pool.errors import PoolExhausted
from dbops.pool.leaks import Held, LeakReport, leak_reports, overdue
from dbops.pool.metrics import BUCKETS, Gauges, NodeMetrics
from dbops.pool.settings import PoolSettings


class PsycopgPoolStore:
    """The Pool interface PoolManager uses, over one psycopg_pool.ConnectionPool."""

    def __init__(self, node: str, conninfo: dict[str, Any], settings: PoolSettings,
                 metrics: NodeMetrics, *, describe: str) -> None:
        self.node, self.metrics, self.describe = node, metrics, describe
        self.min_size, self.max_size = settings.min_size, settings.max_size
        self.target = self.max_size
        self._lock = threading.Lock()
        metrics.lock = self._lock
        self._holders: dict[int, Held] = {}
        self._reported: set[int] = set()
        self._ids = 0
        self.pool: ConnectionPool[PooledConnection] = ConnectionPool(
            kwargs={**conninfo, "autocommit": True, "cursor_factory": InstrumentedCursor},
            connection_class=PooledConnection, min_size=settings.min_size,
            max_size=settings.max_size, open=False, configure=self._configure,
            timeout=settings.acquire_timeout, max_idle=settings.max_idle,
            max_lifetime=settings.max_lifetime,
        )

    def _configure(self, conn: PooledConnection) -> None:
        with self._lock:
            self._ids += 1
            conn._dbops_id = self._ids
        conn._dbops_times = []
        conn._dbops_log_after = self.metrics.log_after
        conn._dbops_metrics = self.metrics
        conn._dbops_cursor = cast(InstrumentedCursor, conn.cursor())
        self.metrics.opened += 1

    def getconn(self, timeout: float, frame: FrameType | None, leak_check: bool = True,
                routed: bool = False) -> PooledConnection:
        started = perf_counter()
        while True:
            try:
                conn = self.pool.getconn(max(started + timeout - perf_counter(), 0.0))
            except PsycopgPoolTimeout:
                raise PoolExhausted(node=self.node, timeout=timeout, size=self.max_size,
                                    max_size=self.max_size, in_use=len(self._holders),
                                    waiting=0, holders=[]) from None
            if socket_is_quiet(conn):
                break
            conn.close()
            self.pool.putconn(conn)
        now = perf_counter()
        with self._lock:
            self._holders[conn._dbops_id] = (
                (now, frame.f_code, frame.f_lineno, get_ident(), leak_check, None)
                if frame is not None else (now, None, 0, get_ident(), leak_check, None))
            if frame is not None:
                waited = now - started
                self.metrics.acquire_wait.counts[bisect_left(BUCKETS, waited)] += 1
                self.metrics.acquire_wait.sum += waited
            if routed:
                self.metrics.reads_routed += 1
        return conn

    def try_getconn(self, frame: FrameType | None, leak_check: bool = True,
                    routed: bool = False) -> PooledConnection | None:
        return self.getconn(0.0, frame, leak_check, routed)

    def putconn(self, conn: PooledConnection) -> None:
        with self._lock:
            self._holders.pop(conn._dbops_id, None)
            if conn._dbops_times:
                self.metrics.fold(conn._dbops_times)
        self.pool.putconn(conn)

    def open(self) -> None:
        self.pool.open(wait=True)

    def maintain(self, now: float) -> None:
        pass  # psycopg_pool's own workers keep min_size, max_idle and max_lifetime

    def reclaim_collected(self) -> int:
        return 0

    def reclaim_overdue(self, now: float) -> int:
        return 0

    def scan_leaks(self, now: float, threshold: float) -> list[LeakReport]:
        with self._lock:
            due = overdue(self._holders.items(), self._reported, now, threshold)
        return leak_reports(self.node, due, now, threshold) if due else []

    def count_routed(self) -> None:
        with self._lock:
            self.metrics.reads_routed += 1

    def open_leaks(self) -> int:
        return len(self._reported)

    def discard_idle(self) -> None:
        self.pool.check()

    def fill(self) -> None:
        pass

    def gauges(self) -> Gauges:
        stats = self.pool.get_stats()
        return Gauges(node=self.node, size=stats.get("pool_size", 0),
                      idle=stats.get("pool_available", 0), in_use=len(self._holders),
                      waiting=stats.get("requests_waiting", 0), min_size=self.min_size,
                      max_size=self.max_size, target_size=self.target)

    def close(self) -> None:
        self.pool.close()


class PsycopgPoolManager(PoolManager):
    """PoolManager with psycopg_pool.ConnectionPool as each server's store."""

    _store = PsycopgPoolStore  # type: ignore[assignment]
