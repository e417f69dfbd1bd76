"""dbops: declarative PostgreSQL operations.

The runtime API is imported lazily, so `import dbops` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dbops.health.monitor import HealthMonitor
    from dbops.migrate.engine import MigrationEngine
    from dbops.pool import AsyncPoolManager, PoolManager

__all__ = ["AsyncPoolManager", "HealthMonitor", "MigrationEngine", "PoolManager", "__version__"]

_EXPORTS = {
    "MigrationEngine": "dbops.migrate.engine",
    "HealthMonitor": "dbops.health.monitor",
    "PoolManager": "dbops.pool",
    "AsyncPoolManager": "dbops.pool",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dbops' has no attribute {name!r}")
