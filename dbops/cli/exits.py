"""Every exit code dbops returns, chosen here and nowhere else: domain code returns values (a
ChangeSet, a DriftReport, a HealthReport) and raises typed errors (dbops.errors); the commands map
them to the numbers below, which README's exit-code table documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbops.drift import DriftReport, Verdict
    from dbops.health.result import HealthReport, Status

EXIT_OK = 0
EXIT_ERROR = 1
"""Any error: a DbopsError, a usage error, a server refusal; also `dbops health` that could not
check."""
EXIT_CHANGES = 2
"""`dbops plan --diff`: the ChangeSet is not empty (and an apply that died left changes)."""
EXIT_INTERRUPTED = 130
"""As a shell reports a command stopped by Ctrl-C."""

DRIFT: Mapping[Verdict, int] = {"in sync": EXIT_OK, "out-of-band": 2, "pending only": 3}
HEALTH: Mapping[Status, int] = {"ok": EXIT_OK, "warning": 2, "critical": 3}
HEALTH_NOT_CHECKED = EXIT_ERROR
"""The checks could not run, or health checks are off in the plan. A database that cannot be
reached is critical (3): the check ran and found it down."""


def drift(report: DriftReport) -> int:
    """`dbops drift`: 0 in sync, 2 out-of-band drift, 3 pending configuration only."""
    return DRIFT[report.verdict]


def health(report: HealthReport | None) -> int:
    """`dbops health`: 0 healthy, 2 warning, 3 critical, 1 could not check (no report, or a
    report whose checks could not run)."""
    if report is None or report.error:
        return HEALTH_NOT_CHECKED
    return HEALTH[report.status]
