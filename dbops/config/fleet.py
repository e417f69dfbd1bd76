"""A fleet plan's targets as plans of their own: the plan's document with one target's
`database.*` overrides merged in, checked like any plan, each problem located in the file."""

from __future__ import annotations

import copy
from typing import Any

from dbops.config import semantics
from dbops.config.model import FleetTarget, Plan, build_plan
from dbops.config.source import Document, JsonPath, Origin
from dbops.errors import PlanError, Problem


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
    return build_plan(doc, source=plan.source, root=plan.root)


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
