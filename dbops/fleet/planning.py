"""Plan, drift and health over a fleet: each target through the single-database pipeline,
`fleet.parallel` at a time; a target that cannot be reached is a result, not an error."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from dbops import pipeline
from dbops.changes import ChangeSet
from dbops.config.fleet import target_plan
from dbops.config.model import FleetTarget, Plan
from dbops.errors import ConnectFailed, DbopsError

T = TypeVar("T")


@dataclass(frozen=True)
class TargetPlan:
    """One target's plan: its ChangeSet, or why there is none (unreachable, or another error)."""

    target: FleetTarget
    plan: Plan
    changeset: ChangeSet | None
    unfinished: bool = False  # an apply that died left something for the next one to record
    unreachable: bool = False
    error: str = ""

    @property
    def pending(self) -> bool:
        return self.changeset is not None and (not self.changeset.empty or self.unfinished)


@dataclass(frozen=True)
class Group:
    """Targets whose ChangeSets make the same changes."""

    changeset: ChangeSet  # the first target's
    targets: tuple[str, ...]


def each(plan: Plan, targets: tuple[FleetTarget, ...],
         work: Callable[[FleetTarget, Plan], T]) -> list[T]:
    """`work` on every target's plan, `fleet.parallel` at a time, results in fleet order."""
    assert plan.fleet is not None
    plans = [(t, target_plan(plan, t)) for t in targets]
    if not plans:
        return []
    with ThreadPoolExecutor(max_workers=min(plan.fleet.parallel, len(plans)),
                            thread_name_prefix="dbops-fleet") as pool:
        return list(pool.map(lambda pair: work(*pair), plans))


def plan_fleet(plan: Plan, targets: tuple[FleetTarget, ...], *,
               command: str = "plan") -> list[TargetPlan]:
    """Every target planned (read-only)."""

    def one(target: FleetTarget, the_plan: Plan) -> TargetPlan:
        try:
            planned = pipeline.plan(the_plan, command=command)
        except ConnectFailed as exc:
            return TargetPlan(target, the_plan, None, unreachable=True, error=str(exc))
        except DbopsError as exc:
            return TargetPlan(target, the_plan, None, error=str(exc).splitlines()[0])
        return TargetPlan(target, the_plan, planned.changeset,
                          unfinished=bool(planned.live.unfinished))

    return each(plan, targets, one)


def change_key(changeset: ChangeSet) -> tuple[tuple[str, str, str, str], ...]:
    """What two targets must share to be one group: the same changes, from the same values."""
    return tuple((c.address, c.action, str(c.before), str(c.after)) for c in changeset.changes)


def groups(results: list[TargetPlan]) -> list[Group]:
    """Planned targets grouped by identical changes, largest group first (then fleet order)."""
    found: dict[tuple[tuple[str, str, str, str], ...], tuple[ChangeSet, list[str]]] = {}
    for result in results:
        if result.changeset is None:
            continue
        key = change_key(result.changeset)
        found.setdefault(key, (result.changeset, []))[1].append(result.target.id)
    ordered = sorted(found.values(), key=lambda g: -len(g[1]))
    return [Group(changeset, tuple(ids)) for changeset, ids in ordered]
