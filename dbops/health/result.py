"""The values health checks produce: one CheckResult per check, one HealthReport per cycle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dbops.health.probe import Counters, ServerIdentity

Status = Literal["ok", "warning", "critical"]
STATUSES: tuple[Status, ...] = ("ok", "warning", "critical")
WARNING_SHARE = 0.8
"""A check warns at 80 % of its threshold and is critical above it."""

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


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=STATUSES.index, default="ok")


def status_of(value: float, threshold: float) -> Status:
    """Higher is worse: critical above the threshold, warning above 80 % of it."""
    if value > threshold:
        return "critical"
    return "warning" if value > threshold * WARNING_SHARE else "ok"


def seconds(value: float) -> str:
    """A duration for a message: `250ms`, `7.5s`, `12m 3s`, `2h 5m`."""
    if value <= 0:
        return "0s"
    if value < 0.01:
        return f"{value * 1000:.1f}ms"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 120:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


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
