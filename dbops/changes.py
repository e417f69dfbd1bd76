"""The ChangeSet: what the planner found to do, as plain data. Rendering, drift and execution all
consume this one object; it can be saved to a plan file and applied later (after a staleness check).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

FORMAT_VERSION = 1

Kind = Literal["setting", "role", "migration", "backup"]
Action = Literal["+", "~", "-", "~!"]
Risk = Literal["low", "medium", "high"]
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Change:
    """One difference between the plan and the live database, and how to remove it.

    `statements` are the SQL that make the change and `inverse` the SQL that undo it (both fully
    quoted through psycopg.sql; empty for migrations, which the migration engine runs).
    `fingerprint` is the live object's state when planned: a saved plan whose objects changed
    since is refused.
    """

    kind: Kind
    address: str
    action: Action
    before: Scalar
    after: Scalar
    risk: Risk
    reason: str
    reversible: bool
    statements: tuple[str, ...] = ()
    inverse: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ("primary",)
    takes_effect: str = ""  # reload | new sessions | restart (settings)
    fingerprint: str = ""
    detail: tuple[str, ...] = ()

    @property
    def needs_restart(self) -> bool:
        return self.action == "~!"


@dataclass(frozen=True)
class Gate:
    """A health gate apply runs: before the first stage, or after a stage."""

    name: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    add: int
    change: int
    remove: int
    restart: int

    def __str__(self) -> str:
        return (f"Plan: {self.add} to add, {self.change} to change, {self.remove} to remove, "
                f"{self.restart} needs restart")


@dataclass(frozen=True)
class ChangeSet:
    """Every change for one environment, in the order apply executes them."""

    environment: str
    database: str  # user@host:port/db, never a password
    plan_hash: str
    created_at: str
    changes: tuple[Change, ...]
    gates: tuple[Gate, ...] = ()
    notes: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> Summary:
        actions = [c.action for c in self.changes]
        return Summary(add=actions.count("+"), change=actions.count("~") + actions.count("~!"),
                       remove=actions.count("-"), restart=actions.count("~!"))

    def of_kind(self, kind: Kind) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = asdict(self.summary())
        return {"format_version": self.format_version, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> ChangeSet:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported plan file format_version {data.get('format_version')!r}"
                             f" (this dbops reads {FORMAT_VERSION})")
        data.pop("summary", None)
        changes = tuple(_change(c) for c in data.pop("changes"))
        gates = tuple(Gate(g["name"], tuple(g["checks"])) for g in data.pop("gates"))
        return cls(changes=changes, gates=gates, notes=tuple(data.pop("notes")), **data)


def _change(data: dict[str, Any]) -> Change:
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return Change(**fields)
