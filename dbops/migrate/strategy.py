"""Online rewrites: the statements of a zero-downtime migration turned into steps that keep the
application writing (CONCURRENTLY builds, NOT VALID + VALIDATE, NOT NULL through a validated
CHECK, unique constraints over concurrently built indexes). What cannot be made safe is refused
with the recipe to follow instead, unless the file says `-- dbops:ignore <rule> <reason>`. Pure."""

from __future__ import annotations

from dataclasses import dataclass

import pglast
from pglast import ast, enums
from psycopg import sql

from dbops.errors import MigrationError
from dbops.migrate.analyze import RULES, Finding, analyze, sql_text, with_live_severity
from dbops.migrate.files import Migration
from dbops.migrate.runstate import RunState
from dbops.migrate.sql import Statement

# Hazards no rewrite removes: a person must follow the recipe (or accept it in the file).
REFUSED = ("type-change-rewrites", "volatile-default", "rename-breaks-clients",
           "table-rewrite-lock", "not-null-without-default", "type-change-rebuilds-indexes",
           "generated-column-rewrites", "set-tablespace-rewrites", "set-logged-rewrites",
           "exclude-builds-index", "refresh-not-concurrent", "attach-partition-scans",
           "update-whole-table", "lock-table")


@dataclass(frozen=True)
class OnlineStep:
    """One step of the rewritten migration: its statements and whether they share a transaction."""

    statements: tuple[Statement, ...]
    transactional: bool
    note: str = ""


def _q(*names: str | None) -> str:
    return sql.Identifier(*[n for n in names if n]).as_string(None)


def _table(rel: ast.RangeVar) -> str:
    return _q(rel.schemaname, rel.relname)


def _name(*parts: str) -> str:
    """PostgreSQL's way of naming an unnamed object, truncated to 63 bytes like it."""
    return "_".join(parts)[:63]


def _columns(expr: ast.Node) -> list[str]:
    found: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, ast.ColumnRef):
            last = node.fields[-1] if node.fields else None
            if isinstance(last, ast.String) and last.sval and last.sval not in found:
                found.append(last.sval)
        elif isinstance(node, ast.Node):
            for attr in getattr(node, "__slots__", ()):
                visit(getattr(node, attr, None))
        elif isinstance(node, tuple):
            for item in node:
                visit(item)

    visit(expr)
    return found


def refuses(finding: Finding, state: RunState) -> bool:
    """Whether zero-downtime refuses a finding: a hazard no rewrite removes, not accepted in the
    file, on a table the live statistics do not show small enough to be done in milliseconds."""
    if finding.rule not in REFUSED or finding.suppressed:
        return False
    return not state.stats or with_live_severity(finding, state.stats,
                                                 state.max_blocking).severity != "info"


def online_steps(migration: Migration, state: RunState | None = None,
                 direction: str = "up") -> list[OnlineStep]:
    """The migration's up (or down) section as online steps, judged against the run's `state` (its new
    tables need no rewrite); raises MigrationError for what cannot be made safe, naming the file,
    line, the estimate the refusal is based on and the recipe."""
    state = state or RunState()
    # A live CHECK never spares SET NOT NULL here: the online SET NOT NULL adds one, and a rerun
    # after a crash must find the same steps as its journal (an unneeded rewrite is harmless).
    # One that proves a partition's bounds spares a refusal.
    analyses = analyze(migration, direction=direction, new=state.new, empty=state.empty,
                       columns=state.columns, rows=state.rows, checks=state.checks,
                       keys=state.keys, prove_not_null=False)
    steps: list[OnlineStep] = []
    for analysis in analyses:
        statement = analysis.statement
        for finding in analysis.findings:
            # A rollback is a person's explicit decision: rewritten online, never refused.
            if direction == "up" and refuses(finding, state):
                raise MigrationError(
                    f"{finding.file}:{finding.line}: {finding.rule}: {finding.message} "
                    f"({state.basis(finding.relation)}); "
                    f"it cannot run online. Instead: {RULES[finding.rule].fix} (or accept it with "
                    f"'-- dbops:ignore {finding.rule} <reason>')")
        rewritten = None
        if _risky(analysis.findings):
            # A tree of its own: _rewrite edits it, and analyze's cached one must stay as parsed.
            node = pglast.parse_sql(statement.text)[0].stmt
            assert node is not None
            rewritten = _rewrite(node, statement)
        if rewritten is None:
            _append(steps, statement)
        else:
            steps += rewritten
    return steps


def _risky(findings: tuple[object, ...]) -> bool:
    return any(getattr(f, "rule", "") in ("index-not-concurrent", "drop-index-not-concurrent",
                                           "reindex-not-concurrent", "constraint-not-valid",
                                           "set-not-null", "unique-builds-index")
               and not getattr(f, "suppressed", "") for f in findings)


def _append(steps: list[OnlineStep], statement: Statement) -> None:
    """Plain statements share a transaction with the plain statements before them."""
    if statement.transactional and steps and steps[-1].transactional and not steps[-1].note:
        last = steps[-1]
        steps[-1] = OnlineStep((*last.statements, statement), True)
    else:
        steps.append(OnlineStep((statement,), statement.transactional))


def _derived(statement: Statement, text: str, *, transactional: bool,
             index: tuple[str | None, str] | None = None) -> Statement:
    return Statement(text=text, line=statement.line, kind=statement.kind,
                     transactional=transactional, index=index, relations=statement.relations)


def _rewrite(node: ast.Node, statement: Statement) -> list[OnlineStep] | None:
    if isinstance(node, ast.IndexStmt):
        return [_concurrent_index(node, statement)]
    if isinstance(node, ast.DropStmt) and node.objects and len(node.objects) == 1:
        # Spelled here: pglast's printers cost ~20 ms to load for this one line.
        name = _q(*(part.sval for part in node.objects[0]))
        cascade = " CASCADE" if node.behavior == enums.DropBehavior.DROP_CASCADE else ""
        return [OnlineStep((_derived(statement, f"DROP INDEX CONCURRENTLY IF EXISTS {name}{cascade}",
                                     transactional=False),), False, "DROP INDEX CONCURRENTLY")]
    if isinstance(node, ast.ReindexStmt):
        text = sql_text(node)
        text = text.replace("REINDEX ", "REINDEX (CONCURRENTLY) ", 1) if "(" not in text.split()[1] \
            else text
        return [OnlineStep((_derived(statement, text, transactional=False),), False,
                           "REINDEX CONCURRENTLY")]
    if isinstance(node, ast.AlterTableStmt):
        steps: list[OnlineStep] = []
        for cmd in node.cmds or ():
            steps += _alter_command(node, cmd, statement)
        return steps
    return None


def _concurrent_index(node: ast.IndexStmt, statement: Statement) -> OnlineStep:
    assert node.relation is not None
    if not node.idxname:
        columns = [p.name or "expr" for p in node.indexParams or ()]
        node.idxname = _name(str(node.relation.relname), *columns, "idx")
    node.concurrent, node.if_not_exists = True, True
    return OnlineStep((_derived(statement, sql_text(node), transactional=False,
                                index=(node.relation.schemaname, node.idxname)),), False,
                      "CREATE INDEX CONCURRENTLY")


def _alter_command(node: ast.AlterTableStmt, cmd: ast.AlterTableCmd,
                   statement: Statement) -> list[OnlineStep]:
    relation = node.relation
    assert relation is not None
    table, relname = _table(relation), str(relation.relname)
    at, ct = enums.AlterTableType, enums.ConstrType
    constraint = cmd.def_ if isinstance(cmd.def_, ast.Constraint) else None

    def tx(*texts: str, note: str = "") -> OnlineStep:
        return OnlineStep(tuple(_derived(statement, t, transactional=True) for t in texts), True,
                          note)

    if cmd.subtype == at.AT_AddConstraint and constraint is not None:
        if constraint.contype in (ct.CONSTR_FOREIGN, ct.CONSTR_CHECK) and not constraint.skip_validation:
            if not constraint.conname:
                if constraint.contype == ct.CONSTR_FOREIGN:
                    cols = [c.sval for c in constraint.fk_attrs or ()]
                    constraint.conname = _name(relname, *cols, "fkey")
                else:
                    cols = _columns(constraint.raw_expr) if constraint.raw_expr else []
                    constraint.conname = _name(relname, *(cols if len(cols) == 1 else []), "check")
            constraint.skip_validation = True
            single = ast.AlterTableStmt(relation=node.relation, cmds=(cmd,), objtype=node.objtype)
            return [tx(sql_text(single), note="added NOT VALID: no scan under the strong lock"),
                    tx(f"ALTER TABLE {table} VALIDATE CONSTRAINT {_q(constraint.conname)}",
                       note="validated under SHARE UPDATE EXCLUSIVE: writes go on")]
        if constraint.contype in (ct.CONSTR_UNIQUE, ct.CONSTR_PRIMARY) and not constraint.indexname:
            cols = [k.sval for k in constraint.keys or ()]
            primary = constraint.contype == ct.CONSTR_PRIMARY
            name = constraint.conname or (_name(relname, "pkey") if primary
                                          else _name(relname, *cols, "key"))
            build = (f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {_q(name)} ON {table} "
                     f"({', '.join(_q(c) for c in cols)})")
            kind = "PRIMARY KEY" if primary else "UNIQUE"
            return [OnlineStep((_derived(statement, build, transactional=False,
                                         index=(relation.schemaname, name)),), False,
                               "unique index built concurrently"),
                    tx(f"ALTER TABLE {table} ADD CONSTRAINT {_q(name)} {kind} USING INDEX {_q(name)}",
                       note="constraint attached to the ready index")]
    if cmd.subtype == at.AT_SetNotNull and cmd.name:
        check = _name(relname, str(cmd.name), "not_null")
        column = _q(cmd.name)
        return [tx(f"ALTER TABLE {table} ADD CONSTRAINT {_q(check)} CHECK ({column} IS NOT NULL) "
                   "NOT VALID", note="a CHECK added NOT VALID"),
                tx(f"ALTER TABLE {table} VALIDATE CONSTRAINT {_q(check)}",
                   note="validated while writes go on"),
                tx(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
                   f"ALTER TABLE {table} DROP CONSTRAINT {_q(check)}",
                   note="SET NOT NULL uses the validated CHECK and skips the scan")]
    single = ast.AlterTableStmt(relation=node.relation, cmds=(cmd,), objtype=node.objtype)
    return [tx(sql_text(single))]
