"""The values health checks produce: one CheckResult per check, one HealthReport per cycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbops.health.probe import Counters, ServerIdentity
from dbops.levels import Status, worst

Detail = float | int | str | bool | None


@dataclass(frozen=True)
class CheckResult:
    """One check: the value read, the plan's threshold (same unit: seconds, a share, a count),
    a status and a one-line explanation. `name` is `kind` or `kind.subject` (a replica, a role)."""

    name: str
    value: float | None
    threshold: float | None
    status: Status
    message: str
    details: Mapping[str, Detail] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.name.partition(".")[0]

    @property
    def subject(self) -> str:
        return self.name.partition(".")[2]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "value": self.value,
                "threshold": self.threshold, "message": self.message,
                "details": dict(self.details)}


@dataclass(frozen=True)
class HealthReport:
    """One check cycle. `error` is set when the checks could not run (not the same as the
    database being down, which is a critical connectivity result)."""

    environment: str
    checked_at: datetime
    duration: float
    queries: int
    results: tuple[CheckResult, ...]
    identity: ServerIdentity | None = None
    counters: Counters | None = None
    error: str | None = None
    actions: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        return "critical" if self.error else worst(r.status for r in self.results)

    def result(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "environment": self.environment,
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "duration_ms": round(self.duration * 1000, 3),
            "queries": self.queries,
            "error": self.error,
            "checks": [r.to_dict() for r in self.results],
            "recovery": list(self.actions),
        }
