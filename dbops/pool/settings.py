"""What a PoolManager is built from: the plan's pool section (or explicit values), the servers,
and the role's connection budget. Pure: no I/O besides resolving the plan's endpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from dbops.config.budget import Budget
from dbops.config.budget import connection_budget as budget_of
from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.config.profiles import PROFILES
from dbops.connect import Endpoint, endpoint
from dbops.pool.errors import PoolConfigError
from dbops.units import parse_duration

Strategy = Literal["round_robin", "least_lag"]

_OLTP = PROFILES["oltp"]


def _seconds(value: str) -> float:
    return parse_duration(value).total_seconds()


@dataclass(frozen=True)
class PoolSettings:
    """Sizes, timeouts (seconds) and policies of one manager; every pool of it uses the same.

    Durations are float seconds here, the pool's one representation (it does arithmetic on
    time.monotonic()); the Plan holds timedelta, and settings_from_plan is the one boundary
    where they are converted.

    `max_size` is the most connections one pool (the primary's, or one replica's) opens, after the
    role's budget is applied; `budget` is that budget (None: the plan sets no role limit).
    Intervals ending in `_interval` and the backoffs are not in the plan: they default to values
    for production and tests shorten them.
    """

    name: str = "app"
    min_size: int = int(_OLTP["min_size"])
    max_size: int = int(_OLTP["max_size"])
    acquire_timeout: float = _seconds(_OLTP["acquire_timeout"])
    max_idle: float = _seconds(_OLTP["max_idle"])
    max_lifetime: float = _seconds(_OLTP["max_lifetime"])
    leak_detection_threshold: float = _seconds(_OLTP["leak_detection_threshold"])
    leak_reclaim_after: float = 0.0  # 0: off (only garbage-collected connections are reclaimed)
    slow_query_threshold: float = _seconds(_OLTP["slow_query_threshold"])
    log_queries: bool = False
    log_slow_queries: bool = True
    dynamic_sizing: bool = False
    target_utilization: float = 0.7
    strategy: Strategy = "round_robin"
    max_lag: float = 5.0
    read_your_writes: bool = True
    budget: int | None = None
    budget_rule: str = "set by the caller"
    maintenance_interval: float = 1.0
    monitor_interval: float = 1.0
    eject_backoff: float = 1.0
    eject_backoff_max: float = 30.0
    retry_backoff: float = 0.02

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise PoolConfigError(f"pool max_size must be at least 1 (got {self.max_size})")
        if not 0 <= self.min_size <= self.max_size:
            raise PoolConfigError(
                f"pool min_size must be within 0..max_size ({self.min_size} not in 0..{self.max_size})"
            )
        if not 0 < self.target_utilization <= 1:
            raise PoolConfigError("pool target_utilization must be in (0, 1]")
        if self.budget is not None and self.max_size > self.budget:
            raise PoolConfigError(
                f"pool max_size {self.max_size} exceeds the connection budget of {self.budget}"
                f" per server ({self.budget_rule})"
            )

    @property
    def application_name(self) -> str:
        """What every pooled session shows in pg_stat_activity: dbops/pool/<name>/<pid>."""
        return f"pool/{self.name}/{os.getpid()}"

    def with_changes(self, **changes: Any) -> PoolSettings:
        """A copy with some values replaced; sizes are re-checked (against the budget too)."""
        return replace(self, **changes)


def plan_budget(plan: Plan) -> Budget:
    """The plan's pool section held against its role's connection limit (config.budget's rule).

    With `pool.role` declared in `roles` with a connection_limit L >= 0, the plan's `instances`
    pools share L minus the `reserve`: each instance gets (L - reserve) // instances per server
    (a replica enforces the same role limit on its own sessions). Without a role limit the
    share is None and max_size alone bounds a pool.
    """
    pool = plan.pool
    role = plan.roles.get(pool.role) if pool.role else None
    return budget_of(
        pool.instances,
        pool.max_size,
        pool.reserve,
        role=pool.role,
        role_limit=role.connection_limit if role else None,
    )


def connection_budget(plan: Plan) -> tuple[int | None, str]:
    """How many connections one application instance may open to one server, and why."""
    budget = plan_budget(plan)
    return budget.share, budget.share_rule


def settings_from_plan(plan: Plan, *, name: str | None = None, **overrides: Any) -> PoolSettings:
    """The plan's pool section as PoolSettings.

    Raises PoolConfigError when the budget leaves no connection at all, or when max_size (the
    plan's or an override) exceeds it: the pool fails rather than open fewer than asked.
    """
    p = plan.pool
    budget, rule = connection_budget(plan)
    if budget is not None and budget < 1:
        raise PoolConfigError(f"the connection budget leaves no connection for the pool: {rule}")
    values: dict[str, Any] = {
        "name": name or plan.environment,
        "min_size": p.min_size,
        "max_size": p.max_size,
        "acquire_timeout": _s(p.acquire_timeout),
        "max_idle": _s(p.max_idle),
        "max_lifetime": _s(p.max_lifetime),
        "leak_detection_threshold": _s(p.leak_detection_threshold),
        "leak_reclaim_after": _s(p.leak_reclaim_after) if p.leak_reclaim_after else 0.0,
        "slow_query_threshold": _s(p.slow_query_threshold),
        "log_queries": p.log_queries,
        "log_slow_queries": p.log_slow_queries,
        "dynamic_sizing": p.dynamic_sizing.enabled,
        "target_utilization": p.dynamic_sizing.target_utilization,
        "strategy": p.read_routing.strategy,
        "max_lag": _s(p.read_routing.max_lag),
        "read_your_writes": p.read_routing.read_your_writes,
        "budget": budget,
        "budget_rule": rule,
    }
    values.update(overrides)
    return PoolSettings(**values)


def _s(value: timedelta) -> float:
    return value.total_seconds()


def resolve_plan(plan_or_env: Plan | str | Path, *, root: Path | None = None) -> Plan:
    """A Plan as given, or loaded from an environment name or plan path like the CLI does."""
    if isinstance(plan_or_env, Plan):
        return plan_or_env
    return load_plan(str(plan_or_env), root=root)


def plan_endpoints(plan: Plan) -> tuple[Endpoint, tuple[Endpoint, ...]]:
    """The primary's endpoint and one per declared replica (names from the plan)."""
    return endpoint(plan), tuple(endpoint(plan, replica) for replica in plan.database.replicas)
