"""Trend analysis: a straight line through each check's recent values, and when it crosses the
check's threshold ("transaction-ID age reaches 50% in ~9 days", "connections reach 80% in ~40
minutes"). Pure: points in, forecasts out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from dbops.health.result import HealthReport
from dbops.units import format_age, format_duration

MIN_POINTS = 5
MIN_FIT = 0.5
"""A line explaining less than half the variance (r²) is noise, not a trend."""
HORIZON = 365 * 86400.0
WINDOWS = {"xid_wraparound": 7 * 86400.0}
"""Seconds of history a check's line is fitted to: slow figures get a week, the rest an hour."""
DEFAULT_WINDOW = 3600.0
LOWER_IS_WORSE = frozenset({"cache_hit_ratio"})
RATIOS = frozenset({"connection_utilization", "role_connections", "xid_wraparound", "error_rate",
                    "cache_hit_ratio", "pool_utilization", "pool_error_rate"})
SECONDS = frozenset({"connectivity", "idle_in_transaction", "long_transaction", "long_query",
                     "blocked_sessions", "replication_lag"})
_LABELS = {
    "connection_utilization": "connections", "xid_wraparound": "transaction-ID age",
    "idle_in_transaction": "the oldest idle transaction", "long_transaction":
    "the oldest transaction", "long_query": "the longest query", "blocked_sessions":
    "the longest lock wait", "error_rate": "the rollback rate", "connectivity": "the round trip",
    "cache_hit_ratio": "the cache hit ratio", "pool_utilization": "pool use",
    "pool_error_rate": "the pool's error rate",
}


@dataclass(frozen=True)
class Trend:
    check: str
    slope: float
    """Change of the value per second."""
    current: float
    """The fitted value now."""
    threshold: float
    eta: float
    """Seconds until the line reaches the threshold."""
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"check": self.check, "slope_per_second": self.slope, "current": self.current,
                "threshold": self.threshold, "eta_seconds": round(self.eta, 1),
                "message": self.message}


def label(check: str) -> str:
    kind, _, subject = check.partition(".")
    if kind == "replication_lag":
        return f"{subject}'s replication lag"
    if kind == "role_connections":
        return f"{subject}'s connections"
    return _LABELS.get(kind, check)


def spell(check: str, value: float) -> str:
    kind = check.partition(".")[0]
    if kind in RATIOS:
        return f"{value:.0%}"
    if kind in SECONDS:
        return format_duration(timedelta(seconds=round(value, 3)))
    return f"{value:g}"


def forecast(check: str, points: Sequence[tuple[float, float]], threshold: float,
             now: float) -> Trend | None:
    """The line through `points` (epoch seconds, value) and when it reaches `threshold`; None
    when there is no convincing trend towards it within a year, or it is already past."""
    if len(points) < MIN_POINTS or threshold <= 0:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    var_v = sum((v - mean_v) ** 2 for _, v in points)
    if var_t == 0 or var_v == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    slope = cov / var_t
    if cov * cov / (var_t * var_v) < MIN_FIT:
        return None
    current = mean_v + slope * (now - mean_t)
    lower = check.partition(".")[0] in LOWER_IS_WORSE
    toward = -slope if lower else slope
    gap = current - threshold if lower else threshold - current
    if toward <= 0 or gap <= 0:
        return None
    eta = gap / toward
    if eta > HORIZON:
        return None
    name = label(check)
    plural = name.endswith("connections")
    verb = ("fall to" if plural else "falls to") if lower else ("reach" if plural else "reaches")
    return Trend(check, slope, current, threshold, eta,
                 f"{name} {verb} {spell(check, threshold)} in ~{format_age(eta)}")


def trends(reports: Iterable[HealthReport], now: float) -> list[Trend]:
    """A forecast for every check whose recent values head for its threshold."""
    series: dict[str, list[tuple[float, float]]] = {}
    thresholds: dict[str, float] = {}
    for report in reports:
        at = report.checked_at.timestamp()
        for result in report.results:
            if result.value is None or result.threshold is None:
                continue
            if at < now - WINDOWS.get(result.kind, DEFAULT_WINDOW):
                continue
            series.setdefault(result.name, []).append((at, float(result.value)))
            thresholds[result.name] = result.threshold
    found = [forecast(name, points, thresholds[name], now) for name, points in series.items()]
    return sorted((t for t in found if t is not None), key=lambda t: t.eta)
