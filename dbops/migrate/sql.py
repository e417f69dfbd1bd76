"""Migration SQL split into statements by PostgreSQL's own parser (pglast), each marked with whether
it can run inside a transaction block. No regular expressions decide this."""

from __future__ import annotations

from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.parser import ParseError


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

    @property
    def summary(self) -> str:
        first = " ".join(self.text.split())
        return first if len(first) <= 80 else first[:77] + "..."


def _reindex_concurrently(node: ast.ReindexStmt) -> bool:
    return any(getattr(p, "defname", None) == "concurrently" for p in node.params or ())


def _transactional(node: ast.Node) -> bool:
    """Whether PostgreSQL lets this statement run inside a transaction block."""
    if isinstance(node, ast.IndexStmt | ast.DropStmt):
        return not node.concurrent
    if isinstance(node, ast.ReindexStmt):
        # REINDEX DATABASE/SYSTEM and REINDEX ... CONCURRENTLY refuse transaction blocks.
        kind = node.kind.name if node.kind is not None else ""
        return not _reindex_concurrently(node) and kind not in (
            "REINDEX_OBJECT_DATABASE",
            "REINDEX_OBJECT_SYSTEM",
        )
    if isinstance(node, ast.VacuumStmt):
        return not node.is_vacuumcmd  # ANALYZE alone may run in a transaction
    if isinstance(node, ast.ClusterStmt):
        return node.relation is not None
    if isinstance(
        node, ast.CreateSubscriptionStmt | ast.AlterSubscriptionStmt | ast.DropSubscriptionStmt
    ):
        return False
    return not isinstance(
        node,
        ast.AlterSystemStmt
        | ast.CreatedbStmt
        | ast.DropdbStmt
        | ast.CreateTableSpaceStmt
        | ast.DropTableSpaceStmt,
    )


# Statements whose lock can queue the application's queries behind them.
DDL_KINDS = frozenset({"AlterTableStmt", "IndexStmt", "DropStmt", "ReindexStmt", "RenameStmt",
                       "TruncateStmt", "VacuumStmt", "ClusterStmt", "CreateTrigStmt",
                       "AlterEnumStmt", "CreateStmt"})


def _relations(node: ast.Node) -> tuple[str, ...]:
    found: list[str] = []

    def visit(item: object) -> None:
        if isinstance(item, ast.RangeVar) and item.relname:
            name = f"{item.schemaname}.{item.relname}" if item.schemaname else str(item.relname)
            if name not in found:
                found.append(name)
        elif isinstance(item, ast.Node):
            for attr in getattr(item, "__slots__", ()):
                visit(getattr(item, attr, None))
        elif isinstance(item, tuple):
            for element in item:
                visit(element)

    visit(node)
    return tuple(found)


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def split(text: str, first_line: int = 1) -> list[Statement]:
    """The statements of `text`; lines are numbered from `first_line` (the section's first line)."""
    try:
        parsed = pglast.parse_sql(text)
    except ParseError as exc:
        message, offset = (*exc.args, 0)[:2]
        line = _line_at(text, int(offset)) + first_line - 1  # pglast reports characters
        raise SqlSyntaxError(str(message), line) from None
    statements = []
    for raw in parsed:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        body = chunk.strip().rstrip(";").strip()
        where = _line_at(text, start) + chunk.count("\n", 0, lead)
        node = raw.stmt
        assert node is not None
        if isinstance(node, ast.TransactionStmt):
            raise SqlSyntaxError(
                "transaction control (BEGIN/COMMIT/ROLLBACK) is not allowed in a migration: "
                "dbops runs each migration in its own transaction "
                "(use '-- dbops:transaction off' to run statements one by one)",
                where + first_line - 1,
            )
        index = None
        if isinstance(node, ast.IndexStmt) and node.concurrent and node.idxname and node.relation:
            index = (node.relation.schemaname, node.idxname)
        kind = type(node).__name__
        statements.append(
            Statement(
                text=body,
                line=where + first_line - 1,
                kind=kind,
                transactional=_transactional(node),
                index=index,
                relations=_relations(node) if kind in DDL_KINDS else (),
            )
        )
    return statements
