"""What lint says about a YAML migration: expand/contract is the online way to make breaking
changes, so its operations are never refused; each is information, with the backfill's duration
estimated from live statistics when they are given. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from dbops.migrate.analyze import Finding, written_seconds
from dbops.migrate.expand.model import (
    AddColumn,
    AlterColumn,
    CreateIndex,
    DropColumn,
    Operation,
    RawSql,
    RenameColumn,
    RenameTable,
)
from dbops.migrate.files import Migration
from dbops.schema_facts import TableStats

RULE = "expand-contract"


def describe(op: Operation) -> str:
    """One operation in words, e.g. 'alter_column tasks.title -> headline varchar(300)'."""
    if isinstance(op, RenameColumn):
        return f"rename_column {op.table}.{op.column} -> {op.name}"
    if isinstance(op, AlterColumn):
        changes = [c for c in (op.name and f"-> {op.name}", op.type,
                               op.nullable is False and "NOT NULL",
                               op.check and f"CHECK ({op.check})", op.unique and "UNIQUE",
                               op.default and f"DEFAULT {op.default}") if c]
        return f"alter_column {op.table}.{op.column} {' '.join(changes)}"
    if isinstance(op, AddColumn):
        return f"add_column {op.table}.{op.name} {op.type}"
    if isinstance(op, DropColumn):
        return f"drop_column {op.table}.{op.column}"
    if isinstance(op, CreateIndex):
        return f"create_index {op.name} on {op.table} ({', '.join(op.columns)})"
    if isinstance(op, RenameTable):
        return f"rename_table {op.table} -> {op.name}"
    return "sql"


def findings(migration: Migration, stats: Mapping[str, TableStats] | None) -> list[Finding]:
    """One info finding per operation (sql operations are analysed as SQL by the caller)."""
    spec = migration.expand
    assert spec is not None
    out = []
    for op in spec.operations:
        if isinstance(op, RawSql):
            continue
        message = f"{describe(op)}: expand/contract, old and new shapes served at once"
        table = stats.get(op.table) if stats else None
        backfills = (isinstance(op, AlterColumn) and op.needs_column) or (
            isinstance(op, AddColumn) and op.up is not None)
        if backfills and table is not None:
            batches = int(table.rows // spec.batch_size) + 1
            seconds = (written_seconds(table, table.rows)
                       + batches * spec.batch_pause.total_seconds())
            message += (f"; backfill of ~{table.rows:.0f} rows in {batches} batch(es) of "
                        f"{spec.batch_size}, ~{seconds:.0f} s, no lock held between batches")
        elif backfills:
            message += f"; backfill in batches of {spec.batch_size}"
        out.append(Finding(RULE, "info", migration.file, op.line, message,
                           relation=f"{spec.schema}.{op.table}" if spec.schema != "public"
                           else op.table))
    return out
