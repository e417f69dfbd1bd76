"""PoolManager's background threads: maintenance (leak scan, idle and lifetime limits, dynamic
sizing, throughput samples) and the replica monitor (WAL positions, lag, ejection and
re-admission). Neither ever waits long for a pooled connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

import psycopg

from dbops.errors import ConnectionError
from dbops.pool.base import REPLICA_PROBE, WAL_FLUSH_LSN, ManagerBase, reason_of
from dbops.pool.core import Pool
from dbops.pool.errors import PoolExhausted
from dbops.pool.leaks import deliver
from dbops.pool.routing import PRIMARY, parse_lsn

logger = logging.getLogger("dbops.pool")


def probe(pool: Pool, sql: str, wait: float) -> tuple[Any, ...] | None:
    """One row of `sql` on a connection of `pool` (not leak-tracked, not timed as a query)."""
    conn = pool.getconn(wait, None, False)
    try:
        return psycopg.Cursor(conn).execute(sql).fetchone()
    finally:
        pool.putconn(conn)


class Upkeep:
    """Starts and stops the two daemon threads of one manager."""

    def __init__(
        self,
        base: ManagerBase,
        pools: dict[str, Pool],
        eject: Callable[[str, str], None],
    ) -> None:
        self.base, self.pools, self.eject = base, pools, eject
        self.settings, self.router = base.settings, base.router
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Measure the replicas once (so reads are routed from the first call), then start."""
        self._stop.clear()
        self._start("maintenance", self._maintenance_loop)
        if len(self.pools) > 1:
            self.monitor_round()
            self._start("replica-monitor", self._monitor_loop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _start(self, what: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(
            target=target, name=f"dbops-pool-{self.settings.name}-{what}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _maintenance_loop(self) -> None:
        s = self.settings
        threshold = s.leak_detection_threshold
        tick = s.maintenance_interval
        if threshold > 0:  # a leak is reported within a quarter of the threshold
            tick = min(tick, max(threshold / 4, 0.01))
        next_round = perf_counter() + s.maintenance_interval
        while not self._stop.wait(tick):
            now = perf_counter()
            if threshold > 0:
                for pool in self.pools.values():
                    for report in pool.scan_leaks(now, threshold):
                        deliver(report, self.base.leak_callbacks)
            if now >= next_round:
                next_round = now + s.maintenance_interval
                for node, pool in self.pools.items():
                    if node == PRIMARY or self.router.replicas[node].admitted:
                        pool.maintain(now)
                self.base.throughput.sample(sum(m.queries for m in self.base.metrics.values()))

    def _monitor_loop(self) -> None:
        while not self._stop.wait(self.settings.monitor_interval):
            try:
                self.monitor_round()
            except Exception:  # the monitor must outlive any one bad round
                logger.exception("replica monitor round failed")

    def monitor_round(self) -> None:
        """Sample the primary's WAL position, then probe each replica that is admitted or due
        after its backoff: in recovery and answering re-admits it, failing ejects it."""
        # Never queue behind the application: a busy pool skips this round's sample.
        wait = min(self.settings.acquire_timeout, self.settings.monitor_interval / 2)
        try:
            row = probe(self.pools[PRIMARY], WAL_FLUSH_LSN, wait)
            if row and row[0]:
                self.router.observe_primary(
                    parse_lsn(row[0]), perf_counter(), int(row[1]), int(row[2])
                )
        except (PoolExhausted, ConnectionError, psycopg.Error) as exc:
            logger.debug("primary WAL sample skipped: %s", exc)
        for name in self.router.due_for_probe(perf_counter()):
            try:
                row = probe(self.pools[name], REPLICA_PROBE, wait)
            except PoolExhausted:
                continue  # busy is not unhealthy
            except (ConnectionError, psycopg.Error) as exc:
                self.eject(name, reason_of(exc))
                continue
            if not row or not row[0]:
                self.eject(name, "not in recovery (promoted?): reads there could be inconsistent")
                continue
            self.router.observe_replica(name, parse_lsn(row[1]) if row[1] else None, perf_counter())
