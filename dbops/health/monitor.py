"""HealthMonitor: check cycles on a background thread, history, trends, alerts and recovery.

```python
from dbops import HealthMonitor

monitor = HealthMonitor.from_plan("production", pool=pool_manager)
monitor.start_monitoring()              # a daemon thread, one cycle per health.check_interval
monitor.current()                       # the latest HealthReport
monitor.history(limit=20)               # oldest first
monitor.summary()                       # a HealthSummary: statuses, trends, alerts, recovery
monitor.check_now()                     # one cycle now
monitor.stop_monitoring()
```

The seed's names (get_current_health, get_health_history, get_health_report,
force_health_check) remain as aliases.

A cycle never ends the thread: a database that is down is a critical report, and anything
unexpected is logged with its traceback on `dbops.health.monitor`, counted, and the next cycle
runs on time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.health.alerts import AlertDispatcher, AlertEvent
from dbops.health.checks import Checker
from dbops.health.operations import Operations, OperationsReader
from dbops.health.pool_checks import AttachedPool
from dbops.health.probe import ServerIdentity
from dbops.health.recovery import Recoverer
from dbops.health.result import HealthReport, Status
from dbops.health.timeline import HealthHistory, history_path
from dbops.health.trends import Trend, trends

LOG = logging.getLogger("dbops.health.monitor")
MIN_INTERVAL = 0.05


@dataclass(frozen=True)
class CheckSummary:
    name: str
    status: Status
    value: float | None
    message: str
    ok_share: float
    """Share of the cycles in the history in which the check was ok."""
    since: datetime | None
    """When the check entered its current status, as far as the history reaches."""


@dataclass(frozen=True)
class HealthSummary:
    environment: str
    generated_at: datetime
    current: HealthReport | None
    checks: tuple[CheckSummary, ...]
    trends: tuple[Trend, ...]
    alerts: tuple[AlertEvent, ...]
    recovery: tuple[str, ...]
    cycles: int
    failures: int
    running: bool

    @property
    def status(self) -> Status:
        return self.current.status if self.current else "critical"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "environment": self.environment,
            "generated_at": self.generated_at.isoformat(),
            "status": self.status,
            "running": self.running,
            "cycles": self.cycles,
            "failures": self.failures,
            "current": self.current.to_dict() if self.current else None,
            "checks": [{"name": c.name, "status": c.status, "value": c.value,
                        "message": c.message, "ok_share": round(c.ok_share, 4),
                        "since": c.since.isoformat() if c.since else None}
                       for c in self.checks],
            "trends": [t.to_dict() for t in self.trends],
            "alerts": [a.to_dict() for a in self.alerts],
            "recovery": list(self.recovery),
        }


class HealthMonitor:
    """Keyword arguments:
        pool: an AttachedPool whose metrics are checked and which recovery may reset.
        persist: keep the history under .dbops/health/ as well as in memory.
        alerts: send the plan's alerts (False: only record).
        recover: apply the plan's recovery policy (it is still opt-in there).
        interval: seconds between cycles (default: health.check_interval).
        operations: read what dbops' operations left behind (backups, applies, migrations,
            drift) for /metrics, at most once a minute.
    """

    def __init__(self, plan: Plan, *, pool: AttachedPool | None = None, persist: bool = True,
                 alerts: bool = True, recover: bool = True, interval: float | None = None,
                 history_size: int = 2880, operations: bool = True) -> None:
        self.plan = plan
        self.interval = max(interval if interval is not None
                            else plan.health.check_interval.total_seconds(), MIN_INTERVAL)
        self._history = HealthHistory(plan.environment, history_path(plan) if persist else None,
                                      size=history_size)
        self._checker = Checker(plan, pool=pool, baseline=self._history.latest())
        self._dispatcher = AlertDispatcher.from_plan(plan) if alerts else None
        self._recoverer = Recoverer(plan, pool=pool) if recover else None
        self._reader = OperationsReader(plan) if operations else None
        self._operations: Operations | None = None
        self._identity: ServerIdentity | None = None
        self._actions: deque[str] = deque(maxlen=200)
        self._cycle_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: HealthReport | None = None
        self.cycles = 0
        self.failures = 0
        self.last_error: str | None = None

    @classmethod
    def from_plan(cls, plan: Plan | str | Path, **kwargs: Any) -> HealthMonitor:
        """A monitor for a Plan, an environment name or a plan file (see __init__ for kwargs)."""
        if not isinstance(plan, Plan):
            plan = load_plan(str(plan))
        return cls(plan, **kwargs)

    def attach_pool(self, pool: AttachedPool | None) -> None:
        with self._cycle_lock:
            self._checker.pool = pool
            if self._recoverer is not None:
                self._recoverer.pool = pool

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_monitoring(self, *, force: bool = False) -> bool:
        """Start the background thread; False when the plan turns monitoring off
        (health.enabled or health.monitoring false) and `force` is not given."""
        if self.running:
            return True
        if not force and not (self.plan.health.enabled and self.plan.health.monitoring):
            LOG.info("health monitoring is off in the plan for %s", self.plan.environment)
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"dbops-health-{self.plan.environment}")
        self._thread.start()
        return True

    def stop_monitoring(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the cycle under way), flush alerts and close connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._dispatcher is not None:
            self._dispatcher.close(timeout=min(timeout, 5.0))
        with self._cycle_lock:
            self._checker.close()

    close = stop_monitoring

    def __enter__(self) -> HealthMonitor:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_monitoring()

    def check_now(self) -> HealthReport:
        """Run one cycle now (waiting for one under way), record it, alert and recover."""
        with self._cycle_lock:
            return self._cycle()

    def _cycle(self) -> HealthReport:
        """One cycle; the caller holds the cycle lock."""
        report = self._checker.run()
        if self._recoverer is not None:
            steps = self._recoverer.run(report, self._checker, previous=self._identity)
            if steps:
                report = replace(report, actions=tuple(s.line for s in steps))
        if report.identity is not None:
            self._identity = report.identity
        found = (self._reader.read(self._checker.on_primary)
                 if self._reader is not None and report.error is None else None)
        with self._state_lock:
            self._operations = found or self._operations
            self._history.add(report)
            self._actions.extend(report.actions)
            self._current = report
            self.cycles += 1
        if self._dispatcher is not None:
            self._dispatcher.observe(report)
        return report

    def current(self, *, max_age: float | None = None) -> HealthReport:
        """The latest report; a fresh cycle when there is none or it is older than `max_age`."""
        current = self.latest()
        if current is not None and not _stale(current, max_age):
            return current
        with self._cycle_lock:
            current = self.latest()  # a cycle that ran while we waited will do
            if current is not None and not _stale(current, max_age):
                return current
            return self._cycle()

    def latest(self) -> HealthReport | None:
        """The latest report without running a cycle (None before the first)."""
        with self._state_lock:
            return self._current

    def operations(self) -> Operations | None:
        """What the latest cycle read of backups, applies, migrations and drift (None when the
        monitor does not read them)."""
        with self._state_lock:
            return self._operations

    def alert_stats(self) -> dict[str, int]:
        """Alerts delivered, failed attempts, alerts given up, alerts dropped."""
        return dict(self._dispatcher.stats) if self._dispatcher is not None else {}

    def history(self, limit: int | None = None) -> list[HealthReport]:
        """Reports oldest first (after a restart, those read back from disk carry no messages)."""
        with self._state_lock:
            return self._history.reports(limit)

    def summary(self) -> HealthSummary:
        """The latest report, each check's recent figures and trends, alerts and recovery."""
        with self._state_lock:
            history = self._history.reports()
            current = self._current or (history[-1] if history else None)
            actions = tuple(self._actions)
        alerts = tuple(self._dispatcher.recent) if self._dispatcher is not None else ()
        return HealthSummary(
            environment=self.plan.environment, generated_at=datetime.now(UTC), current=current,
            checks=_summaries(current, history), trends=tuple(trends(history, time.time())),
            alerts=alerts, recovery=actions, cycles=self.cycles, failures=self.failures,
            running=self.running)

    # The seed's names (from the JavaScript monitor dbops replaced), kept as aliases.
    force_health_check = check_now
    get_current_health = current
    get_health_history = history
    get_health_report = summary

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                begun = time.monotonic()
                try:
                    self.check_now()
                except Exception as exc:  # the thread must outlive any one cycle
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    LOG.exception("health check cycle for %s failed; monitoring goes on",
                                  self.plan.environment)
                self._stop.wait(max(self.interval - (time.monotonic() - begun), 0.0))
        except BaseException:
            LOG.critical("the health monitor thread for %s stopped", self.plan.environment,
                         exc_info=True)
            raise


def _stale(report: HealthReport, max_age: float | None) -> bool:
    return max_age is not None and (datetime.now(UTC) - report.checked_at).total_seconds() > max_age


def _summaries(current: HealthReport | None,
               history: list[HealthReport]) -> tuple[CheckSummary, ...]:
    """Per check of `current`: its share of ok cycles and since when it has had its status."""
    if current is None:
        return ()
    now = {r.name: r.status for r in current.results}
    counts: dict[str, list[int]] = {}
    since: dict[str, datetime] = {}
    ended: set[str] = set()
    for report in reversed(history):
        for r in report.results:
            if r.name not in now:
                continue
            tally = counts.setdefault(r.name, [0, 0])
            tally[0] += r.status == "ok"
            tally[1] += 1
            if r.name not in ended:
                if r.status == now[r.name]:
                    since[r.name] = report.checked_at
                else:
                    ended.add(r.name)
    return tuple(
        CheckSummary(r.name, r.status, r.value, r.message,
                     counts[r.name][0] / counts[r.name][1] if r.name in counts else 1.0,
                     since.get(r.name, current.checked_at))
        for r in current.results)
