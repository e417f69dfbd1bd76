"""Prometheus recording and alerting rules for one environment, made from its plan: the alerts
fire where `dbops health` and the apply gates call a check critical (the plan's
`health.thresholds`, the fixed transaction-ID share, the backup schedule), so Prometheus and dbops
share one definition of "healthy". Pure: a Plan in, rule groups (and their YAML) out.

Every rule only sees the series of exporters serving this environment (`dbops_health_info`'s
`environment` label, matched on job and instance), so one Prometheus can watch several
environments with a rule file each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from dbops.config.model import Plan
from dbops.config.units import format_duration
from dbops.health.evaluate import XID_SHARE_THRESHOLD

RUNBOOK_BASE = "README.md"
"""Where runbook_url points unless told otherwise: the README's runbook section, per alert."""
STALE_CYCLES = 3
"""A health exporter whose latest check is older than this many check intervals is stale."""
APPLY_WINDOW = "1h"
"""How long an apply failure keeps its alert firing."""


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    wait: str
    """Prometheus' `for`: how long the condition must hold."""
    severity: str
    summary: str
    description: str

    @property
    def anchor(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class RuleSet:
    environment: str
    recordings: tuple[Recording, ...]
    alerts: tuple[Alert, ...]


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}"


def _share(value: float) -> str:
    return f"{value:.0%}"


def rule_set(plan: Plan) -> RuleSet:
    """The environment's recording rules and alerts, thresholds taken from `plan`."""
    t = plan.health.thresholds
    env = plan.environment
    scope = f'and on (job, instance) dbops_health_info{{environment="{env}"}}'
    stale_after = plan.health.check_interval * STALE_CYCLES
    recordings = (
        Recording("dbops:health_check_age_seconds",
                  "time() - dbops_health_last_check_timestamp_seconds"),
        Recording("dbops:backup_age_seconds",
                  "time() - dbops_backup_last_success_timestamp_seconds"),
        Recording("dbops:pool_leaks:increase15m", "increase(dbops_pool_leaks_total[15m])"),
        Recording("dbops:pool_slow_queries:increase5m",
                  "increase(dbops_pool_slow_queries_total[5m])"),
        Recording(f"dbops:apply_failures:increase{APPLY_WINDOW}",
                  f"increase(dbops_apply_failures_total[{APPLY_WINDOW}])"),
    )
    alerts = (
        Alert("DbopsDatabaseDown", f"dbops_up == 0 {scope}", "1m", "critical",
              "{{ $labels.instance }}: the primary does not answer",
              "The health exporter's last check could not reach the primary of " + env + "."),
        Alert("DbopsHealthCheckStale",
              f"dbops:health_check_age_seconds > {_seconds(stale_after)} {scope}", "0m",
              "warning", "{{ $labels.instance }}: health checks have stopped",
              f"The latest check is {{{{ $value | humanizeDuration }}}} old; checks run every "
              f"{format_duration(plan.health.check_interval)}."),
        Alert("DbopsConnectionUtilizationHigh",
              f"dbops_connection_utilization_ratio > {t.connection_utilization:g} {scope}", "5m",
              "critical", "{{ $labels.instance }}: connections above "
              f"{_share(t.connection_utilization)} of max_connections",
              "{{ $value | humanizePercentage }} of max_connections in use (threshold "
              f"{_share(t.connection_utilization)}, health.thresholds.connection_utilization)."),
        Alert("DbopsSlowQuery",
              f"dbops_longest_query_duration_seconds > {_seconds(t.slow_query)} {scope}", "1m",
              "warning", f"{{{{ $labels.instance }}}}: a query runs longer than "
              f"{format_duration(t.slow_query)}",
              "The longest running query has run {{ $value | humanizeDuration }} (threshold "
              f"{format_duration(t.slow_query)}, health.thresholds.slow_query)."),
        Alert("DbopsPoolSlowQueries", f"dbops:pool_slow_queries:increase5m > 0 {scope}", "0m",
              "warning", "{{ $labels.instance }}: the pool saw slow queries",
              "{{ $value }} statements over the pool's slow_query_threshold in 5 minutes."),
        Alert("DbopsLongTransaction",
              f"dbops_oldest_transaction_age_seconds > {_seconds(t.long_transaction)} {scope}",
              "1m", "critical", "{{ $labels.instance }}: a transaction has been open longer than "
              f"{format_duration(t.long_transaction)}",
              "The oldest transaction is {{ $value | humanizeDuration }} old (threshold "
              f"{format_duration(t.long_transaction)}, health.thresholds.long_transaction)."),
        Alert("DbopsErrorRateHigh", f"dbops_rollback_ratio > {t.error_rate:g} {scope}", "5m",
              "critical", f"{{{{ $labels.instance }}}}: more than {_share(t.error_rate)} of "
              "transactions roll back",
              "{{ $value | humanizePercentage }} of transactions rolled back between checks "
              f"(threshold {_share(t.error_rate)}, health.thresholds.error_rate)."),
        Alert("DbopsPoolErrorRateHigh", f"dbops_pool_error_ratio > {t.error_rate:g} {scope}",
              "5m", "critical", f"{{{{ $labels.instance }}}}: more than {_share(t.error_rate)} "
              "of pool requests fail",
              "{{ $value | humanizePercentage }} of pool requests failed between checks "
              f"(threshold {_share(t.error_rate)}, health.thresholds.error_rate)."),
        Alert("DbopsPoolLeaks", f"dbops:pool_leaks:increase15m > 0 {scope}", "0m", "warning",
              "{{ $labels.instance }}: the {{ $labels.server }} pool leaks connections",
              "{{ $value }} connections held past leak_detection_threshold in 15 minutes."),
        Alert("DbopsPoolExhausted",
              f"(dbops_pool_waiting_requests > 0 and dbops_pool_utilization_ratio >= 1) {scope}",
              "1m", "critical", "{{ $labels.instance }}: the {{ $labels.server }} pool is "
              "exhausted", "Every connection is lent out and {{ $value }} requests wait."),
        Alert("DbopsReplicationLagHigh",
              f"dbops_replication_lag_seconds > {_seconds(t.replication_lag)} {scope}", "2m",
              "critical", "{{ $labels.replica }} lags more than "
              f"{format_duration(t.replication_lag)}",
              "{{ $labels.replica }} replays {{ $value | humanizeDuration }} behind (threshold "
              f"{format_duration(t.replication_lag)}, health.thresholds.replication_lag)."),
        Alert("DbopsReplicaNotStreaming", f"dbops_replication_streaming == 0 {scope}", "2m",
              "critical", "{{ $labels.replica }} does not stream WAL",
              "The replica's WAL stream is broken or silent; its lag will only grow."),
        Alert("DbopsTransactionIdAgeHigh",
              f"dbops_xid_wraparound_ratio > {XID_SHARE_THRESHOLD:g} {scope}", "15m", "critical",
              "{{ $labels.instance }}: transaction-ID age past "
              f"{_share(XID_SHARE_THRESHOLD)} of the wraparound limit",
              "Transaction-ID (or multixact) age is {{ $value | humanizePercentage }} of the "
              "wraparound limit; vacuum (freeze) the oldest tables."),
        Alert("DbopsBlockedLocks",
              f"dbops_lock_wait_max_seconds > {_seconds(t.slow_query)} {scope}", "1m", "critical",
              "{{ $labels.instance }}: sessions wait on a lock longer than "
              f"{format_duration(t.slow_query)}",
              "The longest lock wait is {{ $value | humanizeDuration }} (threshold "
              f"{format_duration(t.slow_query)}, health.thresholds.slow_query); "
              "`dbops health` names the head of the chain."),
        Alert("DbopsBackupOverdue", f"dbops_backup_overdue == 1 {scope}", "5m", "critical",
              "{{ $labels.instance }}: no backup on schedule",
              "The newest complete backup is older than backup.schedule allows; "
              "`dbops backup list` shows the catalog."),
        Alert("DbopsBackupVerificationFailed",
              f"dbops_backup_verification_failures > 0 {scope}", "0m", "critical",
              "{{ $labels.instance }}: a backup failed its verification",
              "{{ $value }} backups in the catalog failed their latest verification; "
              "`dbops backup verify` says why."),
        Alert("DbopsDriftDetected", f"dbops_drift_out_of_band_items > 0 {scope}", "0m",
              "warning", "{{ $labels.instance }}: the live database drifted from the plan",
              "The last `dbops drift` found {{ $value }} out-of-band differences."),
        Alert("DbopsApplyFailed", f"dbops:apply_failures:increase{APPLY_WINDOW} > 0 {scope}",
              "0m", "critical", "{{ $labels.instance }}: a `dbops apply` failed or rolled back",
              f"{{{{ $value }}}} applies failed or were rolled back in the last {APPLY_WINDOW}; "
              "`dbops audit` lists them."),
    )
    return RuleSet(env, recordings, alerts)


def to_groups(rules: RuleSet, runbook_base: str = RUNBOOK_BASE) -> dict[str, Any]:
    """The rule file's content, as Prometheus reads it."""
    env = rules.environment
    recordings: list[dict[str, Any]] = [{"record": r.record, "expr": r.expr}
                                        for r in rules.recordings]
    alerts: list[dict[str, Any]] = [
        {"alert": a.name, "expr": a.expr, "for": a.wait,
         "labels": {"severity": a.severity, "environment": env},
         "annotations": {"summary": a.summary, "description": a.description,
                         "runbook_url": f"{runbook_base}#{a.anchor}"}}
        for a in rules.alerts]
    # One group: its rules are evaluated in order, so an alert reads the recording made in the
    # same evaluation (groups run concurrently, and an alert in another group may see the last).
    return {"groups": [{"name": f"dbops-{env}", "rules": recordings + alerts}]}


def render(plan: Plan, source: str, runbook_base: str = RUNBOOK_BASE) -> str:
    """The rule file for `plan` as YAML, headed by how to make it again."""
    head = (f"# Generated by `dbops observability rules {plan.environment}` from {source}: "
            "do not edit, regenerate.\n")
    body = yaml.safe_dump(to_groups(rule_set(plan), runbook_base), sort_keys=False, width=1000,
                          allow_unicode=True)
    return head + body


_METRIC = re.compile(r"\b(dbops_[a-z0-9_]+)")


def metric_names(expression: str) -> set[str]:
    """The dbops metrics an expression reads (recording rules' `dbops:` names excluded)."""
    return set(_METRIC.findall(expression))
