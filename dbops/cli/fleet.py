"""`dbops plan|apply|drift|health` on a plan with `fleet`: every target, a fleet summary, and
the exit code of the worst target."""

from __future__ import annotations

import json
import sys
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from dbops import audit, pipeline
from dbops.cli import exits
from dbops.cli.common import _confirm
from dbops.cli.exits import EXIT_CHANGES, EXIT_ERROR
from dbops.config.fleet import chosen
from dbops.connect import mask
from dbops.errors import DbopsError
from dbops.fleet import planning, report, rollout
from dbops.health import command
from dbops.render import drift_report

if TYPE_CHECKING:
    from dbops.config.model import FleetTarget, Plan
    from dbops.fleet.planning import TargetPlan
    from dbops.fleet.report import TargetCheck
    from dbops.fleet.rollout import RolloutReport

DRIFT_SEVERITY = (0, 3, 2, 1)  # in sync < pending < out-of-band < could not check
DRIFT_NAMES = {0: "in sync", 2: "out-of-band drift", 3: "pending configuration",
               1: "could not check"}
HEALTH_SEVERITY = (0, 2, 3, 1)  # healthy < warning < critical < could not check
HEALTH_NAMES = {0: "healthy", 2: "warning", 3: "critical", 1: "could not check"}

_echo_lock = threading.Lock()


def _say(message: str) -> None:
    with _echo_lock:
        click.echo(mask(message))


def targets_of(the_plan: Plan, ids: tuple[str, ...]) -> tuple[FleetTarget, ...]:
    if the_plan.fleet is None:
        if ids:
            raise DbopsError("--target names a target of the plan's fleet: this plan has no fleet")
        return ()
    return chosen(the_plan, ids)


def plan(the_plan: Plan, ids: tuple[str, ...], *, fmt: str, diff: bool) -> None:

    if fmt == "markdown":
        raise DbopsError("--format markdown shows one database: a fleet plan is text or json")
    results = planning.plan_fleet(the_plan, targets_of(the_plan, ids))
    if fmt == "json":
        click.echo(report.plan_json(the_plan.environment, results))
    else:
        click.echo(mask("\n".join(report.plan_lines(the_plan.environment, results))))
    if any(r.changeset is None for r in results):
        sys.exit(EXIT_ERROR)
    if diff and any(r.pending for r in results):
        sys.exit(EXIT_CHANGES)


def apply(the_plan: Plan, ids: tuple[str, ...], *, yes: bool, dry_run: bool, resume: bool,
          skip_unreachable: bool, allow_restart: bool, allow_destroy: bool, skip_backup: bool,
          lock_wait: timedelta) -> None:
    """Plan every target, refuse (or skip) what cannot be reached, show, confirm, roll out."""

    assert the_plan.fleet is not None
    last = audit.last_rollout(the_plan)
    halted = last is not None and last.result == "failed"
    resumed = last.detail.split(";")[0].removeprefix("rollout ").split(" ")[0] if last else None
    if resume and not halted:
        raise DbopsError("--resume continues a halted rollout: the last rollout of "
                         f"{the_plan.environment} did not halt" if last else
                         f"--resume: no rollout of {the_plan.environment} in the audit log")
    if halted and not resume and last is not None:
        why = last.detail.split("halted: ")[-1][:300]
        raise DbopsError(f"rollout {resumed} of {the_plan.environment} halted ({why}): fix the "
                         f"cause, then continue it with `dbops apply {the_plan.environment} "
                         "--resume`")
    results = planning.plan_fleet(the_plan, targets_of(the_plan, ids), command="apply")
    click.echo(mask("\n".join(report.plan_lines(the_plan.environment, results))))
    broken = [r for r in results if r.changeset is None and not r.unreachable]
    unreachable = [r for r in results if r.unreachable]
    if broken:
        raise DbopsError(f"apply refused, nothing was changed: {broken[0].target.id} could not "
                         f"be planned: {broken[0].error}")
    if unreachable and not skip_unreachable:
        raise DbopsError("apply refused, nothing was changed: unreachable target(s) "
                         f"{report.listed([r.target.id for r in unreachable])} (fix them, or "
                         "roll out without them with --skip-unreachable)")
    reachable = [r for r in results if not r.unreachable]
    canary, rest = rollout.order(reachable, the_plan.fleet.canary)
    options = rollout.Options(allow_restart=allow_restart, allow_destroy=allow_destroy,
                              skip_backup=skip_backup, lock_wait=lock_wait)
    if not canary and not rest:
        if resume or unreachable:  # a resume that finds nothing left still ends the halt
            _record(the_plan, reachable, rollout.roll_out(the_plan, reachable, options,
                                                          notify=_say),
                    unreachable, resumed if resume else None)
        return
    click.echo(f"rollout order: canary {report.listed([t.target.id for t in canary])}"
               + (f", then {len(rest)} in batches of {the_plan.fleet.batch}, "
                  f"{the_plan.fleet.parallel} at a time" if rest else ""))
    if dry_run:
        return
    destroys = [r.target.id for r in reachable if r.changeset and r.changeset.destroys]
    if destroys and not allow_destroy:
        raise DbopsError(f"apply refused, nothing was changed: changes that drop data or "
                         f"access on {report.listed(destroys)}: apply them with --allow-destroy")
    _confirm(f"roll out to {len(canary) + len(rest)} target(s)", the_plan.environment, yes)
    outcome = rollout.roll_out(the_plan, reachable, options, notify=_say)
    _record(the_plan, reachable, outcome, unreachable, resumed if resume else None)
    lines = report.rollout_lines(outcome, [r.target.id for r in unreachable])
    for line in lines:
        click.echo(mask(line), err=not outcome.ok)
    if not outcome.ok:
        sys.exit(EXIT_ERROR)


def _record(the_plan: Plan, reachable: list[TargetPlan], outcome: RolloutReport,
            unreachable: list[TargetPlan], resumed: str | None) -> None:

    where = next((r.plan for r in reachable if r.target.id in outcome.order[:1]),
                 reachable[0].plan if reachable else the_plan)
    audit.record_rollout(where, report.rollout_detail(
        outcome, [r.target.id for r in unreachable], resumed),
        result="done" if outcome.ok else "failed")


def drift(the_plan: Plan, ids: tuple[str, ...], *, fmt: str) -> None:

    def one(target: FleetTarget, target_plan: Plan) -> TargetCheck:
        try:
            found = pipeline.drift(target_plan)
        except DbopsError as exc:
            return report.TargetCheck(target.id, EXIT_ERROR, (f"error: {exc}",))
        code = exits.drift(found)
        return report.TargetCheck(target.id, code,
                                  (drift_report.json(found, code),) if fmt == "json"
                                  else tuple(drift_report.lines(found)))

    checks = planning.each(the_plan, targets_of(the_plan, ids), one)
    _finish(checks, "drift", fmt, DRIFT_NAMES, DRIFT_SEVERITY)


def health(the_plan: Plan, ids: tuple[str, ...], *, fmt: str) -> None:

    def one(target: FleetTarget, target_plan: Plan) -> TargetCheck:
        lines: list[str] = []
        try:
            checked = command.run_health(target_plan, fmt, False, echo=lines.append)
        except DbopsError as exc:
            return report.TargetCheck(target.id, EXIT_ERROR, (f"error: {exc}",))
        return report.TargetCheck(target.id, exits.health(checked), tuple(lines))

    checks = planning.each(the_plan, targets_of(the_plan, ids), one)
    _finish(checks, "health", fmt, HEALTH_NAMES, HEALTH_SEVERITY)


def _finish(checks: list[TargetCheck], what: str, fmt: str, names: dict[int, str],
            severity: tuple[int, ...]) -> None:


    code = report.worst([c.code for c in checks], severity)
    if fmt == "json":
        def parsed(lines: tuple[str, ...]) -> object:
            try:
                return json.loads("\n".join(lines))
            except ValueError:
                return {"error": " ".join(lines)}
        click.echo(json.dumps({"exit_code": code, "targets": [
            {"id": c.id, "exit_code": c.code, what: parsed(c.lines)} for c in checks]},
            indent=2))
    else:
        click.echo(mask("\n".join(report.check_lines(what, checks, names))))
    sys.exit(code)
