"""Counters and histograms the pools keep, cheap enough for every query, and their export.

The hot path only increments plain integers under a lock (no prometheus_client objects per
query); `PoolCollector` turns the current values into prometheus_client metric families when
scraped.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dbops.connect import mask

logger = logging.getLogger("dbops.pool")

# Seconds; from a fast local round trip (100 µs) to a query stuck for half a minute.
BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, float("inf"),
)  # fmt: skip


class Histogram:
    """Fixed-bucket histogram; callers hold the owning lock while observing."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """An estimate of the q-quantile, interpolated inside its bucket; None when empty."""
        total = self.count
        if total == 0:
            return None
        rank, seen = q * total, 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                low = BUCKETS[i - 1] if i else 0.0
                high = BUCKETS[i] if BUCKETS[i] != float("inf") else low * 2 or 1.0
                return low + (high - low) * ((rank - seen) / n)
            seen += n
        return BUCKETS[-2]

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip(BUCKETS, self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


def statement_text(query: Any) -> str:
    """A statement as text for a log line: masked, whitespace collapsed, at most 500 characters."""
    text: Any = query
    if hasattr(query, "as_string"):  # psycopg.sql.Composable
        try:
            text = query.as_string(None)
        except Exception:  # composed of parts that need a connection to render
            text = repr(query)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return mask(text[:500] + ("…" if len(text) > 500 else ""))


def _redacted(params: Any) -> str:
    n = len(params) if isinstance(params, Sequence | dict) else 0
    return f"[{n} parameter{'s' if n != 1 else ''} redacted]" if n else "[no parameters]"


class NodeMetrics:
    """What one server's pool and its statements did.

    Statement durations are collected on the connection while it is checked out (only its
    holder touches it, so no lock) and folded in here when it is returned, under `lock`: the
    thread pool shares its own lock, so a checkout or return takes one lock, not two. A failed
    statement is recorded as its negated duration.
    """

    def __init__(
        self,
        node: str,
        *,
        slow_threshold: float,
        log_queries: bool,
        log_slow_queries: bool,
    ) -> None:
        self.node = node
        self.slow_threshold = slow_threshold
        self.log_queries = log_queries
        self.log_slow_queries = log_slow_queries
        # A statement at least this long is logged: every one with log_queries, slow ones with
        # log_slow_queries, none otherwise.
        self.log_after = (
            0.0 if log_queries else slow_threshold if log_slow_queries else float("inf")
        )
        self.lock = threading.Lock()
        self.query_time = Histogram()
        self.queries = 0
        self.errors = 0
        self.slow = 0
        self.acquire_wait = Histogram()  # its count is the number of checkouts
        self.acquire_timeouts = 0
        self.opened = 0
        self.closed = 0
        self.connect_errors = 0
        self.leaks = 0
        self.reclaimed = 0
        self.reads_routed = 0

    def fold(self, times: list[float]) -> None:
        """Add one checkout's statement durations; the caller holds `lock`."""
        hist, slow = self.query_time, self.slow_threshold
        for t in times:
            if t < 0:
                t = -t
                self.errors += 1
            hist.counts[bisect_left(BUCKETS, t)] += 1
            hist.sum += t
            if t >= slow:
                self.slow += 1
        self.queries += len(times)
        times.clear()

    def log_statement(self, query: Any, params: Any, seconds: float, failed: bool) -> None:
        """Log one statement (parameters redacted): a warning when slow, else info."""
        if seconds >= self.slow_threshold and self.log_slow_queries:
            logger.warning(
                "slow query on %s: %.0f ms (slow_query_threshold %.0f ms)%s: %s %s", self.node,
                seconds * 1000, self.slow_threshold * 1000, " (failed)" if failed else "",
                statement_text(query), _redacted(params),
            )
        elif self.log_queries:
            logger.info(
                "query on %s took %.1f ms%s: %s %s", self.node, seconds * 1000,
                " (failed)" if failed else "", statement_text(query), _redacted(params),
            )


class Throughput:
    """Queries per second over a sliding window, from (time, total) samples taken by maintenance."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self.started = time.perf_counter()
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, total: int, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._samples.append((now, total))
        while self._samples and now - self._samples[0][0] > self.window:
            self._samples.popleft()

    def rate(self, total: int, now: float | None = None) -> tuple[float, float]:
        """(queries/s since start, queries/s over the window)."""
        now = time.perf_counter() if now is None else now
        lifetime = total / max(now - self.started, 1e-9)
        if not self._samples:
            return lifetime, lifetime
        t0, n0 = self._samples[0]
        return lifetime, (total - n0) / max(now - t0, 1e-9) if now > t0 else lifetime


@dataclass(frozen=True)
class Gauges:
    """A pool's sizes right now, for stats and export."""

    node: str
    size: int
    idle: int
    in_use: int
    waiting: int
    min_size: int
    max_size: int
    target_size: int


class PoolCollector:
    """A prometheus_client collector over one manager's pools (register it with a registry)."""

    def __init__(
        self,
        pool_name: str,
        nodes: Callable[[], Sequence[tuple[NodeMetrics, Gauges]]],
        replicas: Callable[[], Sequence[tuple[str, bool, float | None]]],
    ) -> None:
        self._pool_name = pool_name
        self._nodes = nodes
        self._replicas = replicas

    def describe(self) -> list[Any]:
        return []  # metrics are produced at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        labels = ["pool", "node"]
        fams: dict[str, Any] = {
            "wait": HistogramMetricFamily(
                "dbops_pool_acquire_wait_seconds", "Time callers waited for a connection", labels=labels
            ),
            "query": HistogramMetricFamily(
                "dbops_pool_query_seconds", "Statement execution time", labels=labels
            ),
            "queries": CounterMetricFamily("dbops_pool_queries", "Statements run", labels=labels),
            "errors": CounterMetricFamily(
                "dbops_pool_query_errors", "Statements that failed", labels=labels
            ),
            "slow": CounterMetricFamily(
                "dbops_pool_slow_queries", "Statements over slow_query_threshold", labels=labels
            ),
            "timeouts": CounterMetricFamily(
                "dbops_pool_acquire_timeouts", "Checkouts that timed out", labels=labels
            ),
            "leaks": CounterMetricFamily(
                "dbops_pool_leaks", "Connections held past leak_detection_threshold", labels=labels
            ),
            "opened": CounterMetricFamily(
                "dbops_pool_connections_opened", "Connections opened", labels=labels
            ),
            "connect_errors": CounterMetricFamily(
                "dbops_pool_connect_errors",
                "Connections the pool could not open for the application",
                labels=labels,
            ),
            "reclaimed": CounterMetricFamily(
                "dbops_pool_connections_reclaimed",
                "Connections taken back from holders (dropped unreturned, or past "
                "leak_reclaim_after)",
                labels=labels,
            ),
            "reads": CounterMetricFamily(
                "dbops_pool_reads_routed", "Checkouts with intent read served here", labels=labels
            ),
            "conns": GaugeMetricFamily(
                "dbops_pool_connections", "Open connections by state", labels=[*labels, "state"]
            ),
            "waiting": GaugeMetricFamily(
                "dbops_pool_waiting", "Callers waiting for a connection", labels=labels
            ),
            "max": GaugeMetricFamily("dbops_pool_max_size", "Most connections", labels=labels),
            "util": GaugeMetricFamily(
                "dbops_pool_utilization", "Connections in use / max_size", labels=labels
            ),
        }
        for m, g in self._nodes():
            lv = [self._pool_name, m.node]
            with m.lock:
                fams["query"].add_metric(lv, m.query_time.cumulative(), m.query_time.sum)
                fams["queries"].add_metric(lv, m.queries)
                fams["errors"].add_metric(lv, m.errors)
                fams["slow"].add_metric(lv, m.slow)
            fams["wait"].add_metric(lv, m.acquire_wait.cumulative(), m.acquire_wait.sum)
            fams["timeouts"].add_metric(lv, m.acquire_timeouts)
            fams["leaks"].add_metric(lv, m.leaks)
            fams["opened"].add_metric(lv, m.opened)
            fams["connect_errors"].add_metric(lv, m.connect_errors)
            fams["reclaimed"].add_metric(lv, m.reclaimed)
            fams["reads"].add_metric(lv, m.reads_routed)
            fams["conns"].add_metric([*lv, "idle"], g.idle)
            fams["conns"].add_metric([*lv, "in_use"], g.in_use)
            fams["waiting"].add_metric(lv, g.waiting)
            fams["max"].add_metric(lv, g.max_size)
            fams["util"].add_metric(lv, g.in_use / g.max_size if g.max_size else 0.0)
        up = GaugeMetricFamily(
            "dbops_pool_replica_up", "1 when the replica takes reads", labels=["pool", "replica"]
        )
        lag = GaugeMetricFamily(
            "dbops_pool_replica_lag_seconds", "Replay lag seen by the pool", labels=["pool", "replica"]
        )
        for name, admitted, seconds in self._replicas():
            up.add_metric([self._pool_name, name], 1.0 if admitted else 0.0)
            if seconds is not None:
                lag.add_metric([self._pool_name, name], seconds)
        yield from fams.values()
        yield up
        yield lag
