"""The rollout: the canary first, a soak of health checks on it, then batches of `fleet.batch`
targets, `fleet.parallel` at a time. Each target's apply is a single-database apply (its own
lock, its own audit row, its own gates and rollback). The first failure halts the rollout:
in-flight targets stop before their next stage and roll back, no further target is touched."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from dbops import pipeline
from dbops.changes import ChangeSet
from dbops.config.model import Plan
from dbops.errors import DbopsError, DestroyRefused, StalePlan
from dbops.execute import isolate_threads
from dbops.fleet.planning import TargetPlan
from dbops.health.checks import gate_checks

Status = Literal["applied", "at plan", "rolled back", "failed", "untouched", "skipped"]
Notify = Callable[[str], None]
SOAK_INTERVAL = 5.0  # seconds between health checks of the canary while it soaks


@dataclass(frozen=True)
class TargetOutcome:
    id: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Options:
    allow_restart: bool
    allow_destroy: bool
    skip_backup: bool
    lock_wait: timedelta


@dataclass(frozen=True)
class RolloutReport:
    rollout_id: str
    order: tuple[str, ...]
    outcomes: tuple[TargetOutcome, ...]
    reason: str = ""  # why it halted; empty when it finished

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass
class _Halt:
    """The first failure's reason, seen by every in-flight target before its next stage."""

    reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, reason: str) -> None:
        with self.lock:
            self.reason = self.reason or reason

    def __call__(self) -> str:
        return self.reason


def order(targets: list[TargetPlan], canary: int) -> tuple[list[TargetPlan], list[TargetPlan]]:
    """The canary (the first `canary` targets with changes) and the rest with changes, in fleet
    order."""
    pending = [t for t in targets if t.pending]
    return pending[:canary], pending[canary:]


def roll_out(plan: Plan, targets: list[TargetPlan], options: Options, *, notify: Notify,
             rollout_id: str | None = None) -> RolloutReport:
    """Apply every pending target of `targets` (planned and shown before), canary first."""

    assert plan.fleet is not None
    isolate_threads()
    fleet = plan.fleet
    rollout_id = rollout_id or uuid.uuid4().hex[:12]
    canary, rest = order(targets, fleet.canary)
    outcomes: dict[str, TargetOutcome] = {
        t.target.id: TargetOutcome(t.target.id, "at plan") for t in targets if not t.pending}
    halt = _Halt()
    phases = [canary] + [rest[n:n + fleet.batch] for n in range(0, len(rest), fleet.batch)]
    for number, phase in enumerate(p for p in phases if p):
        if halt():
            outcomes.update({t.target.id: TargetOutcome(t.target.id, "untouched") for t in phase})
            continue
        label = "canary" if number == 0 and canary else f"batch {number if canary else number + 1}"
        notify(f"{label}: {', '.join(t.target.id for t in phase)}")
        outcomes.update(_phase(phase, fleet.parallel, options, halt, notify))
        if not halt() and number == 0 and canary and fleet.soak > timedelta(0):
            _soak(canary, fleet.soak, halt, notify)
            if halt():
                outcomes.update({t.target.id: TargetOutcome(t.target.id, "failed", halt())
                                 for t in canary})
    ordered = tuple(t.target.id for t in [*canary, *rest])
    return RolloutReport(rollout_id, ordered,
                         tuple(outcomes[t.target.id] for t in targets if t.target.id in outcomes),
                         halt())


def _phase(phase: list[TargetPlan], parallel: int, options: Options, halt: _Halt,
           notify: Notify) -> dict[str, TargetOutcome]:
    def one(target: TargetPlan) -> TargetOutcome:
        if halt():
            return TargetOutcome(target.target.id, "untouched")
        outcome = apply_target(target, options, halt=halt, notify=notify)
        if outcome.status in ("failed", "rolled back") and not halt():
            halt.set(f"{target.target.id}: {outcome.detail}")
            return TargetOutcome(target.target.id, "failed", outcome.detail)
        return outcome

    with ThreadPoolExecutor(max_workers=min(parallel, len(phase)),
                            thread_name_prefix="dbops-rollout") as pool:
        return {o.id: o for o in pool.map(one, phase)}


def apply_target(target: TargetPlan, options: Options, *, halt: Callable[[], str],
                 notify: Notify) -> TargetOutcome:
    """What `dbops apply` does for one database: under its apply lock, plan again, refuse a
    ChangeSet that is not the one shown, then execute with gates and rollback."""

    the_plan, name = target.plan, target.target.id

    def say(message: str) -> None:
        notify(f"[{name}] {message}")

    try:
        with pipeline.apply_lock(the_plan, options.lock_wait) as lock_pid:
            planned = pipeline.plan(the_plan, command="apply")
            if target.changeset is not None:
                check_shown(target.changeset, planned.changeset, name)
            if planned.changeset.empty and not planned.live.unfinished:
                return TargetOutcome(name, "at plan")
            pipeline.check_privileges(planned, doctor=f"dbops doctor {the_plan.environment}")
            if planned.changeset.destroys and not options.allow_destroy:
                raise DestroyRefused(f"{len(planned.changeset.destroys)} change(s) drop data or "
                                     "access: apply them with --allow-destroy")
            report = pipeline.apply(the_plan, planned.changeset, planned.live,
                                    allow_restart=options.allow_restart,
                                    skip_backup=options.skip_backup, notify=say,
                                    lock_pid=lock_pid, halted=halt)
    except DbopsError as exc:
        say(f"failed before any change: {exc}")
        return TargetOutcome(name, "failed", str(exc).splitlines()[0])
    if report.result == "applied":
        say("applied")
        return TargetOutcome(name, "applied")
    say(f"{report.result}: {report.reason}")
    if report.result == "rolled back":
        return TargetOutcome(name, "rolled back", report.reason)
    if not report.not_undone and report.reason.startswith("halted before"):
        return TargetOutcome(name, "untouched", report.reason)
    left = f" (NOT undone: {', '.join(report.not_undone)})" if report.not_undone else ""
    return TargetOutcome(name, "failed", report.reason + left)


def check_shown(shown: ChangeSet, fresh: ChangeSet, name: str) -> None:
    """Apply runs nothing that was not shown: every change planned now must be, statement for
    statement, one the fleet plan showed for this target. Fewer is fine: targets on one server
    share its settings, so a sibling may have made one already."""
    before = {c.address: c.executable() for c in shown.changes}
    for change in fresh.changes:
        if before.get(change.address) != change.executable():
            raise StalePlan(f"target {name}: {change.address} is not the change shown "
                            "(the database changed since the fleet was planned): plan again")


def _soak(canary: list[TargetPlan], soak: timedelta, halt: _Halt, notify: Notify) -> None:
    """Health checks on the canary for `soak`; a critical result halts the rollout."""

    deadline = time.monotonic() + soak.total_seconds()
    notify(f"soak: health checks on the canary for {soak.total_seconds():g}s")
    while True:
        for target in canary:
            try:
                failed = [r for r in gate_checks(target.plan, command="fleet-soak")
                          if r.status == "critical"]
            except DbopsError as exc:
                halt.set(f"soak: {target.target.id}: {exc}")
                return
            if failed:
                halt.set(f"soak: {target.target.id}: "
                         + "; ".join(f"{r.name}: {r.message}" for r in failed))
                return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SOAK_INTERVAL, left))
