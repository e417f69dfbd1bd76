"""What get_pool_stats, get_performance_metrics and get_health_status return: plain, typed
values built from the pools' gauges and counters and the router's replica states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from dbops.levels import SEED_WORDS, SeedWord, Status
from dbops.pool.metrics import Gauges, Histogram, NodeMetrics, Throughput
from dbops.pool.routing import PRIMARY, ReplicaState

HealthLevel = SeedWord  # the seed's spelling of dbops.levels.Status


@dataclass(frozen=True)
class PoolStats(Gauges):
    """One server's pool now: its gauges (the sizes), and counters since open."""

    utilization: float
    acquires: int
    acquire_timeouts: int
    opened: int
    closed: int
    connect_errors: int
    leaks: int
    reclaimed: int
    reads_routed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PerformanceMetrics:
    """Totals over every pool of a manager; times in seconds (None until something was timed)."""

    queries: int
    errors: int
    error_rate: float
    slow_queries: int
    throughput: float
    recent_throughput: float
    query_time_avg: float | None
    query_time_p50: float | None
    query_time_p95: float | None
    query_time_p99: float | None
    acquire_wait_avg: float | None
    acquire_wait_p50: float | None
    acquire_wait_p99: float | None
    acquire_timeouts: int
    leaks: int
    utilization: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NodeHealth:
    """One server as the manager sees it. state: up, lagging, ejected or down."""

    node: str
    role: Literal["primary", "replica"]
    state: Literal["up", "lagging", "ejected", "down"]
    latency: float | None
    lag: float | None
    reason: str


@dataclass(frozen=True)
class HealthStatus:
    """The manager's health in dbops' one vocabulary (dbops.levels): ok: the primary answers
    and every replica takes reads; warning: a replica is out, a pool is exhausted with callers
    waiting or a leak is open; critical: the primary does not answer. `status` spells the
    same level as the seed did: healthy, degraded, unhealthy."""

    level: Status
    nodes: tuple[NodeHealth, ...]
    utilization: float
    open_leaks: int
    message: str

    @property
    def status(self) -> HealthLevel:
        return SEED_WORDS[self.level]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, **asdict(self)}


def pool_stats(metrics: NodeMetrics, g: Gauges) -> PoolStats:
    return PoolStats(
        **vars(g),
        utilization=g.in_use / g.max_size if g.max_size else 0.0,
        acquires=metrics.acquire_wait.count,
        acquire_timeouts=metrics.acquire_timeouts,
        opened=metrics.opened,
        closed=metrics.closed,
        connect_errors=metrics.connect_errors,
        leaks=metrics.leaks,
        reclaimed=metrics.reclaimed,
        reads_routed=metrics.reads_routed,
    )


def _merged(hists: Sequence[Histogram]) -> Histogram:
    total = Histogram()
    for h in hists:
        total.counts = [a + b for a, b in zip(total.counts, h.counts, strict=True)]
        total.sum += h.sum
    return total


def performance(
    nodes: Sequence[tuple[NodeMetrics, Gauges]], throughput: Throughput
) -> PerformanceMetrics:
    query_hists, wait_hists = [], []
    queries = errors = slow = timeouts = leaks = in_use = capacity = 0
    for m, g in nodes:
        with m.lock:
            copy = Histogram()
            copy.counts, copy.sum = list(m.query_time.counts), m.query_time.sum
            queries, errors, slow = queries + m.queries, errors + m.errors, slow + m.slow
        query_hists.append(copy)
        wait_hists.append(m.acquire_wait)
        timeouts, leaks = timeouts + m.acquire_timeouts, leaks + m.leaks
        in_use, capacity = in_use + g.in_use, capacity + g.max_size
    qh, wh = _merged(query_hists), _merged(wait_hists)
    lifetime, recent = throughput.rate(queries)
    return PerformanceMetrics(
        queries=queries,
        errors=errors,
        error_rate=errors / queries if queries else 0.0,
        slow_queries=slow,
        throughput=lifetime,
        recent_throughput=recent,
        query_time_avg=qh.sum / qh.count if qh.count else None,
        query_time_p50=qh.quantile(0.5),
        query_time_p95=qh.quantile(0.95),
        query_time_p99=qh.quantile(0.99),
        acquire_wait_avg=wh.sum / wh.count if wh.count else None,
        acquire_wait_p50=wh.quantile(0.5),
        acquire_wait_p99=wh.quantile(0.99),
        acquire_timeouts=timeouts,
        leaks=leaks,
        utilization=in_use / capacity if capacity else 0.0,
    )


def health(
    primary_latency: float | None,
    primary_error: str,
    replicas: Sequence[ReplicaState],
    max_lag: float,
    gauges: Sequence[Gauges],
    open_leaks: int,
) -> HealthStatus:
    nodes = [
        NodeHealth(
            PRIMARY,
            "primary",
            "up" if primary_error == "" else "down",
            primary_latency,
            None,
            primary_error,
        )
    ]
    for r in replicas:
        if not r.admitted:
            state: Literal["up", "lagging", "ejected", "down"] = "ejected"
        elif r.lag is None or r.lag > max_lag:
            state = "lagging"
        else:
            state = "up"
        nodes.append(NodeHealth(r.name, "replica", state, None, r.lag, r.reason))
    in_use = sum(g.in_use for g in gauges)
    capacity = sum(g.max_size for g in gauges)
    utilization = in_use / capacity if capacity else 0.0
    problems = [f"{n.node} {n.state}" + (f" ({n.reason})" if n.reason else "")
                for n in nodes if n.state != "up"]
    if any(g.in_use >= g.max_size and g.waiting for g in gauges):
        problems.append("a pool is exhausted with callers waiting")
    if open_leaks:
        problems.append(f"{open_leaks} connection(s) held past leak_detection_threshold")
    if primary_error:
        level: Status = "critical"
    else:
        level = "warning" if problems else "ok"
    return HealthStatus(
        level=level,
        nodes=tuple(nodes),
        utilization=utilization,
        open_leaks=open_leaks,
        message="; ".join(problems) or "all servers up",
    )
