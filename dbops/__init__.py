"""dbops: declarative PostgreSQL operations.

The runtime API is imported lazily, so `import dbops` (and the CLI) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops.lazy import exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dbops.health.monitor import HealthMonitor
    from dbops.migrate.engine import MigrationEngine
    from dbops.pool import AsyncPoolManager, PoolManager

__all__ = ["AsyncPoolManager", "HealthMonitor", "MigrationEngine", "PoolManager", "__version__"]

__getattr__ = exports(__name__, {
    "MigrationEngine": "dbops.migrate.engine",
    "HealthMonitor": "dbops.health.monitor",
    "PoolManager": "dbops.pool",
    "AsyncPoolManager": "dbops.pool",
})
