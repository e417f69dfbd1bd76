"""What each migration statement does to the database: the lock it takes on which relations (per
PostgreSQL's explicit-locking table), whether it rewrites or scans the table, whether it can run
inside a transaction, and its hazards as findings of stable rules. Pure: no I/O; live table
statistics, when given, turn a hazard into an estimate for this very database."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import pglast
from pglast import ast, enums
from pglast.stream import RawStream

from dbops.migrate.source import Migration
from dbops.migrate.sql import Statement, split, table_key

if TYPE_CHECKING:
    from dbops.inspect import TableStats

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[Severity, int] = {"info": 0, "warning": 1, "error": 2}

# Lock modes that make the application's writes (ROW EXCLUSIVE) wait.
BLOCKS_WRITES = frozenset({"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"})
BLOCKS_READS = frozenset({"ACCESS EXCLUSIVE"})


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    doc: str
    fix: str


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("index-not-concurrent", "error",
         "CREATE INDEX holds SHARE on the table for the whole build: every write waits.",
         "CREATE INDEX CONCURRENTLY (outside a transaction)"),
    Rule("drop-index-not-concurrent", "warning",
         "DROP INDEX takes ACCESS EXCLUSIVE on the table: reads and writes wait.",
         "DROP INDEX CONCURRENTLY"),
    Rule("reindex-not-concurrent", "error",
         "REINDEX blocks writes to the table (and reads using the index) while it rebuilds.",
         "REINDEX ... CONCURRENTLY"),
    Rule("constraint-not-valid", "error",
         "Adding a FOREIGN KEY or CHECK validates every row while holding a lock that blocks writes.",
         "ADD ... NOT VALID, then VALIDATE CONSTRAINT in its own transaction"),
    Rule("set-not-null", "error",
         "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE.",
         "ADD CHECK (col IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL, drop the check"),
    Rule("unique-builds-index", "error",
         "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE.",
         "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX"),
    Rule("type-change-rewrites", "error",
         "ALTER COLUMN TYPE rewrites the table and its indexes under ACCESS EXCLUSIVE.",
         "add a new column, backfill in batches, switch readers, then drop the old column"),
    Rule("volatile-default", "error",
         "ADD COLUMN with a volatile DEFAULT rewrites the whole table under ACCESS EXCLUSIVE.",
         "add the column without a default (or a constant one), then backfill in batches"),
    Rule("not-null-without-default", "error",
         "ADD COLUMN ... NOT NULL without a DEFAULT fails on any table that has rows.",
         "add it with a constant DEFAULT, or nullable, backfill, then SET NOT NULL online"),
    Rule("rename-breaks-clients", "warning",
         "Renaming a table or column breaks every running client that still uses the old name.",
         "add the new name alongside (a view or a new column), migrate clients, drop the old"),
    Rule("drop-breaks-clients", "warning",
         "Dropping a table or column breaks clients that still use it, and loses its data.",
         "stop using it in the application first; drop in a later release"),
    Rule("truncate-cascade", "error",
         "TRUNCATE ... CASCADE empties every table that references this one.",
         "delete the rows you mean to, in batches"),
    Rule("table-rewrite-lock", "error",
         "VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE.",
         "pg_repack, or plain VACUUM"),
    Rule("missing-lock-timeout", "error",
         "Without a lock_timeout, a statement waiting for its lock queues every later query.",
         "keep dbops' lock_timeout (plan: migrations.lock_timeout); do not set it to 0"),
    Rule("concurrently-in-transaction", "info",
         "CONCURRENTLY cannot run in a transaction block; dbops runs it as a journaled step.",
         "nothing to do: dbops splits the migration into steps"),
    Rule("not-idempotent-outside-transaction", "warning",
         "A statement outside a transaction is re-run after a crash; without IF [NOT] EXISTS it fails.",
         "add IF NOT EXISTS / IF EXISTS"),
    Rule("empty-migration", "info",
         "The up section has no statements: the migration is recorded in the history and "
         "changes nothing (a placeholder, say for another database, or a change reverted since).",
         "nothing to do"),
    Rule("enum-value-order", "warning",
         "ALTER TYPE ... ADD VALUE BEFORE/AFTER changes the enum's sort order; the new value "
         "cannot be used in the same transaction.",
         "add values at the end, in their own migration"),
)}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    line: int
    message: str
    relation: str | None = None
    suppressed: str = ""  # the reason from `-- dbops:ignore <rule> <reason>`

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.severity}: {self.rule}: {self.message}"
        return f"{text} (ignored: {self.suppressed})" if self.suppressed else text


@dataclass(frozen=True)
class StatementAnalysis:
    statement: Statement
    locks: tuple[tuple[str, str], ...]  # (relation, lock mode)
    rewrites: bool
    scans: bool
    findings: tuple[Finding, ...]

    @property
    def strongest_lock(self) -> str | None:
        order = ["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
                 "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"]
        modes = [mode for _, mode in self.locks]
        return max(modes, key=order.index) if modes else None


def _relation(node: ast.RangeVar | None) -> str:
    if node is None:
        return "?"
    return f"{node.schemaname}.{node.relname}" if node.schemaname else str(node.relname)


def _names(items: tuple[ast.Node, ...] | None) -> list[str]:
    return [".".join(str(getattr(p, "sval", p)) for p in item) if isinstance(item, tuple)
            else str(getattr(item, "sval", item)) for item in items or ()]


def _volatile(expr: ast.Node | None) -> bool:
    """A default PostgreSQL evaluates per row (so ADD COLUMN rewrites the table)."""
    volatile = {"random", "clock_timestamp", "gen_random_uuid", "uuid_generate_v4", "nextval",
                "timeofday", "txid_current"}
    text = RawStream()(expr).lower() if expr is not None else ""
    return any(f"{name}(" in text for name in volatile)


# Statement kinds that can take a lock on an existing relation or carry a hazard; the others
# (SELECT, CREATE FUNCTION, GRANT, COMMENT, ...) are not parsed again.
_ANALYSED = frozenset({"CreateStmt", "IndexStmt", "DropStmt", "ReindexStmt", "AlterTableStmt",
                       "RenameStmt", "TruncateStmt", "VacuumStmt", "ClusterStmt",
                       "VariableSetStmt", "AlterEnumStmt", "InsertStmt", "UpdateStmt",
                       "DeleteStmt"})


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> ast.Node | None:
    """pglast's node objects for one statement, built once per run (they cost an order of
    magnitude more than the split); only read here, never changed."""
    return pglast.parse_sql(text)[0].stmt


class _Analyzer:
    """Walks one migration's statements, tracking the new tables (no client uses them yet: they
    need no care at all), those new when it starts (`new`, made earlier in the run) and those it
    creates or renames, and the empty ones (`empty`: no rows to scan or rewrite, so no lock
    hazard, but clients may use them)."""

    def __init__(self, migration: Migration, *, outside_transaction: bool,
                 new: frozenset[str] = frozenset(), empty: frozenset[str] = frozenset()) -> None:
        self.migration = migration
        self.created: set[str] = set(new)
        self.empty: set[str] = set(empty)
        self.outside_transaction = outside_transaction
        self.ignores = _ignores(migration)

    def is_new(self, table: str) -> bool:
        return table_key(table) in self.created

    def is_idle(self, table: str) -> bool:
        """New or empty: nothing for a lock to wait on while a scan or rewrite runs."""
        return self.is_new(table) or table_key(table) in self.empty

    def finding(self, rule: str, statement: Statement, message: str,
                relation: str | None = None) -> Finding:
        return Finding(rule, RULES[rule].severity, self.migration.file, statement.line, message,
                       relation, self.ignores.get(rule, ""))

    def analyze(self, statement: Statement) -> StatementAnalysis:
        if statement.kind not in _ANALYSED:
            return StatementAnalysis(statement, (), False, False, ())
        if statement.kind == "CreateStmt" and len(statement.relations) <= 1:
            # A table that references nothing: no lock on anything that exists, no hazard.
            self.created.add(table_key(statement.relations[0]) if statement.relations else "?")
            return StatementAnalysis(statement, (), False, False, ())
        node = _parsed(statement.text)
        locks: list[tuple[str, str]] = []
        findings: list[Finding] = []
        rewrites = scans = False
        if isinstance(node, ast.CreateStmt):
            self.created.add(table_key(_relation(node.relation)))
            for element in node.tableElts or ():
                for constraint in getattr(element, "constraints", None) or ():
                    if getattr(constraint, "contype", None) == enums.ConstrType.CONSTR_FOREIGN:
                        locks.append((_relation(constraint.pktable), "SHARE ROW EXCLUSIVE"))
                if getattr(element, "contype", None) == enums.ConstrType.CONSTR_FOREIGN:
                    locks.append((_relation(element.pktable), "SHARE ROW EXCLUSIVE"))
        elif isinstance(node, ast.IndexStmt):
            table = _relation(node.relation)
            locks.append((table, "SHARE UPDATE EXCLUSIVE" if node.concurrent else "SHARE"))
            scans = True
            if not node.concurrent and not self.is_idle(table):
                findings.append(self.finding("index-not-concurrent", statement,
                                             f"CREATE INDEX on {table} blocks writes while it builds",
                                             table))
            if node.concurrent and self.outside_transaction and not node.if_not_exists:
                findings.append(self.finding("not-idempotent-outside-transaction", statement,
                                             "CREATE INDEX CONCURRENTLY without IF NOT EXISTS",
                                             table))
        elif isinstance(node, ast.DropStmt):
            findings += self._drop(node, statement, locks)
        elif isinstance(node, ast.ReindexStmt):
            concurrent = any(getattr(p, "defname", None) == "concurrently" for p in node.params or ())
            target = _relation(node.relation)
            locks.append((target, "SHARE UPDATE EXCLUSIVE" if concurrent else "ACCESS EXCLUSIVE"))
            scans = True
            if not concurrent:
                findings.append(self.finding("reindex-not-concurrent", statement,
                                             f"REINDEX of {target} blocks writes", target))
        elif isinstance(node, ast.AlterTableStmt):
            rewrites, scans = self._alter_table(node, statement, locks, findings)
        elif isinstance(node, ast.RenameStmt):
            target = _relation(node.relation) if node.relation else "?"
            locks.append((target, "ACCESS EXCLUSIVE"))
            what = "column" if node.renameType == enums.ObjectType.OBJECT_COLUMN else "object"
            fresh = self.is_new(target)
            if node.renameType == enums.ObjectType.OBJECT_TABLE:
                schema = node.relation.schemaname if node.relation else None
                renamed = table_key(f"{schema}.{node.newname}" if schema else str(node.newname))
                for tracked in (self.created, self.empty):
                    if table_key(target) in tracked:
                        tracked.discard(table_key(target))
                        tracked.add(renamed)
            if not fresh and node.renameType in (enums.ObjectType.OBJECT_COLUMN,
                                                 enums.ObjectType.OBJECT_TABLE):
                findings.append(self.finding("rename-breaks-clients", statement,
                                             f"renaming {what} {node.subname or target} to "
                                             f"{node.newname}", target))
        elif isinstance(node, ast.TruncateStmt):
            for relation in node.relations or ():
                locks.append((_relation(relation), "ACCESS EXCLUSIVE"))
            if node.behavior == enums.DropBehavior.DROP_CASCADE:
                findings.append(self.finding("truncate-cascade", statement,
                                             "TRUNCATE ... CASCADE also empties referencing tables"))
        elif isinstance(node, ast.VacuumStmt) and node.is_vacuumcmd:
            full = any(getattr(o, "defname", None) == "full" for o in node.options or ())
            for rel in node.rels or ():
                locks.append((_relation(rel.relation), "ACCESS EXCLUSIVE" if full
                              else "SHARE UPDATE EXCLUSIVE"))
            if full:
                rewrites = True
                findings.append(self.finding("table-rewrite-lock", statement,
                                             "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE"))
        elif isinstance(node, ast.ClusterStmt):
            locks.append((_relation(node.relation), "ACCESS EXCLUSIVE"))
            rewrites = True
            findings.append(self.finding("table-rewrite-lock", statement,
                                         "CLUSTER rewrites the table under ACCESS EXCLUSIVE"))
        elif isinstance(node, ast.VariableSetStmt) and node.name == "lock_timeout":
            value = RawStream()(node.args[0]) if node.args else ""
            if value.strip("'") in ("0", "0ms", "0s"):
                findings.append(self.finding("missing-lock-timeout", statement,
                                             "lock_timeout is switched off"))
        elif isinstance(node, ast.AlterEnumStmt) and node.newValNeighbor:
            findings.append(self.finding("enum-value-order", statement,
                                         f"adds {node.newVal!r} "
                                         f"{'after' if node.newValIsAfter else 'before'} "
                                         f"{node.newValNeighbor!r}"))
        elif isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
            locks.append((_relation(node.relation), "ROW EXCLUSIVE"))
        if not statement.transactional and not self.outside_transaction:
            findings.append(self.finding("concurrently-in-transaction", statement,
                                         f"{statement.kind} runs outside the migration's "
                                         "transaction, as a journaled step"))
        return StatementAnalysis(statement, tuple(locks), rewrites, scans, tuple(findings))

    def _drop(self, node: ast.DropStmt, statement: Statement,
              locks: list[tuple[str, str]]) -> list[Finding]:
        names = _names(node.objects)
        findings = []
        if node.removeType == enums.ObjectType.OBJECT_INDEX:
            for name in names:
                locks.append((name, "SHARE UPDATE EXCLUSIVE" if node.concurrent else "ACCESS EXCLUSIVE"))
            if not node.concurrent:
                findings.append(self.finding("drop-index-not-concurrent", statement,
                                             f"DROP INDEX {', '.join(names)} blocks the table"))
            elif self.outside_transaction and not node.missing_ok:
                findings.append(self.finding("not-idempotent-outside-transaction", statement,
                                             "DROP INDEX CONCURRENTLY without IF EXISTS"))
        elif node.removeType == enums.ObjectType.OBJECT_TABLE:
            for name in names:
                locks.append((name, "ACCESS EXCLUSIVE"))
                if not self.is_new(name):
                    findings.append(self.finding("drop-breaks-clients", statement,
                                                 f"dropping table {name}", name))
                self.created.discard(table_key(name))
                self.empty.discard(table_key(name))
        return findings

    def _alter_table(self, node: ast.AlterTableStmt, statement: Statement,
                     locks: list[tuple[str, str]], findings: list[Finding]) -> tuple[bool, bool]:
        table = _relation(node.relation)
        fresh, idle = self.is_new(table), self.is_idle(table)
        rewrites = scans = False
        modes: list[str] = []
        at = enums.AlterTableType
        for cmd in node.cmds or ():
            kind = cmd.subtype
            constraint = cmd.def_ if isinstance(cmd.def_, ast.Constraint) else None
            if kind == at.AT_AddConstraint and constraint is not None:
                contype = constraint.contype
                if contype == enums.ConstrType.CONSTR_FOREIGN:
                    modes.append("SHARE ROW EXCLUSIVE")
                    locks.append((_relation(constraint.pktable), "SHARE ROW EXCLUSIVE"))
                elif contype == enums.ConstrType.CONSTR_CHECK:
                    modes.append("ACCESS EXCLUSIVE")
                else:
                    modes.append("ACCESS EXCLUSIVE")
                if contype in (enums.ConstrType.CONSTR_FOREIGN, enums.ConstrType.CONSTR_CHECK) \
                        and not constraint.skip_validation:
                    scans = True
                    if not idle:
                        kind_name = "FOREIGN KEY" if contype == enums.ConstrType.CONSTR_FOREIGN \
                            else "CHECK"
                        findings.append(self.finding("constraint-not-valid", statement,
                                                     f"{kind_name} on {table} is validated "
                                                     "while writes wait", table))
                if contype in (enums.ConstrType.CONSTR_UNIQUE, enums.ConstrType.CONSTR_PRIMARY) \
                        and not constraint.indexname:
                    scans = True
                    if not idle:
                        findings.append(self.finding("unique-builds-index", statement,
                                                     f"the index for this constraint on {table} is "
                                                     "built under ACCESS EXCLUSIVE", table))
            elif kind == at.AT_ValidateConstraint:
                modes.append("SHARE UPDATE EXCLUSIVE")
                scans = True
            elif kind == at.AT_SetNotNull:
                modes.append("ACCESS EXCLUSIVE")
                scans = True
                if not idle:
                    findings.append(self.finding("set-not-null", statement,
                                                 f"SET NOT NULL on {table}.{cmd.name} scans the "
                                                 "table under ACCESS EXCLUSIVE", table))
            elif kind == at.AT_AlterColumnType:
                modes.append("ACCESS EXCLUSIVE")
                rewrites = True
                if not idle:
                    findings.append(self.finding("type-change-rewrites", statement,
                                                 f"changing the type of {table}.{cmd.name} "
                                                 "rewrites the table", table))
            elif kind == at.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                modes.append("ACCESS EXCLUSIVE")
                findings += self._add_column(cmd.def_, table, fresh, idle, statement)
                rewrites = rewrites or any(f.rule == "volatile-default" for f in findings)
            elif kind == at.AT_DropColumn:
                modes.append("ACCESS EXCLUSIVE")
                if not fresh:
                    findings.append(self.finding("drop-breaks-clients", statement,
                                                 f"dropping column {table}.{cmd.name}", table))
            elif kind in (at.AT_SetStatistics, at.AT_ClusterOn, at.AT_SetRelOptions):
                modes.append("SHARE UPDATE EXCLUSIVE")
            else:
                modes.append("ACCESS EXCLUSIVE")
        order = ["SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"]
        if modes:
            locks.insert(0, (table, max(modes, key=order.index)))
        return rewrites, scans

    def _add_column(self, column: ast.ColumnDef, table: str, fresh: bool, idle: bool,
                    statement: Statement) -> list[Finding]:
        constraints = column.constraints or ()
        default = next((c.raw_expr for c in constraints
                        if c.contype == enums.ConstrType.CONSTR_DEFAULT), None)
        not_null = any(c.contype == enums.ConstrType.CONSTR_NOTNULL for c in constraints)
        findings = []
        if default is not None and _volatile(default) and not idle:
            findings.append(self.finding("volatile-default", statement,
                                         f"{table}.{column.colname} gets a volatile default: "
                                         "the table is rewritten", table))
        if not_null and default is None and not fresh:
            findings.append(self.finding("not-null-without-default", statement,
                                         f"{table}.{column.colname} is NOT NULL without a "
                                         "DEFAULT", table))
        return findings


def _ignores(migration: Migration) -> dict[str, str]:
    return dict(migration.ignores)


def analyze(migration: Migration, *, direction: str = "up", new: frozenset[str] = frozenset(),
            empty: frozenset[str] = frozenset()) -> list[StatementAnalysis]:
    """Every statement of a migration's section, analysed; `new` names the tables created
    earlier in the same run (no care at all), `empty` the existing tables without rows (no lock
    hazard; their clients still break on a rename or a drop)."""
    return list(_analyzed(migration, direction, new, empty)[0])


def tracked_after(migration: Migration, new: frozenset[str],
                  empty: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The new and the empty tables once the migration's up section has run."""
    _, new_after, empty_after = _analyzed(migration, "up", new, empty)
    return new_after, empty_after


@functools.lru_cache(maxsize=4096)
def _analyzed(migration: Migration, direction: str, new: frozenset[str], empty: frozenset[str]
              ) -> tuple[tuple[StatementAnalysis, ...], frozenset[str], frozenset[str]]:
    # A run analyses each pending migration several times (statistics, lint, online steps):
    # pglast's node objects are parsed once.
    section = migration.up if direction == "up" else migration.down
    if section is None:
        return (), new, empty
    statements = section.statements(migration.path)
    outside = not migration.transaction or any(not s.transactional for s in statements)
    analyzer = _Analyzer(migration, outside_transaction=outside, new=new, empty=empty)
    analyses = tuple(analyzer.analyze(s) for s in statements)
    return analyses, frozenset(analyzer.created), frozenset(analyzer.empty)


# Findings whose statement throws data away: a migration with one is destructive (shown apart by
# plan, run by apply only with --allow-destroy, after the before-migrate backup).
DATA_LOSS_RULES = frozenset({"drop-breaks-clients", "truncate-cascade"})
_DATA_LOSS_KINDS = {"TruncateStmt": "empties a table"}


def data_loss(migration: Migration, *, direction: str = "up",
              new: frozenset[str] = frozenset()) -> list[str]:
    """What running this section would destroy, one line each; empty when nothing (a new table,
    made earlier in the run or empty, holds nothing to lose)."""
    losses = []
    for analysis in analyze(migration, direction=direction, new=new):
        statement = analysis.statement
        found = [f.message for f in analysis.findings if f.rule in DATA_LOSS_RULES]
        if not found and statement.kind in _DATA_LOSS_KINDS:
            found = [_DATA_LOSS_KINDS[statement.kind]]
        losses += [f"line {statement.line}: {message}" for message in found]
    return losses


def lint_text(text: str, file: str = "<sql>") -> list[StatementAnalysis]:
    """Analyse loose SQL (for tests and `explain` of a statement)."""
    from pathlib import Path

    from dbops.migrate.source import Section, checksum

    migration = Migration("00000000000000", "sql", Path(file), "", Section(text, 1), None, (),
                          "low", None, False, True, checksum(text))
    return analyze(migration)


# Rough speeds measured on this kind of machine (a 173 MB table indexed in about 3.6 s).
SCAN_BYTES_PER_SECOND = 50 * 1024 * 1024
SMALL_TABLE_BYTES = 8 * 1024 * 1024


_VERBS = {"IndexStmt": "CREATE INDEX", "AlterTableStmt": "ALTER TABLE", "DropStmt": "DROP",
          "ReindexStmt": "REINDEX", "VacuumStmt": "VACUUM", "ClusterStmt": "CLUSTER",
          "TruncateStmt": "TRUNCATE", "RenameStmt": "RENAME", "CreateStmt": "CREATE TABLE"}


def estimate(analysis: StatementAnalysis, stats: Mapping[str, TableStats]) -> list[str]:
    """What this statement will do to the live tables it touches, in words."""
    lines = []
    verb = _VERBS.get(analysis.statement.kind, analysis.statement.kind.removesuffix("Stmt"))
    for relation, mode in analysis.locks:
        table = stats.get(relation) or stats.get(relation.split(".")[-1])
        if table is None or mode not in BLOCKS_WRITES:
            continue
        work = analysis.scans or analysis.rewrites
        seconds = table.bytes / SCAN_BYTES_PER_SECOND if work else 0.0
        blocked = table.writes_per_second * seconds
        what = "reads and writes" if mode in BLOCKS_READS else "writes"
        held = f"for ~{_duration(seconds)}" if work else "briefly"
        advice = f" → {RULES[r].fix}" if (r := _rule_for(analysis)) else ""
        lines.append(
            f"{verb} on {table.name} ({_count(table.rows)} rows, {_size(table.bytes)}, "
            f"~{table.writes_per_second:,.0f} writes/s) holds {mode} {held}: blocks {what}"
            + (f", about {_count(blocked)} writes" if blocked >= 1 else "") + advice)
        lines += [f"waits first for {t}" for t in table.long_transactions]
    return lines


def _rule_for(analysis: StatementAnalysis) -> str | None:
    active = [f.rule for f in analysis.findings if not f.suppressed and f.severity != "info"]
    return active[0] if active else None


def basis(relation: str | None, stats: Mapping[str, TableStats] | None) -> str:
    """What a verdict on this table is based on, in words (a refusal names it)."""
    if relation is None:
        return "no table to measure"
    if stats is None:
        return f"no live statistics were read: {relation} is assumed large and busy"
    table = stats.get(relation) or stats.get(relation.split(".")[-1])
    if table is None:
        return (f"{relation} is neither in the live statistics nor created earlier in this run: "
                "assumed large and busy")
    return (f"{table.name} per the live statistics: {_count(table.rows)} rows, "
            f"{_size(table.bytes)}, ~{table.writes_per_second:,.0f} writes/s, "
            f"~{_duration(table.bytes / SCAN_BYTES_PER_SECOND)} to scan")


def with_live_severity(finding: Finding, stats: Mapping[str, TableStats]) -> Finding:
    """A lock hazard on a table small enough to be done in milliseconds is information only."""
    table = stats.get(finding.relation or "") or stats.get((finding.relation or "").split(".")[-1])
    if table is None or finding.severity == "info" or table.bytes > SMALL_TABLE_BYTES:
        return finding
    if finding.rule in ("drop-breaks-clients", "rename-breaks-clients", "truncate-cascade",
                        "not-null-without-default"):
        return finding
    return replace(finding, severity="info",
                   message=f"{finding.message} (small table: {_size(table.bytes)}, "
                           f"~{_duration(table.bytes / SCAN_BYTES_PER_SECOND)})")


def _count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def _size(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if n >= size:
            return f"{n / size:.0f} {unit}"
    return f"{n} B"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def worst(findings: list[Finding]) -> Severity | None:
    found: Severity | None = None
    for finding in findings:
        if not finding.suppressed and (found is None or
                                       SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER[found]):
            found = finding.severity
    return found


__all__ = ["RULES", "Finding", "StatementAnalysis", "analyze", "estimate",
           "lint_text", "split", "with_live_severity", "worst"]
