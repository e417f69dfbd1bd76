"""What the thread and asyncio managers share: servers, settings, per-server metrics, the router,
the caller's read-your-writes position, leak callbacks and the metrics export. No I/O."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import IsolationLevel

from dbops.config.model import Plan
from dbops.connect import Endpoint, params
from dbops.pool.errors import PoolConfigError
from dbops.pool.leaks import LeakCallback
from dbops.pool.metrics import Gauges, NodeMetrics, PoolCollector, Throughput
from dbops.pool.routing import PRIMARY, Router, parse_lsn
from dbops.pool.settings import PoolSettings, plan_endpoints, resolve_plan, settings_from_plan

logger = logging.getLogger("dbops.pool")

Intent = Literal["write", "read"]
Isolation = IsolationLevel | Literal["read committed", "repeatable read", "serializable"]

# The server ended the session: admin_shutdown, crash_shutdown, cannot_connect_now,
# idle_session_timeout. A statement that got one of these back may still have run (and, in
# autocommit, committed) before the session was ended: the pool never sends it again.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03", "57P05"})
INTENTS = ("write", "read")

UNRESOLVED = -1
WAL_INSERT_LSN = "SELECT pg_current_wal_insert_lsn()::text"
WAL_FLUSH_LSN = (
    "SELECT pg_current_wal_flush_lsn()::text, current_setting('wal_block_size')::int,"
    " pg_size_bytes(current_setting('wal_segment_size'))"
)
# In recovery, replay position, and the replica's own lag: the age of its last replayed commit
# while it has received WAL it has not replayed, else 0 (an idle primary is not lag).
REPLICA_PROBE = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " CASE WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END"
)
REPLAY_LSN = "SELECT pg_last_wal_replay_lsn()::text"


def connection_lost(exc: BaseException, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether `exc` means the session is gone (as opposed to an error in the statement)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return conn.broken or conn.closed or exc.sqlstate in _SESSION_ENDED


def check_intent(intent: str) -> None:
    if intent not in INTENTS:
        raise PoolConfigError(f"unknown intent {intent!r}: 'write' or 'read'")


class Written:
    """A caller's read-your-writes position (UNRESOLVED after a write, else an LSN or 0).

    A mutable holder kept in a ContextVar: set in the caller's context by the pool call itself
    (before any task runs it), so tasks the caller starts afterwards (asyncio.wait_for, gather,
    TaskGroup copy the context) share it and their writes are seen by the caller's reads.
    """

    __slots__ = ("lsn",)

    def __init__(self) -> None:
        self.lsn = 0


def reason_of(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def isolation_level(value: Isolation | None) -> IsolationLevel | None:
    if value is None or isinstance(value, IsolationLevel):
        return value
    try:
        return IsolationLevel[value.upper().replace(" ", "_")]
    except KeyError:
        raise PoolConfigError(
            f"unknown isolation level {value!r}: read committed, repeatable read or serializable"
        ) from None


def backoff(base: float, attempt: int) -> float:
    """Doubling delay with jitter, so retried transactions do not collide again in step."""
    return float(base * 2**attempt * random.uniform(0.5, 1.5))


class ManagerBase:
    """Servers, settings, metrics, router and read-your-writes state of one manager."""

    def __init__(
        self,
        primary: Endpoint,
        replicas: Sequence[Endpoint] = (),
        *,
        settings: PoolSettings | None = None,
        on_leak: LeakCallback | None = None,
        **overrides: Any,
    ) -> None:
        base = settings or PoolSettings()
        self.settings = base.with_changes(**overrides) if overrides else base
        s = self.settings
        self.endpoints: dict[str, Endpoint] = {PRIMARY: primary}
        for ep in replicas:
            if ep.name in self.endpoints:
                raise PoolConfigError(f"two servers are named {ep.name!r}: name the replicas")
            self.endpoints[ep.name] = ep
        self.replica_names = tuple(ep.name for ep in replicas)
        self.metrics = {
            node: NodeMetrics(
                node,
                slow_threshold=s.slow_query_threshold,
                log_queries=s.log_queries,
                log_slow_queries=s.log_slow_queries,
            )
            for node in self.endpoints
        }
        self.router = Router(
            self.replica_names,
            strategy=s.strategy,
            max_lag=s.max_lag,
            eject_backoff=s.eject_backoff,
            eject_backoff_max=s.eject_backoff_max,
        )
        self.throughput = Throughput()
        self.leak_callbacks: list[LeakCallback] = [on_leak] if on_leak else []
        # Read-your-writes: the caller's (thread's or task's) newest commit position.
        # Read-your-writes is lazy: a write only marks the caller UNRESOLVED (no round trip); its
        # next read fetches the primary's WAL insert position, which is past every commit the
        # caller made, and keeps it until the caller writes again. reset() starts a new variable.
        self._written: ContextVar[Written] = ContextVar(f"dbops_pool_written_{id(self)}")
        self._track_writes = s.read_your_writes and bool(replicas)
        self.gauges: Callable[[], list[Gauges]] = list  # set by the manager once its pools exist
        self._collector: PoolCollector | None = None
        self._registry: Any = None

    @classmethod
    def _plan_arguments(
        cls, plan_or_env: Plan | str | Path, root: Path | None, name: str | None, overrides: Any
    ) -> tuple[Endpoint, tuple[Endpoint, ...], PoolSettings]:
        plan = resolve_plan(plan_or_env, root=root)
        primary, replicas = plan_endpoints(plan)
        return primary, replicas, settings_from_plan(plan, name=name, **overrides)

    def conninfo(self, node: str) -> dict[str, Any]:
        """psycopg.connect arguments for one server, tagged application_name=dbops/pool/<name>/<pid>."""
        return params(self.endpoints[node], command=self.settings.application_name)

    def monitor_conninfo(self, node: str) -> dict[str, Any]:
        """The replica monitor's own connection to a server (outside the pools, so it measures
        at any load): tagged .../monitor, its statements bounded."""
        limit = max(1.0, 5 * self.settings.monitor_interval)
        return params(
            self.endpoints[node],
            command=f"{self.settings.application_name}/monitor",
            statement_timeout=timedelta(seconds=limit),
        )

    def written(self) -> Written:
        """The caller's read-your-writes holder, created in the caller's context if missing."""
        holder = self._written.get(None)
        if holder is None:
            holder = Written()
            self._written.set(holder)
        return holder

    def reset_positions(self) -> None:
        """Forget every caller's read-your-writes position (positions of a former primary)."""
        self._written = ContextVar(f"dbops_pool_written_{id(self)}")

    def add_leak_callback(self, callback: LeakCallback) -> None:
        """Call `callback(LeakReport)` for every leak found (the health monitor's alert hook)."""
        self.leak_callbacks.append(callback)

    def _resolved(self, holder: Written, insert_lsn: int) -> int:
        """Record the primary's insert position as the caller's read-your-writes position."""
        lsn = self.router.record_end(insert_lsn)
        if holder.lsn == UNRESOLVED:  # unless the caller wrote again meanwhile
            holder.lsn = lsn
        return lsn

    def _read_position(self, holder: Written, after_lsn: str | int | None) -> int:
        """The position a read must see: explicit, the caller's own (UNRESOLVED when it wrote
        since it was last resolved), or 0 for any."""
        if isinstance(after_lsn, str):
            return parse_lsn(after_lsn)
        if after_lsn:
            return after_lsn
        return holder.lsn if self.settings.read_your_writes else 0

    def _node_view(self) -> list[tuple[NodeMetrics, Gauges]]:
        return [(self.metrics[g.node], g) for g in self.gauges()]

    def _replica_view(self) -> list[tuple[str, bool, float | None]]:
        """(name, takes reads now, lag) per replica, for the metrics export."""
        limit = self.router.max_lag
        return [
            (r.name, r.admitted and r.lag is not None and r.lag <= limit, r.lag)
            for r in self.router.replicas.values()
        ]

    def register_metrics(self, registry: Any = None) -> PoolCollector:
        """Export the pools' metrics through prometheus_client (the default registry unless one
        is given); unregistered again by shutdown()."""
        if self._collector is None:
            from prometheus_client import REGISTRY

            self._collector = PoolCollector(self.settings.name, self._node_view, self._replica_view)
            self._registry = registry if registry is not None else REGISTRY
            self._registry.register(self._collector)
        return self._collector

    def _unregister_metrics(self) -> None:
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None
