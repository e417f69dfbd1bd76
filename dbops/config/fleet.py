"""A fleet plan's targets as plans of their own: the plan's document with one target's
`database.*` overrides merged in, checked like any plan, each problem located in the file."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

from dbops.config import inventory, schema, semantics
from dbops.config.model import FleetTarget, Plan, build_plan
from dbops.config.source import Document, JsonPath, Origin, display_path, walk
from dbops.errors import InventoryError, PlanError, Problem

_TARGET_PATH = re.compile(r"^fleet\.targets\[(\d+)\]")


def expand(doc: Document, root: Path, *, cache: Path | None = None) -> list[Problem]:
    """Exactly one of `targets` / `inventory_group`; for a group, its hosts (inventory order)
    become `targets` (id: the host's `fleet_id` data or its name; its `database` data the
    overrides, checked as a written target's), every problem located at the group's key."""
    block = doc.data.get("fleet")
    if not isinstance(block, dict):
        return []
    if ("targets" in block) == ("inventory_group" in block):
        return [doc.problem(("fleet",), "name exactly one of fleet.targets and "
                            "fleet.inventory_group (the targets, or the inventory group whose "
                            "hosts they are)", at_key=True)]
    if "targets" in block:
        return []
    at: JsonPath = ("fleet", "inventory_group")
    group = block["inventory_group"]
    if "inventory" not in doc.data:
        return [doc.problem(at, "an inventory group needs the plan's inventory file "
                                "(top-level `inventory`)")]
    path = root / doc.data["inventory"]
    try:
        hosts = inventory.read(path)
    except InventoryError as exc:
        return [doc.problem(at, str(exc))]
    members = [h for h in hosts if h.group == group]
    if not members:
        names = list(dict.fromkeys(h.group for h in hosts))
        groups = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") or "none"
        return [doc.problem(at, f"no group '{group}' in {display_path(path)} (groups: {groups})")]
    targets: list[dict[str, Any]] = []
    for host in members:
        target: dict[str, Any] = {"id": host.data.get("fleet_id", host.name)}
        if "database" in host.data:
            target["database"] = copy.deepcopy(host.data["database"])
        targets.append(target)
    block["targets"] = targets
    where = doc.origin(at)
    if where is not None:
        for sub, _ in walk(targets, ("fleet", "targets")):
            doc.origins[sub] = where
    found = []
    for problem in schema.validate(doc, cache=cache):
        if not problem.path.startswith("fleet.targets"):
            continue  # the written plan validated before; only the synthesized targets are new
        match = _TARGET_PATH.match(problem.path)
        whose = (f"inventory host {members[int(match.group(1))].name}" if match
                 else "inventory")
        found.append(dataclasses.replace(problem, message=f"{whose} (group {group}): "
                                         f"{problem.message}"))
    block["hosts"] = [h.name for h in members]
    return found


def problems(doc: Document) -> list[Problem]:
    """What the schema cannot say about `fleet`: ids and databases named once, a canary the
    fleet can give, and every target's merged database section checked like the plan's."""
    block = doc.data.get("fleet")
    if not isinstance(block, dict):
        return []
    found: list[Problem] = []
    targets = block["targets"]
    if block["canary"] >= len(targets) and len(targets) > 1:
        found.append(doc.problem(("fleet", "canary"), f"a canary of {block['canary']} leaves no "
                                 f"target for the batches (the fleet has {len(targets)})"))
    ids: dict[str, int] = {}
    places: dict[tuple[str, int, str], str] = {}
    for n, target in enumerate(targets):
        if target["id"] in ids:
            found.append(doc.problem(("fleet", "targets", n, "id"),
                                     f"target id '{target['id']}' is used twice (first at "
                                     f"fleet.targets[{ids[target['id']]}])"))
        ids.setdefault(target["id"], n)
        merged = target_document(doc, n)
        db = merged.data["database"]
        place = (str(db["host"]), int(db["port"]), str(db["name"]))
        if place in places:
            found.append(doc.problem(("fleet", "targets", n, "database"),
                                     f"target '{target['id']}' is the same database as target "
                                     f"'{places[place]}' ({place[2]} on {place[0]}:{place[1]})"))
        places.setdefault(place, target["id"])
        found += [p for p in semantics.check(merged) if p not in found]
    return found


def target_document(doc: Document, index: int) -> Document:
    """The plan's document as target `index` sees it: its overrides in the database section
    (their origins too, so a problem points at the override), and no fleet block."""
    data: dict[str, Any] = copy.deepcopy(doc.data)
    block = data.pop("fleet")
    overrides: dict[str, Any] = block["targets"][index].get("database", {})
    data["database"] = {**data["database"], **overrides}
    prefix: JsonPath = ("fleet", "targets", index, "database")

    def moved(origins: dict[JsonPath, Origin]) -> dict[JsonPath, Origin]:
        kept = {p: o for p, o in origins.items() if p[:1] != ("fleet",)
                and not (p[:1] == ("database",) and len(p) > 1 and p[1] in overrides)}
        kept.update({("database", *p[len(prefix):]): o for p, o in origins.items()
                     if p[:len(prefix)] == prefix and len(p) > len(prefix)})
        return kept

    return Document(data=data, origins=moved(doc.origins), key_origins=moved(doc.key_origins),
                    interpolated=set(doc.interpolated), deferred=dict(doc.deferred),
                    references=dict(doc.references))


def target_plan(plan: Plan, target: FleetTarget) -> Plan:
    """The single-database plan of one target: what plan, apply and drift run for it."""
    doc = target_document(plan.document, target.index)
    built = build_plan(doc, source=plan.source, root=plan.root)
    return dataclasses.replace(built, inventory_host=target.host) if target.host else built


def chosen(plan: Plan, ids: tuple[str, ...]) -> tuple[FleetTarget, ...]:
    """The fleet's targets, or those `--target` names (in fleet order); an unknown id is an
    error naming the known ones."""
    assert plan.fleet is not None
    targets = plan.fleet.targets
    known = {t.id for t in targets}
    unknown = [i for i in ids if i not in known]
    if unknown:
        names = ", ".join(t.id for t in targets[:20]) + (", ..." if len(targets) > 20 else "")
        raise PlanError([plan.document.problem(
            ("fleet", "targets"), f"no target '{unknown[0]}' in the fleet (targets: {names})")])
    return tuple(t for t in targets if not ids or t.id in ids)
