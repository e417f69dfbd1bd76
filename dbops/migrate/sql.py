"""Migration SQL split into statements by PostgreSQL's own parser (pglast), each marked with whether
it can run inside a transaction block. No regular expressions decide this."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from pglast.parser import ParseError, parse_sql_json


class SqlSyntaxError(Exception):
    """SQL that PostgreSQL's parser rejects; `line` is 1-based within the text given."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Statement:
    """One statement of a migration section, located in its file."""

    text: str
    line: int
    kind: str
    transactional: bool
    index: tuple[str | None, str] | None = None  # (schema, name) an online index build creates
    relations: tuple[str, ...] = ()  # tables a DDL statement locks (for finding its blockers)
    creates: str | None = None  # the table a CREATE TABLE makes (not one IF NOT EXISTS may find)

    @property
    def terminated(self) -> str:
        """The statement and its semicolon, which goes on a line of its own when the text's last
        line may end in a -- comment (a section's last statement runs on to the end of it)."""
        return f"{self.text}\n;" if "--" in self.text.rsplit("\n", 1)[-1] else f"{self.text};"

    @property
    def summary(self) -> str:
        first = " ".join(self.text.split())
        return first if len(first) <= 80 else first[:77] + "..."


Node = dict[str, Any]

_OUTSIDE_TRANSACTION = frozenset({"AlterSystemStmt", "CreatedbStmt", "DropdbStmt",
                                  "CreateTableSpaceStmt", "DropTableSpaceStmt",
                                  "CreateSubscriptionStmt", "AlterSubscriptionStmt",
                                  "DropSubscriptionStmt"})


def _transactional(kind: str, node: Node) -> bool:
    """Whether PostgreSQL lets this statement run inside a transaction block."""
    if kind in ("IndexStmt", "DropStmt"):
        return not node.get("concurrent", False)
    if kind == "ReindexStmt":
        # REINDEX DATABASE/SYSTEM and REINDEX ... CONCURRENTLY refuse transaction blocks.
        concurrently = any(p.get("DefElem", {}).get("defname") == "concurrently"
                           for p in node.get("params", ()))
        return not concurrently and node.get("kind") not in ("REINDEX_OBJECT_DATABASE",
                                                             "REINDEX_OBJECT_SYSTEM")
    if kind == "VacuumStmt":
        return not node.get("is_vacuumcmd", False)  # ANALYZE alone may run in a transaction
    if kind == "ClusterStmt":
        return node.get("relation") is not None
    return kind not in _OUTSIDE_TRANSACTION


# Statements whose lock can queue the application's queries behind them.
DDL_KINDS = frozenset({"AlterTableStmt", "IndexStmt", "DropStmt", "ReindexStmt", "RenameStmt",
                       "TruncateStmt", "VacuumStmt", "ClusterStmt", "CreateTrigStmt",
                       "AlterEnumStmt", "CreateStmt"})


def _relations(node: Node) -> tuple[str, ...]:
    """Every relation a statement names (its RangeVars), in order."""
    found: dict[str, None] = {}

    def visit(item: Node) -> None:  # called for dicts only: most values are scalars
        if "relname" in item:
            schema = item.get("schemaname")
            found[f"{schema}.{item['relname']}" if schema else str(item["relname"])] = None
        for value in item.values():
            if type(value) is dict:
                visit(value)
            elif type(value) is list:
                for element in value:
                    if type(element) is dict:
                        visit(element)

    visit(node)
    return tuple(found)


def without_transaction_control(text: str) -> str:
    """`text` with its BEGIN/COMMIT/ROLLBACK blanked out (line numbers kept): a script written
    for psql wraps itself in a transaction that dbops' linter does not need."""
    try:
        parsed = json.loads(parse_sql_json(text)).get("stmts", [])
    except ParseError:
        return text  # split reports the error with its line
    encoded = bytearray(text.encode("utf-8"))
    for raw in parsed:
        if "TransactionStmt" in raw["stmt"]:
            start = raw.get("stmt_location", 0)
            end = start + raw.get("stmt_len", len(encoded) - start) if raw.get("stmt_len") \
                else len(encoded)
            while end < len(encoded) and encoded[end:end + 1] == b";":
                end += 1
            encoded[start:end] = bytes(b if b == 10 else 32 for b in encoded[start:end])
    return encoded.decode("utf-8")


def table_key(name: str) -> str:
    """One spelling per table for telling new ones apart: `public.t` and `t` are the same."""
    return name.removeprefix("public.")


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def split(text: str, first_line: int = 1) -> list[Statement]:
    """The statements of `text`; lines are numbered from `first_line` (the section's first line).
    Parsed once per text: a run prepares, lints and analyses the same sections."""
    return list(_split(text, first_line))


@functools.lru_cache(maxsize=4096)
def _split(text: str, first_line: int) -> tuple[Statement, ...]:
    # The parser's JSON (plain dicts) is an order of magnitude cheaper than pglast's node objects,
    # which matters for thousands of migrations; its offsets are in bytes.
    try:
        parsed = json.loads(parse_sql_json(text)).get("stmts", [])  # none: comments only
    except ParseError as exc:
        message, offset = (*exc.args, 0)[:2]
        line = _line_at(text, int(offset)) + first_line - 1  # pglast reports characters here
        raise SqlSyntaxError(str(message), line) from None
    encoded = text.encode("utf-8")
    statements = []
    for raw in parsed:
        start = raw.get("stmt_location", 0)
        end = start + raw["stmt_len"] if raw.get("stmt_len") else len(encoded)
        chunk = encoded[start:end].decode("utf-8")
        lead = len(chunk) - len(chunk.lstrip())
        body = chunk.strip().rstrip(";").strip()
        where = encoded.count(b"\n", 0, start) + 1 + chunk.count("\n", 0, lead)
        kind, node = next(iter(raw["stmt"].items()))
        if kind == "TransactionStmt":
            raise SqlSyntaxError(
                "transaction control (BEGIN/COMMIT/ROLLBACK) is not allowed in a migration: "
                "dbops runs each migration in its own transaction "
                "(use '-- dbops:transaction off' to run statements one by one)",
                where + first_line - 1,
            )
        index = None
        if kind == "IndexStmt" and node.get("concurrent") and node.get("idxname"):
            index = (node["relation"].get("schemaname"), node["idxname"])
        statements.append(
            Statement(
                text=body,
                line=where + first_line - 1,
                kind=kind,
                transactional=_transactional(kind, node),
                index=index,
                relations=_relations(node) if kind in DDL_KINDS else (),
                creates=(_relations(node["relation"])[0] if kind == "CreateStmt"
                         and not node.get("if_not_exists") and "relation" in node else None),
            )
        )
    return tuple(statements)
