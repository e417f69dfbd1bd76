"""The ChangeSet: what the planner found to do, as plain data. Rendering, drift and execution all
consume this one object; it can be saved to a plan file and applied later (after a staleness check).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from dbops.errors import InvalidChangeSet

FORMAT_VERSION = 2

Kind = Literal["setting", "role", "migration", "backup"]
Direction = Literal["up", "down"]
Action = Literal["+", "~", "-", "~!"]
Risk = Literal["low", "medium", "high"]
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class MigrationStep:
    """One step of a migration run: its statements, in one transaction or one by one outside."""

    number: int
    transactional: bool
    statements: tuple[str, ...]
    lines: tuple[int, ...]  # each statement's line in the migration file
    note: str = ""  # why an online rewrite made this step


@dataclass(frozen=True)
class MigrationRun:
    """Exactly what apply runs for one migration: the file it came from (by checksum), the
    direction, and the steps with their statements."""

    version: str
    name: str
    file: str
    checksum: str
    direction: Direction
    mode: Literal["transaction", "steps"]
    steps: tuple[MigrationStep, ...]

    @property
    def statements(self) -> tuple[str, ...]:
        return tuple(s for step in self.steps for s in step.statements)


@dataclass(frozen=True)
class Change:
    """One difference between the plan and the live database, and how to remove it.

    `statements` are the SQL that make the change and `inverse` the SQL that undo it (both fully
    quoted through psycopg.sql); a migration carries its run (`migration`) instead.
    `fingerprint` is the live object's state when planned: a saved plan whose objects changed
    since is refused. `destructive` changes drop data or access: apply runs them only with
    --allow-destroy, after the policy's before-migrate backup.
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
    destructive: bool = False
    migration: MigrationRun | None = None

    @property
    def needs_restart(self) -> bool:
        return self.action == "~!"

    def executable(self) -> tuple[object, ...]:
        """What apply acts on: everything but the reader's reason and detail lines."""
        return (self.kind, self.address, self.action, self.before, self.after, self.reversible,
                self.statements, self.inverse, self.hosts, self.takes_effect, self.fingerprint,
                self.destructive, self.migration)


@dataclass(frozen=True)
class GateCheck:
    """One check of a gate, by the health module's name, with the threshold it is judged by."""

    name: str
    threshold: str

    def __str__(self) -> str:
        return f"{self.name} {self.threshold}".strip()


@dataclass(frozen=True)
class Gate:
    """A health gate apply runs: before the first stage, or after a stage."""

    name: str
    checks: tuple[GateCheck, ...]


@dataclass(frozen=True)
class BackupStep:
    """The backup apply takes before its first stage (the policy's before-migrate backup)."""

    reason: str
    directory: str


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
    backup_first: BackupStep | None = None
    format_version: int = FORMAT_VERSION

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def destroys(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.destructive)

    def executable(self) -> tuple[object, ...]:
        """Everything apply acts on (the changes, gates and backup, without the reader's notes,
        details and timestamps): two ChangeSets that agree here make apply do the same."""
        return (self.environment, self.plan_hash, self.gates, self.backup_first,
                tuple(c.executable() for c in self.changes))

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
        """The ChangeSet `to_json` wrote; InvalidChangeSet says what is wrong with anything else."""
        try:
            return cls._from_data(json.loads(text))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidChangeSet(f"not a dbops plan file: {exc}") from None

    @classmethod
    def _from_data(cls, data: dict[str, Any]) -> ChangeSet:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported plan file format_version {data.get('format_version')!r}"
                             f" (this dbops reads {FORMAT_VERSION})")
        data.pop("summary", None)
        changes = tuple(_change(c) for c in data.pop("changes"))
        gates = tuple(Gate(g["name"], tuple(GateCheck(**c) for c in g["checks"]))
                      for g in data.pop("gates"))
        backup = data.pop("backup_first", None)
        return cls(changes=changes, gates=gates, notes=tuple(data.pop("notes")),
                   backup_first=BackupStep(**backup) if backup else None, **data)


def _change(data: dict[str, Any]) -> Change:
    run = data.pop("migration", None)
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    if run is not None:
        steps = tuple(MigrationStep(s["number"], s["transactional"], tuple(s["statements"]),
                                    tuple(s["lines"]), s.get("note", "")) for s in run.pop("steps"))
        fields["migration"] = MigrationRun(steps=steps, **run)
    return Change(**fields)


def plan_hash(document: Mapping[str, Any]) -> str:
    """The hash a ChangeSet carries of the effective plan it was made from (the plan's document
    after profiles and interpolation), secrets left out: a saved ChangeSet is stale when the
    plan's hash differs."""
    data = json.loads(json.dumps(document, default=str))
    data.get("database", {}).pop("password", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
