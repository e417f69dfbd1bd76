"""PoolManager's background threads: maintenance (leak scan and reclaim, idle and lifetime
limits, dynamic sizing, throughput samples) and the replica monitor (WAL positions, lag, ejection
and re-admission). What each round does is the manager core's (`base.ManagerCore`); this module
only runs the rounds in threads. The monitor uses one connection of its own per server, outside
the pools: it measures at any application load and never shows in the pool metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING

from dbops.pool.base import drive

if TYPE_CHECKING:
    from dbops.pool.manager import PoolManager

logger = logging.getLogger("dbops.pool")


class Upkeep:
    """Starts and stops the two daemon threads of one manager."""

    def __init__(self, manager: PoolManager) -> None:
        self.manager = manager
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Measure the replicas once (so reads are routed from the first call), then start."""
        self._stop.clear()
        self._start("maintenance", self._maintenance_loop)
        if self.manager.router.replicas:
            drive(self.manager._monitor_steps())
            self._start("replica-monitor", self._monitor_loop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _start(self, what: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(
            target=target, name=f"dbops-pool-{self.manager.settings.name}-{what}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _maintenance_loop(self) -> None:
        tick = self.manager._maintenance_tick()
        while not self._stop.wait(tick):
            drive(self.manager._maintenance_steps(perf_counter()))

    def _monitor_loop(self) -> None:
        while not self._stop.wait(self.manager.settings.monitor_interval):
            try:
                drive(self.manager._monitor_steps())
            except Exception:  # the monitor must outlive any one bad round
                logger.exception("replica monitor round failed")
