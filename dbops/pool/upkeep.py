"""PoolManager's background threads: maintenance (leak scan and reclaim, idle and lifetime
limits, dynamic sizing, throughput samples) and the replica monitor (WAL positions, lag, ejection
and re-admission). The monitor uses one connection of its own per server, outside the pools: it
measures at any application load and never shows in the application's pool metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

import psycopg

from dbops.connect import mask
from dbops.pool.base import REPLICA_PROBE, WAL_FLUSH_LSN, ManagerBase, reason_of
from dbops.pool.core import Pool
from dbops.pool.leaks import deliver
from dbops.pool.routing import PRIMARY, parse_lsn

logger = logging.getLogger("dbops.pool")


def probe(pool: Pool, sql: str, wait: float) -> tuple[Any, ...] | None:
    """One row of `sql` on a connection of `pool` (the pool's own checkout: not leak-tracked,
    not counted as the application's acquire, not timed as a query)."""
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
        self._probes: dict[str, psycopg.Connection[Any]] = {}  # the monitor's own connections

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
        self.forget_servers()

    def forget_servers(self) -> None:
        """Close the monitor's connections (shutdown, or a failover: they reconnect)."""
        probes, self._probes = self._probes, {}
        for conn in probes.values():
            conn.close()

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
        for limit in (threshold, s.leak_reclaim_after):  # acted on within a quarter of it
            if limit > 0:
                tick = min(tick, max(limit / 4, 0.01))
        next_round = perf_counter() + s.maintenance_interval
        while not self._stop.wait(tick):
            now = perf_counter()
            for pool in self.pools.values():
                pool.reclaim_collected()
                pool.reclaim_overdue(now)
                if threshold > 0:
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

    def _probe(self, node: str, sql: str) -> tuple[Any, ...] | None:
        """One row of `sql` on the monitor's connection to `node`, (re)connecting as needed;
        raises psycopg.Error (the connection is dropped, so the next round reconnects)."""
        conn = self._probes.get(node)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = psycopg.connect(autocommit=True, **self.base.monitor_conninfo(node))
            except psycopg.OperationalError as exc:
                where = self.base.endpoints[node].describe()
                raise psycopg.OperationalError(
                    mask(f"cannot connect to {node} ({where}): {reason_of(exc)}")
                ) from None
            self._probes[node] = conn
        try:
            return conn.execute(sql).fetchone()
        except psycopg.Error:
            self._probes.pop(node, None)
            conn.close()
            raise

    def monitor_round(self) -> None:
        """Sample the primary's WAL position, then probe each replica that is admitted or due
        after its backoff: in recovery and answering re-admits it, failing ejects it."""
        try:
            row = self._probe(PRIMARY, WAL_FLUSH_LSN)
            if row and row[0]:
                self.router.observe_primary(
                    parse_lsn(row[0]), perf_counter(), int(row[1]), int(row[2])
                )
        except psycopg.Error as exc:
            logger.debug("primary WAL sample skipped: %s", mask(reason_of(exc)))
        for name in self.router.due_for_probe(perf_counter()):
            try:
                row = self._probe(name, REPLICA_PROBE)
            except psycopg.Error as exc:
                self.eject(name, mask(reason_of(exc)))
                continue
            if not row or not row[0]:
                self.eject(name, "not in recovery (promoted?): reads there could be inconsistent")
                continue
            self.router.observe_replica(
                name,
                parse_lsn(row[1]) if row[1] else None,
                perf_counter(),
                float(row[2]) if row[2] is not None else None,
            )
