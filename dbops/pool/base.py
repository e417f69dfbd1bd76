"""The one manager core under PoolManager (threads) and AsyncPoolManager (asyncio), without I/O:
servers, settings, per-server metrics, the router, the caller's read-your-writes position, leak
callbacks, the metrics export, and the logic of every call (where a query goes, read-your-writes
checks, retries, ejection, the replica monitor, maintenance, health, reset).

The logic that needs I/O is written once as generators that yield steps `(function, args)`: a
store's getconn/putconn, a statement (`io.run`, `io.fetchone`), a transaction (`io.transact`), a
pause (`io.sleep`). The thread shell calls each function and sends its result back (`drive`); the
asyncio shell awaits it (`drive_async`); an exception is thrown back in at the same point. So the
two managers differ only in how they wait, as psycopg's own sync and async connections do.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from time import perf_counter
from typing import Any, ClassVar, Literal, Self, TypeVar

import psycopg
from psycopg import IsolationLevel

from dbops.config.model import Plan
from dbops.connect import Endpoint, mask, params
from dbops.pool.core import Caller, Store
from dbops.pool.errors import (
    ConnectionLost,
    PoolClosed,
    PoolConfigError,
    PoolError,
    PoolExhausted,
    PoolUnavailable,
    connection_lost,
    reason_of,
)
from dbops.pool.leaks import LeakCallback, deliver
from dbops.pool.metrics import Gauges, NodeMetrics, PoolCollector, Throughput
from dbops.pool.routing import PRIMARY, Router, format_lsn, parse_lsn
from dbops.pool.settings import PoolSettings, plan_endpoints, resolve_plan, settings_from_plan
from dbops.pool.status import (
    HealthStatus,
    PerformanceMetrics,
    PoolStats,
    health,
    performance,
    pool_stats,
)
from dbops.pool.transaction import Stage, lost

logger = logging.getLogger("dbops.pool")

T = TypeVar("T")
Steps = Generator[tuple[Callable[..., Any], tuple[Any, ...]], Any, T]
RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)

Intent = Literal["write", "read"]
Isolation = IsolationLevel | Literal["read committed", "repeatable read", "serializable"]

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


def drive(steps: Steps[T]) -> T:
    """Run a core generator for the thread shell: call each step, send back its result, throw
    back its exception. On every query: kept to one loop without per-step branching."""
    send = steps.send
    try:
        fn, args = send(None)
        while True:
            try:
                reply = fn(*args)
            except BaseException as exc:
                fn, args = steps.throw(exc)
            else:
                fn, args = send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def drive_async(steps: Steps[T]) -> T:
    """Run a core generator for the asyncio shell: await each step that returns an awaitable (a
    cancellation is thrown into the generator at the step it interrupted, so the core gives
    back what it holds)."""
    try:
        fn, args = steps.send(None)
        while True:
            try:
                outcome = fn(*args)
                if isinstance(outcome, Awaitable):
                    outcome = await outcome
            except BaseException as exc:
                fn, args = steps.throw(exc)
            else:
                fn, args = steps.send(outcome)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class ManagerCore:
    """Servers, settings, stores, router and read-your-writes state of one manager, and the
    logic of its calls as generators (see the module). The shells subclass it, name their store
    class and I/O functions, and drive the generators."""

    _store: ClassVar[type[Store]]
    _io: ClassVar[Any]  # run, fetchone, transact, sleep, connect (blocking or coroutines)
    _not_open: ClassVar[str]

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
            tuple(ep.name for ep in replicas),
            strategy=s.strategy,
            max_lag=s.max_lag,
            eject_backoff=s.eject_backoff,
            eject_backoff_max=s.eject_backoff_max,
        )
        self.throughput = Throughput()
        self.leak_callbacks: list[LeakCallback] = [on_leak] if on_leak else []
        self._pools: dict[str, Any] = {
            node: self._store(
                node, self.conninfo(node), s, self.metrics[node], describe=ep.describe()
            )
            for node, ep in self.endpoints.items()
        }
        self._primary = self._pools[PRIMARY]
        self._replicas = {ep.name: self._pools[ep.name] for ep in replicas}
        self._timeout = s.acquire_timeout
        self._leak_check = s.leak_detection_threshold > 0
        # Read-your-writes: the caller's (thread's or task's) newest commit position.
        # Read-your-writes is lazy: a write only marks the caller UNRESOLVED (no round trip); its
        # next read fetches the primary's WAL insert position, which is past every commit the
        # caller made, and keeps it until the caller writes again. reset() starts a new variable.
        self._written: ContextVar[Written] = ContextVar(f"dbops_pool_written_{id(self)}")
        self._track_writes = s.read_your_writes and bool(replicas)
        self._probes: dict[str, Any] = {}  # the replica monitor's own connections
        self._next_round = perf_counter() + s.maintenance_interval
        self._collector: PoolCollector | None = None
        self._registry: Any = None
        self._open = False

    @classmethod
    def from_plan(
        cls,
        plan_or_env: Plan | str | Path,
        *,
        root: Path | None = None,
        name: str | None = None,
        on_leak: LeakCallback | None = None,
        **overrides: Any,
    ) -> Self:
        """From a Plan, or an environment name / plan path resolved like the CLI does; not
        opened yet. `overrides` replace PoolSettings values (e.g. maintenance_interval=0.05)."""
        plan = resolve_plan(plan_or_env, root=root)
        primary, replicas = plan_endpoints(plan)
        settings = settings_from_plan(plan, name=name, **overrides)
        return cls(primary, replicas, settings=settings, on_leak=on_leak)

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

    def add_leak_callback(self, callback: LeakCallback) -> None:
        """Call `callback(LeakReport)` for every leak found (the health monitor's alert hook)."""
        self.leak_callbacks.append(callback)

    def get_pool_stats(self) -> dict[str, PoolStats]:
        """Per server ("primary" and each replica's name): sizes now and counters since open."""
        return {node: pool_stats(self.metrics[node], p.gauges()) for node, p in self._pools.items()}

    def get_performance_metrics(self) -> PerformanceMetrics:
        """Throughput, error rate, slow queries, query-time and acquire-wait percentiles."""
        return performance(self._node_view(), self.throughput)

    def register_metrics(self, registry: Any = None) -> PoolCollector:
        """Export the pools' metrics through prometheus_client (the default registry unless one
        is given); unregistered again by shutdown()."""
        if self._collector is None:
            from prometheus_client import REGISTRY

            self._collector = PoolCollector(self.settings.name, self._node_view, self._replica_view)
            self._registry = registry if registry is not None else REGISTRY
            self._registry.register(self._collector)
        return self._collector

    def _node_view(self) -> list[tuple[NodeMetrics, Gauges]]:
        return [(self.metrics[node], p.gauges()) for node, p in self._pools.items()]

    def _replica_view(self) -> list[tuple[str, bool, float | None]]:
        """(name, takes reads now, lag) per replica, for the metrics export."""
        limit = self.router.max_lag
        return [
            (r.name, r.admitted and r.lag is not None and r.lag <= limit, r.lag)
            for r in self.router.replicas.values()
        ]

    def _eject(self, node: str, reason: str) -> None:
        self.router.eject(node, reason)
        self._pools[node].discard_idle()

    def _close_pools(self) -> None:
        """After the background work stopped: close every pool; connections still checked out
        are closed when their holders return them."""
        for pool in self._pools.values():
            pool.close()
        self._forget_probes()
        self._open = False
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None

    def _forget_probes(self) -> None:
        """Close the monitor's connections (shutdown, or a failover: they reconnect)."""
        probes, self._probes = self._probes, {}
        for conn in probes.values():
            conn.pgconn.finish()

    def _open_steps(self) -> Steps[None]:
        """Open min_size connections to the primary (PoolUnavailable if it cannot be reached)
        and to each replica (a replica that cannot be reached is ejected)."""
        yield self._primary.open, ()
        for name, pool in self._replicas.items():
            try:
                yield pool.open, ()
            except PoolUnavailable as exc:
                self.router.eject(name, str(exc))
        self._open = True

    def _checkout_steps(
        self,
        intent: Intent,
        timeout: float | None,
        leak_detection: bool,
        after_lsn: str | None,
        site: Caller,
        written: Written,
    ) -> Steps[tuple[Any, Any]]:
        """Where a checkout goes, and the connection: the primary for writes; for reads the
        router's candidates, a replica only once it has replayed the caller's position, the
        primary last. A busy replica does not keep the read waiting."""
        if not self._open:
            raise PoolClosed(self._not_open)
        leak_check = leak_detection and self._leak_check
        wait = self._timeout if timeout is None else timeout
        primary = self._primary
        if intent != "read" or not self._replicas:
            return primary, (yield primary.getconn, (wait, site, leak_check))
        position = self._read_position(written, after_lsn)
        just_written = position == UNRESOLVED
        if just_written:
            position = yield from self._position_steps(written, wait)
            if position == UNRESOLVED:  # the primary's position is unknown: read there
                return primary, (yield primary.getconn, (wait, site, leak_check, True))
        for node, check in self.router.candidates(position):
            pool = self._pools[node]
            if pool is primary:
                return pool, (yield pool.getconn, (wait, site, leak_check, True))
            if check and just_written:
                continue  # the write committed a moment ago: asking a replica is a wasted trip
            try:
                conn = yield pool.try_getconn, (site, leak_check, not check)
            except PoolUnavailable as exc:
                self._eject(node, str(exc))
                continue
            if conn is None:
                continue
            if not check or (yield from self._replayed_steps(pool, conn, position)):
                if check:
                    pool.count_routed()
                return pool, conn
        raise AssertionError("the primary is always a candidate")

    def _read_position(self, written: Written, after_lsn: str | None) -> int:
        """The position a read must see: explicit, the caller's own (UNRESOLVED when it wrote
        since it was last resolved), or 0 for any."""
        if after_lsn:
            return parse_lsn(after_lsn)
        return written.lsn if self.settings.read_your_writes else 0

    def _replayed_steps(self, pool: Any, conn: Any, position: int) -> Steps[bool]:
        """Fresh read-your-writes check; gives the connection back when it fails."""
        try:
            row = yield self._io.fetchone, (conn, REPLAY_LSN)
        except BaseException as exc:
            yield pool.putconn, (conn,)
            if isinstance(exc, psycopg.Error):
                if connection_lost(exc, conn):
                    self._eject(pool.node, reason_of(exc))
                return False
            raise
        replayed = parse_lsn(row[0]) if row and row[0] else 0
        self.router.replayed(pool.node, replayed)
        if replayed < position:
            yield pool.putconn, (conn,)
            return False
        return True

    def _position_steps(self, holder: Written, wait: float) -> Steps[int]:
        """Resolve the caller's read-your-writes position: the primary's WAL insert position
        now, past every commit the caller made (one round trip, on its first read after
        writing); UNRESOLVED when the primary's connection failed."""
        conn = yield self._primary.getconn, (wait, None, False)
        try:
            row = yield self._io.fetchone, (conn, WAL_INSERT_LSN)
        except psycopg.Error as exc:
            logger.debug("read-your-writes position unknown: %s", reason_of(exc))
            return UNRESOLVED
        finally:
            yield self._primary.putconn, (conn,)
        if not row:
            return 0
        lsn = self.router.record_end(parse_lsn(row[0]))
        if holder.lsn == UNRESOLVED:  # unless the caller wrote again meanwhile
            holder.lsn = lsn
        return lsn

    def _last_write_steps(self) -> Steps[str | None]:
        holder = self.written()
        lsn = holder.lsn
        if lsn == UNRESOLVED:
            lsn = yield from self._position_steps(holder, self._timeout)
        return format_lsn(lsn) if lsn > 0 else None

    def _release_steps(self, pool: Any, conn: Any, written: Written | None) -> Steps[None]:
        """Give a connection back; `written`: the caller's holder, marked (a write)."""
        if written is not None and self._track_writes:
            written.lsn = UNRESOLVED
        yield pool.putconn, (conn,)

    def _lost_on(self, pool: Any, exc: BaseException, conn: Any) -> bool:
        """Whether `exc` lost the connection; a replica that lost it is ejected."""
        if not connection_lost(exc, conn):
            return False
        if pool is not self._primary:
            self._eject(pool.node, reason_of(exc))
        return True

    def _query_steps(
        self,
        sql: Any,
        params: Any,
        read_only: bool,
        timeout: float | None,
        row_factory: Any,
        site: Caller,
        written: Written,
    ) -> Steps[list[Any]]:
        """One statement, its rows. A read whose server goes away is retried on the next
        candidate (ending on the primary); a write whose connection is lost raises
        ConnectionLost(may_have_committed=True) and is never sent again."""
        routed = read_only and bool(self._replicas)
        mark = written if not read_only and self._track_writes else None
        last: BaseException | None = None
        for _ in range(len(self._pools) + 1 if read_only else 1):
            try:
                if routed:
                    pool, conn = yield from self._checkout_steps(
                        "read", timeout, True, None, site, written
                    )
                else:  # the hot path, inlined: the primary's pool
                    if not self._open:
                        raise PoolClosed(self._not_open)
                    pool = self._primary
                    wait = self._timeout if timeout is None else timeout
                    conn = yield pool.getconn, (wait, site, self._leak_check)
            except (PoolUnavailable, PoolExhausted) as exc:
                if last is None:
                    raise
                raise ConnectionLost(
                    PRIMARY, f"{reason_of(last)}; then {exc}", may_have_committed=False
                ) from last
            try:
                rows = yield self._io.run, (conn, sql, params, row_factory)
            except BaseException as exc:
                yield from self._release_steps(pool, conn, mark)
                if not isinstance(exc, psycopg.OperationalError) or not self._lost_on(
                    pool, exc, conn
                ):
                    raise
                if not read_only:
                    raise ConnectionLost(PRIMARY, reason_of(exc), may_have_committed=True) from exc
                last = exc
                continue
            if mark is not None:
                mark.lsn = UNRESOLVED
            yield pool.putconn, (conn,)
            return rows  # type: ignore[no-any-return]
        assert last is not None
        raise ConnectionLost(PRIMARY, reason_of(last), may_have_committed=False) from last

    def _transaction_steps(
        self,
        fn: Callable[[Any], Any],
        level: IsolationLevel | None,
        retries: int,
        read_only: bool,
        timeout: float | None,
        site: Caller,
        written: Written,
    ) -> Steps[Any]:
        """`fn(conn)` in one transaction, retried up to `retries` times when nothing can have
        been applied (serialization failures, deadlocks, a connection lost before COMMIT), with
        a doubling backoff; a connection lost during COMMIT raises at once."""
        intent: Intent = "read" if read_only else "write"
        mark = None if read_only else written
        attempt = 0
        failure: ConnectionLost | None = None
        while True:
            try:
                pool, conn = yield from self._checkout_steps(
                    intent, timeout, True, None, site, written
                )
            except PoolUnavailable as exc:
                if failure is None:
                    raise
                raise ConnectionLost(
                    failure.node, f"{failure.reason}; then {exc}", may_have_committed=False
                ) from exc
            stage = Stage()
            try:
                result = yield self._io.transact, (conn, fn, level, read_only, stage)
            except RETRYABLE as exc:
                yield from self._release_steps(pool, conn, mark)
                if attempt >= retries:
                    raise
                logger.info(
                    "transaction retry %d/%d after %s", attempt + 1, retries, type(exc).__name__
                )
            except psycopg.OperationalError as exc:
                yield from self._release_steps(pool, conn, mark)
                if not self._lost_on(pool, exc, conn):
                    raise
                failure = lost(pool.node, exc, stage, read_only)
                if failure.may_have_committed or attempt >= retries:
                    raise failure from exc
                logger.info(
                    "transaction retry %d/%d: %s lost during %s, before COMMIT: not applied",
                    attempt + 1, retries, pool.node, stage.name,
                )
            except BaseException:
                yield from self._release_steps(pool, conn, mark)
                raise
            else:
                yield from self._release_steps(pool, conn, mark)
                return result
            yield self._io.sleep, (backoff(self.settings.retry_backoff, attempt),)
            attempt += 1

    def _health_steps(self) -> Steps[HealthStatus]:
        """Checks the primary with SELECT 1 (timed) and reports the replicas as last probed."""
        latency, error = None, ""
        try:
            started = perf_counter()
            conn = yield self._primary.getconn, (self._timeout, None, False)
            try:
                yield self._io.fetchone, (conn, "SELECT 1")
            finally:
                yield self._primary.putconn, (conn,)
            latency = perf_counter() - started
        except (PoolError, psycopg.Error) as exc:
            error = reason_of(exc)
        return health(
            latency,
            error,
            list(self.router.replicas.values()),
            self.router.max_lag,
            [p.gauges() for p in self._pools.values()],
            sum(p.open_leaks() for p in self._pools.values()),
        )

    def _reset_steps(self, running: bool) -> Steps[None]:
        """After a failover, with the background work stopped: close every idle connection now
        and each checked-out one when it is returned, forget the replicas' states, the primary's
        WAL history and every caller's read-your-writes position, then (when open) refill
        min_size from whatever the endpoints reach now. A primary that cannot be reached yet is
        logged; calls reconnect on demand."""
        for pool in self._pools.values():
            pool.discard_idle()
        self._forget_probes()
        self.router.reset()
        self._written = ContextVar(f"dbops_pool_written_{id(self)}")
        logger.warning("pool %s reset: connections closed, replica states forgotten",
                       self.settings.name)
        if not running:
            return
        for node, pool in self._pools.items():
            try:
                yield pool.fill, ()
            except PoolUnavailable as exc:
                if node == PRIMARY:
                    logger.warning("%s", exc)
                else:
                    self.router.eject(node, str(exc))

    def _maintenance_tick(self) -> float:
        """How often maintenance runs: leaks and reclaims are acted on within a quarter of their
        limits, the rest every maintenance_interval."""
        s = self.settings
        tick = s.maintenance_interval
        for limit in (s.leak_detection_threshold, s.leak_reclaim_after):
            if limit > 0:
                tick = min(tick, max(limit / 4, 0.01))
        return tick

    def _maintenance_steps(self, now: float) -> Steps[None]:
        """Leak scan and reclaim every tick; idle and lifetime limits, dynamic sizing, refill
        and the throughput sample every maintenance_interval."""
        threshold = self.settings.leak_detection_threshold
        for pool in self._pools.values():
            pool.reclaim_collected()
            pool.reclaim_overdue(now)
            if threshold > 0:
                for report in pool.scan_leaks(now, threshold):
                    deliver(report, self.leak_callbacks)
        if now >= self._next_round:
            self._next_round = now + self.settings.maintenance_interval
            for node, pool in self._pools.items():
                if node == PRIMARY or self.router.replicas[node].admitted:
                    yield pool.maintain, (now,)
            self.throughput.sample(sum(m.queries for m in self.metrics.values()))

    def _probe_steps(self, node: str, sql: str) -> Steps[tuple[Any, ...] | None]:
        """One row of `sql` on the monitor's connection to `node`, (re)connecting as needed;
        raises psycopg.Error (the connection is dropped, so the next round reconnects)."""
        conn = self._probes.get(node)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = yield self._io.connect, (self.monitor_conninfo(node),)
            except psycopg.OperationalError as exc:
                where = self.endpoints[node].describe()
                raise psycopg.OperationalError(
                    mask(f"cannot connect to {node} ({where}): {reason_of(exc)}")
                ) from None
            self._probes[node] = conn
        try:
            return (yield self._io.fetchone, (conn, sql))  # type: ignore[no-any-return]
        except BaseException:
            self._probes.pop(node, None)
            conn.pgconn.finish()
            raise

    def _monitor_steps(self) -> Steps[None]:
        """Sample the primary's WAL position, then probe each replica that is admitted or due
        after its backoff: in recovery and answering re-admits it, failing ejects it."""
        try:
            row = yield from self._probe_steps(PRIMARY, WAL_FLUSH_LSN)
            if row and row[0]:
                self.router.observe_primary(
                    parse_lsn(row[0]), perf_counter(), int(row[1]), int(row[2])
                )
        except psycopg.Error as exc:
            logger.debug("primary WAL sample skipped: %s", mask(reason_of(exc)))
        for name in self.router.due_for_probe(perf_counter()):
            try:
                row = yield from self._probe_steps(name, REPLICA_PROBE)
            except psycopg.Error as exc:
                self._eject(name, mask(reason_of(exc)))
                continue
            if not row or not row[0]:
                self._eject(name, "not in recovery (promoted?): reads there could be inconsistent")
                continue
            self.router.observe_replica(
                name,
                parse_lsn(row[1]) if row[1] else None,
                perf_counter(),
                float(row[2]) if row[2] is not None else None,
            )
