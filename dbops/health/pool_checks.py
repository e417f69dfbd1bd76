"""Checks of an attached connection pool, read from its metrics; what the monitor needs from one.

The runtime PoolManager (dbops/pool) satisfies `AttachedPool`; so does any object with the two
methods. `get_pool_stats()` may return either

- one pool's figures, flat: `{"size": 4, "in_use": 3, ...}` (psycopg_pool's `get_stats()`
  spelling works too), checked as `pool_utilization`, `pool_waiting`, ...; or
- per server, as the PoolManager does: `{"primary": PoolStats, "replica1": PoolStats}` (objects
  or mappings), checked per server as `pool_utilization.primary`, `pool_waiting.replica1`, ...

Failed and slow queries come from `get_performance_metrics()` when the pool has it (queries,
errors, slow_queries: cumulative), else from the flat figures. Figures are read by name:

| figure | names (first found wins) | meaning |
|---|---|---|
| size | size, pool_size | connections open now |
| max_size | max_size, pool_max (else the plan's pool.max_size) | most the pool may open |
| in_use | in_use; else pool_size - pool_available | connections lent out now |
| waiting | waiting, requests_waiting | requests waiting for a connection now |
| requests | queries, requests, requests_num, acquires | attempts (cumulative) |
| errors | errors, requests_errors; else acquire_timeouts + connect_errors | failures (cumulative) |
| slow_queries | slow_queries | queries slower than pool.slow_query_threshold (cumulative) |
| leaks | leaks, leaked | connections detected held past leak_detection_threshold (cumulative) |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dbops.config.model import Pool as PoolPlan
from dbops.config.model import Thresholds
from dbops.config.units import format_duration
from dbops.health.evaluate import MIN_TRANSACTIONS
from dbops.health.result import CheckResult, Status, status_of


class AttachedPool(Protocol):
    """What health monitoring needs from a connection pool."""

    def get_pool_stats(self) -> Mapping[str, Any]:
        """Figures now, flat or per server (see the module's table)."""
        ...

    def reset(self) -> object:
        """Close every connection and open fresh ones (recovery calls it after a failover).
        An asyncio pool (AsyncPoolManager) returns a coroutine: recovery runs it on the pool's
        event loop, its `loop` attribute."""
        ...


@dataclass(frozen=True)
class PoolFigures:
    size: float | None = None
    max_size: float | None = None
    in_use: float | None = None
    waiting: float | None = None
    requests: float | None = None
    errors: float | None = None
    slow_queries: float | None = None
    leaks: float | None = None


@dataclass(frozen=True)
class PoolReading:
    """One reading of a pool: figures per server ("" for a flat pool) and the query totals."""

    servers: Mapping[str, PoolFigures]
    totals: PoolFigures


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(vars(value)) if hasattr(value, "__dict__") else {}


def _first(stats: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        if _number(stats.get(key)):
            return float(stats[key])
    return None


def figures(stats: Mapping[str, Any], plan: PoolPlan) -> PoolFigures:
    in_use = _first(stats, "in_use")
    if in_use is None and _number(stats.get("pool_size")) and _number(stats.get("pool_available")):
        in_use = float(stats["pool_size"]) - float(stats["pool_available"])
    errors = _first(stats, "errors", "requests_errors")
    if errors is None and _number(stats.get("acquire_timeouts")):
        errors = float(stats["acquire_timeouts"]) + float(stats.get("connect_errors") or 0)
    return PoolFigures(
        size=_first(stats, "size", "pool_size"),
        max_size=_first(stats, "max_size", "pool_max") or float(plan.max_size),
        in_use=in_use,
        waiting=_first(stats, "waiting", "requests_waiting"),
        requests=_first(stats, "queries", "requests", "requests_num", "acquires"),
        errors=errors,
        slow_queries=_first(stats, "slow_queries"),
        leaks=_first(stats, "leaks", "leaked"),
    )


def read_pool(pool: AttachedPool, plan: PoolPlan) -> PoolReading:
    stats = pool.get_pool_stats()
    if all(_number(v) or v is None for v in stats.values()):
        servers = {"": figures(stats, plan)}
        totals = servers[""]
    else:
        servers = {str(name): figures(_as_mapping(v), plan) for name, v in stats.items()}
        totals = PoolFigures()
    performance = getattr(pool, "get_performance_metrics", None)
    if callable(performance):
        totals = figures(_as_mapping(performance()), plan)
    return PoolReading(servers, totals)


def _delta(now: float | None, before: float | None) -> float | None:
    """Growth of a cumulative figure; the whole figure when there is no earlier one or it reset."""
    if now is None:
        return None
    return now - before if before is not None and now >= before else now


def evaluate_pool(now: PoolReading, before: PoolReading | None, t: Thresholds,
                  plan: PoolPlan) -> list[CheckResult]:
    results: list[CheckResult] = []
    window = "since the last check" if before else "so far"
    for server, fig in now.servers.items():
        earlier = before.servers.get(server) if before else None
        leaks = _delta(fig.leaks, earlier.leaks if earlier else None)
        results += _server_checks(f".{server}" if server else "", fig, leaks, window, t, plan)
    prior = before.totals if before else PoolFigures()
    requests = _delta(now.totals.requests, prior.requests)
    errors = _delta(now.totals.errors, prior.errors)
    if requests is not None and errors is not None:
        rate = errors / requests if requests else 0.0
        judged = requests >= MIN_TRANSACTIONS
        results.append(CheckResult(
            "pool_error_rate", rate, t.error_rate,
            status_of(rate, t.error_rate) if judged else "ok",
            f"{errors:.0f} of {requests:.0f} pool requests failed {window} ({rate:.1%}, "
            f"threshold {t.error_rate:.0%})" + ("" if judged else ": too few to judge")))
    slow = _delta(now.totals.slow_queries, prior.slow_queries)
    if slow is not None:
        results.append(CheckResult(
            "pool_slow_queries", slow, 0, "warning" if slow else "ok",
            f"{slow:.0f} quer{'y' if slow == 1 else 'ies'} slower than "
            f"{format_duration(plan.slow_query_threshold)} {window}",
            {"slow_queries_total": now.totals.slow_queries}))
    return results


def _server_checks(suffix: str, fig: PoolFigures, leaks: float | None, window: str,
                   t: Thresholds, plan: PoolPlan) -> list[CheckResult]:
    results: list[CheckResult] = []
    whose = f"the {suffix[1:]} pool" if suffix else "the pool"
    if fig.in_use is not None and fig.max_size:
        share = fig.in_use / fig.max_size
        results.append(CheckResult(
            f"pool_utilization{suffix}", share, t.connection_utilization,
            status_of(share, t.connection_utilization),
            f"{whose} lends {fig.in_use:.0f} of at most {fig.max_size:.0f} connections "
            f"({share:.0%}, threshold {t.connection_utilization:.0%})",
            {"in_use": fig.in_use, "size": fig.size, "max_size": fig.max_size}))
    if fig.waiting is not None:
        exhausted = bool(fig.waiting) and fig.in_use is not None and fig.in_use >= (fig.max_size or 0)
        status: Status = "critical" if exhausted else ("warning" if fig.waiting else "ok")
        text = (f"{fig.waiting:.0f} request(s) wait for a connection from {whose}"
                + ("; it is exhausted" if exhausted else ""))
        results.append(CheckResult(f"pool_waiting{suffix}", fig.waiting, 0, status,
                                   text if fig.waiting
                                   else f"no request waits for a connection from {whose}"))
    if leaks is not None:
        results.append(CheckResult(
            f"pool_leaks{suffix}", leaks, 0, "warning" if leaks else "ok",
            f"{leaks:.0f} connection(s) of {whose} held longer than "
            f"{format_duration(plan.leak_detection_threshold)} {window} (leaks)" if leaks
            else f"no connection of {whose} held past the leak threshold {window}",
            {"leaks_total": fig.leaks}))
    return results
