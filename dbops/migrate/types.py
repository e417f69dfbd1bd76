"""Whether ALTER COLUMN ... TYPE rewrites the table, as PostgreSQL decides it
(`ATColumnChangeRequiresRewrite` and the planner support functions of the length coercions): a
binary-coercible cast (`pg_cast.castmethod = 'b'`) or a length coercion that can only widen keeps
the rows; anything that computes a new value rewrites them. Indexes survive only when their
operator class and collation stay the same. Pure: the old type comes from the live catalog or from
the CREATE TABLE the linter saw."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Literal

import pglast
from pglast import ast

Outcome = Literal["none", "indexes", "rewrite", "unknown"]

# pg_cast rows with castmethod 'b' usable by ALTER TYPE (castcontext assignment or implicit),
# PostgreSQL 15; tests/test_lint_types.py checks them against the server.
BINARY_COERCIBLE = frozenset({
    ("bit", "varbit"), ("cidr", "inet"), ("int4", "oid"), ("oid", "int4"),
    ("pg_dependencies", "bytea"), ("pg_mcv_list", "bytea"), ("pg_ndistinct", "bytea"),
    ("pg_node_tree", "text"), ("text", "bpchar"), ("text", "varchar"), ("varbit", "bit"),
    ("varchar", "bpchar"), ("varchar", "text"), ("xml", "bpchar"), ("xml", "text"),
    ("xml", "varchar"),
})
# Length coercions with a planner support function that drops them when nothing can be cut:
# a wider (or no) limit keeps the rows. bpchar and bit have none: any new length rewrites.
_WIDENS = frozenset({"varchar", "varbit"})
_TEMPORAL = frozenset({"timestamp", "timestamptz", "time", "interval"})
# Types whose B-tree operator class differs though the rows stay: their indexes are rebuilt.
_OTHER_OPCLASS = frozenset({("timestamp", "timestamptz"), ("timestamptz", "timestamp")})


@dataclass(frozen=True)
class ColumnType:
    """A column's type as PostgreSQL's parser spells it: `varchar` with modifiers (100,)."""

    name: str
    mods: tuple[int, ...] = ()
    array: bool = False
    collation: str = ""  # "" for the type's default

    @staticmethod
    def of(type_name: ast.TypeName, collation: str = "") -> ColumnType:
        names = [str(getattr(n, "sval", n)) for n in type_name.names or ()]
        mods = tuple(int(m.val.ival or 0) for m in type_name.typmods or ()
                     if isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer))
        return ColumnType(names[-1].lower() if names else "?", mods,
                          bool(type_name.arrayBounds), collation)

    @staticmethod
    def parse(text: str, collation: str = "") -> ColumnType:
        """`character varying(100)` (format_type's spelling) as a ColumnType."""
        return _parsed_type(text, collation)


@functools.lru_cache(maxsize=1024)
def _parsed_type(text: str, collation: str) -> ColumnType:
    node = pglast.parse_sql(f"SELECT NULL::{text}")[0].stmt
    assert isinstance(node, ast.SelectStmt) and node.targetList
    cast = node.targetList[0].val
    assert isinstance(cast, ast.TypeCast) and cast.typeName is not None
    return ColumnType.of(cast.typeName, "" if collation == "default" else collation)


@dataclass(frozen=True)
class Domain:
    base: ColumnType
    constrained: bool  # a CHECK or NOT NULL: every row is checked, the table rewritten


def type_change(old: ColumnType | None, new: ColumnType, *, column: str,
                using: ast.Node | None = None,
                domains: dict[str, Domain] | None = None) -> tuple[Outcome, str]:
    """What `ALTER COLUMN column TYPE new [USING ...]` does to a column of type `old`: nothing
    but the catalog, rebuild the column's indexes, or rewrite the table (and every index); with
    the reason in words. `unknown` when the old type is not known."""
    if using is not None and not _plain(using, column, new):
        return "rewrite", "the USING expression computes every row anew"
    if old is None:
        return "unknown", "its current type is unknown (neither in the live catalog nor created in the files linted)"
    domains = domains or {}
    target = domains.get(new.name)
    if target is not None and target.constrained:
        return "rewrite", f"domain {new.name} has constraints: every row is checked"
    source = domains.get(old.name)
    old_base = source.base if source else old
    new_base = target.base if target else new
    collation_changes = bool(new.collation) and new.collation != old.collation
    outcome, reason = _rows(old_base, new_base)
    if outcome == "none" and collation_changes:
        return "indexes", f"collation {old.collation or 'default'} → {new.collation}: the " \
                          "column's indexes are rebuilt"
    return outcome, reason


def _rows(old: ColumnType, new: ColumnType) -> tuple[Outcome, str]:
    if old.array or new.array:
        same = old.name == new.name and old.mods == new.mods and old.array == new.array
        return ("none", "same type") if same else ("rewrite", "array elements are converted")
    if old.name == new.name:
        if old.mods == new.mods:
            return "none", "same type"
        return _length(old, new)
    pair = (old.name, new.name)
    if pair in _OTHER_OPCLASS:
        return "rewrite", f"{old.name} → {new.name} converts every row unless the session " \
                          "TimeZone is UTC, and rebuilds the indexes"
    if pair in BINARY_COERCIBLE:
        if not new.mods:
            return "none", f"{old.name} → {new.name} is binary-coercible"
        return "rewrite", f"{old.name} → {new.name}{list(new.mods)} checks the new length"
    return "rewrite", f"{old.name} → {new.name} converts every row"


def _length(old: ColumnType, new: ColumnType) -> tuple[Outcome, str]:
    """A change of length, precision or scale within one type."""
    widening: tuple[Outcome, str] = "none", f"{old.name} limit {_mods(old)} → {_mods(new)} only widens"
    narrowing: tuple[Outcome, str] = "rewrite", f"{old.name} limit {_mods(old)} → {_mods(new)} checks every row"
    if old.name in _WIDENS:
        return widening if not new.mods or (old.mods and new.mods[0] >= old.mods[0]) \
            else narrowing
    if old.name == "numeric":
        if not new.mods:
            return widening
        if not old.mods:
            return narrowing
        scale_old = old.mods[1] if len(old.mods) > 1 else 0
        scale_new = new.mods[1] if len(new.mods) > 1 else 0
        return widening if scale_new == scale_old and new.mods[0] >= old.mods[0] else narrowing
    if old.name in _TEMPORAL and len(new.mods) <= 1 and len(old.mods) <= 1:
        precision = new.mods[0] if new.mods else 6
        if precision >= 6 or (old.mods and precision >= old.mods[0]):
            return widening
        return narrowing
    return narrowing


def _mods(column: ColumnType) -> str:
    return f"({', '.join(map(str, column.mods))})" if column.mods else "none"


def _plain(using: ast.Node, column: str, new: ColumnType) -> bool:
    """A USING that is the column itself (or cast to the new type): PostgreSQL plans it like
    none."""
    if isinstance(using, ast.TypeCast) and using.arg is not None and using.typeName is not None:
        if ColumnType.of(using.typeName) != replace(new, collation=""):
            return False
        using = using.arg
    if not isinstance(using, ast.ColumnRef):
        return False
    last = (using.fields or ())[-1:]
    return bool(last) and getattr(last[0], "sval", None) == column
