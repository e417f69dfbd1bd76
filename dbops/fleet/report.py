"""A fleet in words: the plan summary (targets grouped by identical changes), the rollout's
per-target table and its audit line, and the per-target drift and health summaries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dbops.changes import ChangeSet
from dbops.fleet.planning import TargetPlan, groups
from dbops.fleet.rollout import RolloutReport

MAX_LISTED = 30  # target ids printed per line before "... and N more"


def listed(ids: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(ids[:MAX_LISTED])
    return shown + (f", ... and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


def _describe(changeset: ChangeSet) -> str:
    if changeset.empty:
        return "no changes (at the plan)"
    kinds: dict[str, dict[str, int]] = {}
    for change in changeset.changes:
        verb = {"+": "to add", "-": "to remove"}.get(change.action, "to change")
        counts = kinds.setdefault(change.kind, {})
        counts[verb] = counts.get(verb, 0) + 1
    return "; ".join(f"{n} {kind}{'s' if n > 1 else ''} {verb}"
                     for kind, counts in kinds.items() for verb, n in counts.items())


def plan_lines(environment: str, results: list[TargetPlan]) -> list[str]:
    """The fleet summary: counts, one line per group of identical changes (with its addresses),
    then the targets that could not be planned."""
    unreachable = [r for r in results if r.unreachable]
    broken = [r for r in results if r.changeset is None and not r.unreachable]
    pending = [r for r in results if r.pending]
    lines = [f"fleet {environment}: {len(results)} target(s), {len(pending)} with changes, "
             f"{len(results) - len(pending) - len(unreachable) - len(broken)} at the plan, "
             f"{len(unreachable)} unreachable" + (f", {len(broken)} failed to plan" if broken
                                                  else "")]
    for group in groups(results):
        lines.append(f"  {len(group.targets)} target(s): {_describe(group.changeset)}")
        lines += [f"      {c.action} {c.address}" for c in group.changeset.changes[:20]]
        lines.append(f"    {listed(group.targets)}")
    unfinished = [r.target.id for r in results if r.unfinished]
    if unfinished:
        lines.append(f"  an earlier apply died on: {listed(unfinished)} (apply records it)")
    lines += [f"  unreachable: {r.target.id}: {r.error}" for r in unreachable]
    lines += [f"  failed to plan: {r.target.id}: {r.error}" for r in broken]
    return lines


def plan_json(environment: str, results: list[TargetPlan]) -> str:
    targets: list[dict[str, Any]] = []
    for r in results:
        entry: dict[str, Any] = {"id": r.target.id}
        if r.changeset is None:
            entry["status"] = "unreachable" if r.unreachable else "error"
            entry["error"] = r.error
        else:
            entry["status"] = "changes" if r.pending else "at plan"
            entry["changeset"] = r.changeset.to_dict()
        targets.append(entry)
    grouped = [{"targets": list(g.targets), "changes": [c.address for c in g.changeset.changes]}
               for g in groups(results)]
    return json.dumps({"environment": environment, "targets": targets, "groups": grouped},
                      indent=2, default=str)


def rollout_lines(report: RolloutReport, skipped: list[str]) -> list[str]:
    """The per-target table, in rollout order, then the targets left alone."""
    head = (f"rollout {report.rollout_id} "
            + ("finished" if report.ok else f"halted: {report.reason}"))
    width = max([len(o.id) for o in report.outcomes] + [6])
    lines = [head, f"  {'target':<{width}}  {'status':<11}  detail"]
    lines += [f"  {o.id:<{width}}  {o.status:<11}  {o.detail}".rstrip() for o in report.outcomes]
    lines += [f"  {s:<{width}}  {'skipped':<11}  unreachable (--skip-unreachable)"
              for s in skipped]
    return lines


def rollout_detail(report: RolloutReport, skipped: list[str], resumed: str | None) -> str:
    """The rollout's audit record: its id, order and outcome per status."""
    by: dict[str, list[str]] = {}
    for outcome in report.outcomes:
        by.setdefault(outcome.status, []).append(outcome.id)
    parts = [f"rollout {report.rollout_id}" + (f" (resumes {resumed})" if resumed else ""),
             f"order {','.join(report.order)}",
             *(f"{status} {','.join(ids)}" for status, ids in by.items()),
             *([f"skipped unreachable {','.join(skipped)}"] if skipped else []),
             *([f"halted: {report.reason}"] if report.reason else [])]
    return "; ".join(parts)


@dataclass(frozen=True)
class TargetCheck:
    """One target's drift or health: its exit code and what it printed."""

    id: str
    code: int
    lines: tuple[str, ...]


def worst(codes: list[int], severity: tuple[int, ...]) -> int:
    """The worst exit code, `severity` listing the codes from best to worst."""
    return max(codes, key=severity.index, default=0)


def check_lines(what: str, checks: list[TargetCheck], names: dict[int, str]) -> list[str]:
    lines: list[str] = []
    for check in checks:
        lines.append(f"== {check.id}: {names.get(check.code, f'exit {check.code}')}")
        lines += [f"   {line}" for line in check.lines]
    counts: dict[str, list[str]] = {}
    for check in checks:
        counts.setdefault(names.get(check.code, f"exit {check.code}"), []).append(check.id)
    lines.append(f"fleet {what}: " + "; ".join(f"{len(ids)} {name} ({listed(ids)})"
                                              for name, ids in counts.items()))
    return lines
