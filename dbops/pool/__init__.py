"""The runtime pool: PoolManager (threads) and AsyncPoolManager (asyncio), configured from the plan.

    from dbops.pool import PoolManager

    with PoolManager.from_plan("production") as pool:
        pool.query("UPDATE tasks SET status = %s WHERE id = %s", ("running", 7))
        rows = pool.query("SELECT status FROM tasks WHERE id = %s", (7,), read_only=True)
"""

from __future__ import annotations

from dbops.pool.aio import AsyncPoolManager
from dbops.pool.aio_pool import AsyncPooledConnection
from dbops.pool.connection import PooledConnection
from dbops.pool.errors import (
    ConnectionLost,
    Holder,
    PoolClosed,
    PoolConfigError,
    PoolError,
    PoolExhausted,
    PoolTimeout,
    PoolUnavailable,
)
from dbops.pool.leaks import LeakReport
from dbops.pool.manager import PoolManager
from dbops.pool.settings import PoolSettings, connection_budget, settings_from_plan
from dbops.pool.status import HealthStatus, NodeHealth, PerformanceMetrics, PoolStats

__all__ = [
    "AsyncPoolManager",
    "AsyncPooledConnection",
    "ConnectionLost",
    "HealthStatus",
    "Holder",
    "LeakReport",
    "NodeHealth",
    "PerformanceMetrics",
    "PoolClosed",
    "PoolConfigError",
    "PoolError",
    "PoolExhausted",
    "PoolManager",
    "PoolSettings",
    "PoolStats",
    "PoolTimeout",
    "PoolUnavailable",
    "PooledConnection",
    "connection_budget",
    "settings_from_plan",
]
