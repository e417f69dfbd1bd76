"""/metrics: the latest check cycle in Prometheus text format (prometheus_client).

Names follow Prometheus conventions: a `dbops_` prefix, base units in the name (`_seconds`,
`_bytes`, `_ratio` for shares 0..1), `_total` on counters. A scrape reads the monitor's latest
report and never queries the database itself, so scraping costs microseconds and many
scrapers do not multiply the load; the report's age is exported
(`dbops_health_last_check_timestamp_seconds`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dbops.health.monitor import HealthMonitor
from dbops.health.operations import Operations
from dbops.health.result import CheckResult, HealthReport
from dbops.levels import STATUSES


@dataclass(frozen=True)
class Spec:
    kind: str
    name: str
    help: str
    source: str = "value"
    """"value" or the key in the check's details."""
    counter: bool = False


SPECS = (
    Spec("connectivity", "dbops_round_trip_seconds",
         "Round trip of a trivial query to the primary."),
    Spec("connection_utilization", "dbops_connections", "Client connections open on the primary.",
         "connections"),
    Spec("connection_utilization", "dbops_max_connections", "The primary's max_connections.",
         "max_connections"),
    Spec("connection_utilization", "dbops_connection_utilization_ratio",
         "Client connections as a share of max_connections."),
    Spec("role_connections", "dbops_role_connections", "Connections of a role.", "connections"),
    Spec("role_connections", "dbops_role_connection_limit", "A role's connection limit.",
         "connection_limit"),
    Spec("idle_in_transaction", "dbops_idle_in_transaction_sessions",
         "Sessions idle in a transaction.", "sessions"),
    Spec("idle_in_transaction", "dbops_idle_in_transaction_max_age_seconds",
         "How long the oldest session has been idle in a transaction."),
    Spec("long_transaction", "dbops_oldest_transaction_age_seconds",
         "Age of the oldest open transaction."),
    Spec("long_query", "dbops_longest_query_duration_seconds",
         "Run time of the longest running query."),
    Spec("blocked_sessions", "dbops_blocked_sessions", "Sessions waiting on a lock.", "sessions"),
    Spec("blocked_sessions", "dbops_lock_wait_max_seconds", "The longest wait on a lock."),
    Spec("deadlocks", "dbops_deadlocks", "Deadlocks in the plan's database (pg_stat_database).",
         "deadlocks_total", counter=True),
    Spec("error_rate", "dbops_rollback_ratio",
         "Share of transactions rolled back since the previous check."),
    Spec("xid_wraparound", "dbops_xid_wraparound_ratio",
         "Transaction-ID (or multixact) age as a share of the wraparound limit."),
    Spec("xid_wraparound", "dbops_xid_age", "Age of the oldest unfrozen transaction ID.",
         "xid_age"),
    Spec("cache_hit_ratio", "dbops_cache_hit_ratio",
         "Share of block reads served from shared buffers since the previous check."),
    Spec("invalid_indexes", "dbops_invalid_indexes", "INVALID indexes in the plan's database."),
    Spec("pending_restart", "dbops_settings_pending_restart",
         "Settings changed but waiting for a restart."),
    Spec("replication_lag", "dbops_replication_lag_seconds", "Replay lag of a replica in time."),
    Spec("replication_lag", "dbops_replication_lag_bytes",
         "WAL the replica has not replayed yet.", "bytes"),
    Spec("replication_lag", "dbops_replication_streaming",
         "1 while the replica's WAL stream works, else 0.", "streaming"),
    Spec("pool_utilization", "dbops_pool_utilization_ratio",
         "Connections lent out as a share of the pool's maximum."),
    Spec("pool_utilization", "dbops_pool_connections_in_use", "Connections lent out.", "in_use"),
    Spec("pool_waiting", "dbops_pool_waiting_requests", "Requests waiting for a connection."),
    Spec("pool_error_rate", "dbops_pool_error_ratio",
         "Share of pool requests that failed since the previous check."),
    Spec("pool_slow_queries", "dbops_pool_slow_queries", "Slow queries seen by the pool.",
         "slow_queries_total", counter=True),
    Spec("pool_leaks", "dbops_pool_leaks", "Connections found held past the leak threshold.",
         "leaks_total", counter=True),
)
_LABELS = {"replication_lag": "replica", "role_connections": "role", "pool_utilization": "server",
           "pool_waiting": "server", "pool_leaks": "server"}
_LEVEL = {status: float(n) for n, status in enumerate(STATUSES)}


def _number(result: CheckResult, source: str) -> float | None:
    raw = result.value if source == "value" else result.details.get(source)
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    return float(raw) if isinstance(raw, int | float) else None


def _families(report: HealthReport) -> Iterable[Metric]:
    for spec in SPECS:
        label = _LABELS.get(spec.kind)
        labels = [label] if label else []
        family: GaugeMetricFamily | CounterMetricFamily = (
            CounterMetricFamily(spec.name, spec.help, labels=labels) if spec.counter
            else GaugeMetricFamily(spec.name, spec.help, labels=labels))
        for result in report.results:
            if result.kind != spec.kind:
                continue
            number = _number(result, spec.source)
            if number is not None:
                family.add_metric([result.subject] if label else [], number)
        if family.samples:
            yield family


OPERATION_METRICS = (
    ("backups", "dbops_backups", "Complete backups in the catalog.", False),
    ("backup_last_success", "dbops_backup_last_success_timestamp_seconds",
     "When the newest usable backup finished.", False),
    ("backup_overdue", "dbops_backup_overdue",
     "1 when backup.schedule wants a backup the catalog lacks, else 0.", False),
    ("backup_verification_failures", "dbops_backup_verification_failures",
     "Backups whose latest verification failed.", False),
    ("applies", "dbops_applies", "Applies in the audit log.", True),
    ("apply_failures", "dbops_apply_failures",
     "Applies in the audit log that failed, rolled back or were interrupted.", True),
    ("apply_last_success", "dbops_apply_last_success_timestamp_seconds",
     "When the last successful apply started.", False),
    ("migrations_applied", "dbops_migrations_applied", "Migrations applied to the database.",
     False),
    ("migration_last_applied", "dbops_migration_last_applied_timestamp_seconds",
     "When the newest migration was applied.", False),
)


def _operation_families(found: Operations) -> Iterable[Metric]:
    for field, name, text, counter in OPERATION_METRICS:
        raw = getattr(found, field)
        if raw is None:
            continue
        number = raw.timestamp() if isinstance(raw, datetime) else float(raw)
        family: GaugeMetricFamily | CounterMetricFamily = (
            CounterMetricFamily(name, text) if counter else GaugeMetricFamily(name, text))
        family.add_metric([], number)
        yield family
    if found.drift is not None:
        for name, text, number in (
            ("dbops_drift_out_of_band_items",
             "Out-of-band differences the last `dbops drift` found.", found.drift.out_of_band),
            ("dbops_drift_pending_items", "Pending plan changes the last `dbops drift` found.",
             found.drift.pending),
            ("dbops_drift_last_check_timestamp_seconds", "When `dbops drift` last ran.",
             found.drift.checked_at.timestamp()),
        ):
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], float(number))
            yield gauge


class HealthCollector(Collector):
    """Turns the monitor's latest report and counters into metric families at scrape time."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        monitor = self._monitor
        info = GaugeMetricFamily("dbops_health_info", "The environment this exporter checks.",
                                 labels=["environment"])
        info.add_metric([monitor.plan.environment], 1.0)
        yield info
        cycles = CounterMetricFamily("dbops_health_checks", "Check cycles run.")
        cycles.add_metric([], monitor.cycles)
        yield cycles
        failures = CounterMetricFamily("dbops_health_check_failures",
                                       "Check cycles that raised an unexpected error.")
        failures.add_metric([], monitor.failures)
        yield failures
        stats = monitor.alert_stats()
        for key, text in (("delivered", "Alerts delivered."),
                          ("failed_attempts", "Alert delivery attempts that failed."),
                          ("given_up", "Alerts given up after every retry.")):
            family = CounterMetricFamily(f"dbops_health_alerts_{key}", text)
            family.add_metric([], stats.get(key, 0))
            yield family
        operations = monitor.operations()
        if operations is not None:
            yield from _operation_families(operations)
        report = monitor.latest()
        if report is None:
            return
        connectivity = report.result("connectivity")
        up = GaugeMetricFamily("dbops_up", "1 when the primary answered the last check.")
        up.add_metric([], 0.0 if connectivity is None or connectivity.value is None else 1.0)
        yield up
        overall = GaugeMetricFamily("dbops_health_overall_status",
                                    "Worst status of the last check: 0 ok, 1 warning, 2 critical.")
        overall.add_metric([], _LEVEL[report.status])
        yield overall
        status = GaugeMetricFamily("dbops_health_status",
                                   "Status of a check: 0 ok, 1 warning, 2 critical.",
                                   labels=["check"])
        for result in report.results:
            status.add_metric([result.name], _LEVEL[result.status])
        yield status
        for name, text, number in (
            ("dbops_health_check_duration_seconds", "Duration of the last check cycle.",
             report.duration),
            ("dbops_health_check_queries", "Queries the last check cycle sent.",
             float(report.queries)),
            ("dbops_health_last_check_timestamp_seconds", "When the last check cycle ran.",
             report.checked_at.timestamp()),
        ):
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], number)
            yield gauge
        yield from _families(report)


def registry_for(collector: HealthCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
