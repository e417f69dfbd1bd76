"""Health: checks (one definition of healthy, shared by the apply gates, `dbops health` and the
monitor), the HealthMonitor with history, trends, alerts and guarded recovery, and the HTTP
endpoints. Imported lazily: the apply gates need only `checks`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops.lazy import exports

if TYPE_CHECKING:
    from dbops.health.checks import CheckResult, HealthReport, check_once, gate_checks
    from dbops.health.monitor import HealthMonitor, HealthSummary
    from dbops.health.pool_checks import AttachedPool

__all__ = ["AttachedPool", "CheckResult", "HealthMonitor", "HealthReport", "HealthSummary",
           "check_once", "gate_checks"]

__getattr__ = exports(__name__, {
    "AttachedPool": "dbops.health.pool_checks",
    "CheckResult": "dbops.health.checks",
    "HealthMonitor": "dbops.health.monitor",
    "HealthReport": "dbops.health.checks",
    "HealthSummary": "dbops.health.monitor",
    "check_once": "dbops.health.checks",
    "gate_checks": "dbops.health.checks",
})
