"""What each migration statement does to the database: the lock it takes on which relations (per
PostgreSQL's explicit-locking table), whether it rewrites or scans the table, whether it can run
inside a transaction, and its hazards as findings of stable rules. Pure: no I/O; live table
statistics, when given, turn a hazard into an estimate for this very database."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pglast
from pglast import ast, enums

from dbops.errors import MigrationError
from dbops.migrate.files import Migration, Section, checksum
from dbops.migrate.rulebook import RULES, SEVERITY_ORDER, Rule, Severity
from dbops.migrate.sql import Statement, split, table_key
from dbops.migrate.types import ColumnType, Domain, type_change
from dbops.units import format_duration, format_size

if TYPE_CHECKING:
    from dbops.schema_facts import TableStats

# Lock modes that make the application's writes (ROW EXCLUSIVE) wait.
BLOCKS_WRITES = frozenset({"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"})
BLOCKS_READS = frozenset({"ACCESS EXCLUSIVE"})
LOCK_ORDER = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
              "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    file: str
    line: int
    message: str
    relation: str | None = None
    suppressed: str = ""  # the reason from `-- dbops:ignore <rule> <reason>`
    lock: str | None = None  # the strongest lock the statement takes on `relation`
    blocking_seconds: float | None = None  # how long it blocks, from live statistics
    rows: float | None = None  # the rows the flagged work writes, per the planner (None: per rule)

    @property
    def level(self) -> str:
        """The severity as shown: `ignored` for a finding the file accepts."""
        return "ignored" if self.suppressed else self.severity

    @property
    def rule_url(self) -> str:
        return RULES[self.rule].url if self.rule in RULES else ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.level}: {self.rule}: {self.message}"
        return f"{text} ({self.suppressed})" if self.suppressed else text


@dataclass(frozen=True)
class StatementAnalysis:
    statement: Statement
    locks: tuple[tuple[str, str], ...]  # (relation, lock mode)
    rewrites: bool
    scans: bool
    findings: tuple[Finding, ...]

    @property
    def strongest_lock(self) -> str | None:
        return strongest([mode for _, mode in self.locks])

    def lock_on(self, relation: str | None) -> str | None:
        """The strongest lock this statement takes on `relation` (any, when None)."""
        if relation is None:
            return self.strongest_lock
        return strongest([m for r, m in self.locks if table_key(r) == table_key(relation)]) \
            or self.strongest_lock


def strongest(modes: list[str]) -> str | None:
    return max(modes, key=LOCK_ORDER.index) if modes else None


def _relation(node: ast.RangeVar | None) -> str:
    if node is None:
        return "?"
    return f"{node.schemaname}.{node.relname}" if node.schemaname else str(node.relname)


def _names(items: tuple[ast.Node, ...] | None) -> list[str]:
    return [".".join(str(getattr(p, "sval", p)) for p in item) if isinstance(item, tuple)
            else str(getattr(item, "sval", item)) for item in items or ()]


def sql_text(node: ast.Node) -> str:
    """A parse tree printed back as SQL."""
    # lazy: pglast's printers take ~0.1 s to import, and most runs print nothing
    from pglast.stream import RawStream

    return str(RawStream()(node))


def _volatile(expr: ast.Node | None) -> bool:
    """A default PostgreSQL evaluates per row (so ADD COLUMN rewrites the table)."""
    volatile = {"random", "clock_timestamp", "gen_random_uuid", "uuid_generate_v4", "nextval",
                "timeofday", "txid_current"}
    text = sql_text(expr).lower() if expr is not None else ""
    return any(f"{name}(" in text for name in volatile)


_SERIAL = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})

# Statement kinds that can take a lock on an existing relation or carry a hazard; the others
# (SELECT, CREATE FUNCTION, GRANT, COMMENT, ...) are not parsed again.
_ANALYSED = frozenset({"CreateStmt", "IndexStmt", "DropStmt", "ReindexStmt", "AlterTableStmt",
                       "RenameStmt", "TruncateStmt", "VacuumStmt", "ClusterStmt",
                       "VariableSetStmt", "AlterEnumStmt", "InsertStmt", "UpdateStmt",
                       "DeleteStmt", "CreateDomainStmt", "LockStmt", "RefreshMatViewStmt",
                       "CreateTrigStmt", "AlterSeqStmt", "CommentStmt", "CreateTableAsStmt"})
_TRIGGER_SWITCHES = frozenset({
    enums.AlterTableType.AT_EnableTrig, enums.AlterTableType.AT_EnableAlwaysTrig,
    enums.AlterTableType.AT_EnableReplicaTrig, enums.AlterTableType.AT_EnableTrigAll,
    enums.AlterTableType.AT_EnableTrigUser, enums.AlterTableType.AT_DisableTrig,
    enums.AlterTableType.AT_DisableTrigAll, enums.AlterTableType.AT_DisableTrigUser})

# (table, column, type) of the columns known before a migration runs (from the live catalog).
Columns = frozenset[tuple[str, str, ColumnType]]
# (statement text, rows) the planner estimates an UPDATE or DELETE with a WHERE clause touches.
Rows = frozenset[tuple[str, float]]
# (table, expression) of the valid CHECK constraints known before a migration runs (live catalog).
Checks = frozenset[tuple[str, str]]
# (table, key columns) of the live range-partitioned tables without a default partition.
Keys = frozenset[tuple[str, tuple[str, ...]]]


# pglast's node objects per statement text, built once per run (they cost an order of magnitude
# more than the split); only read, never changed. Bounded: emptied when it would grow past this.
_TREES: dict[str, ast.Node | None] = {}
_MAX_TREES = 8192


def _parsed(text: str) -> ast.Node | None:
    if text in _TREES:
        return _TREES[text]
    tree = pglast.parse_sql(text)[0].stmt
    _remember({text: tree})
    return tree


def _remember(trees: dict[str, ast.Node | None]) -> None:
    if len(_TREES) + len(trees) > _MAX_TREES:
        _TREES.clear()
    _TREES.update(trees)


def parse_ahead(migrations: Iterable[Migration], *, downs: bool = False) -> None:
    """Parse the statements these migrations' analysis will read, all at once, six times faster
    than one by one. pglast's parser builds every node through Node.__setattr__, which checks and
    converts each value for nodes built by hand; the parser's own values already have the right
    types, so the check is switched off while it runs (the trees are equal: tests/test_analyze.py
    compares them). Switching costs about 0.1 ms (every node class is updated), hence one batch.
    A section that does not parse is left to the analysis, which reports it."""
    texts: dict[str, None] = {}
    for migration in migrations:
        for section in (migration.up, migration.down if downs else None):
            if section is None:
                continue
            try:
                statements = section.statements(migration.path)
            except MigrationError:
                continue
            texts.update((s.text, None) for s in statements
                         if s.kind in _ANALYSED and s.text not in _TREES)
    if texts:
        with suppress(pglast.parser.ParseError):  # the split parsed them: not expected
            _remember(dict(zip(texts, trusted_parse(list(texts)), strict=True)))


def trusted_parse(texts: list[str]) -> list[ast.Node | None]:
    """Each statement's tree, as pglast.parse_sql builds it, without its per-attribute check (see
    parse_ahead). Only this thread builds nodes meanwhile; a node another thread built would merely
    go unchecked."""
    checked = ast.Node.__setattr__
    ast.Node.__setattr__ = object.__setattr__  # type: ignore[method-assign,assignment]
    try:
        return [pglast.parse_sql(text)[0].stmt for text in texts]
    finally:
        ast.Node.__setattr__ = checked  # type: ignore[method-assign]


class _Analyzer:
    """Walks one migration's statements, tracking the new tables (no client uses them yet: they
    need no care at all), those new when it starts (`new`, made earlier in the run) and those it
    creates or renames, and the empty ones (`empty`: no rows to scan or rewrite, so no lock
    hazard, but clients may use them)."""

    def __init__(self, migration: Migration, *, outside_transaction: bool,
                 new: frozenset[str] = frozenset(), empty: frozenset[str] = frozenset(),
                 columns: Columns = frozenset(), rows: Rows = frozenset(),
                 checks: Checks = frozenset(), keys: Keys = frozenset(),
                 prove_not_null: bool = True) -> None:
        self.migration = migration
        self.prove_not_null = prove_not_null
        self.rows = dict(rows)
        self.checks = checks
        self.keys = keys
        self.created: set[str] = set(new)
        self.empty: set[str] = set(empty)
        self.outside_transaction = outside_transaction
        self.ignores = _ignores(migration)
        self.columns = {(table_key(t), c): kind for t, c, kind in columns}
        self.definitions: dict[str, str] = {}  # CREATE TABLE texts, parsed only when needed
        self.domains: dict[str, Domain] = {}
        self.enum_values: list[str] = []  # added by ALTER TYPE ... ADD VALUE in this migration

    def column_type(self, table: str, column: str) -> ColumnType | None:
        """The column's type before this statement: from the live catalog, or the CREATE TABLE
        or ADD COLUMN seen earlier in the migration."""
        key = table_key(table)
        if (key, column) not in self.columns and key in self.definitions:
            node = _parsed(self.definitions.pop(key))
            for element in getattr(node, "tableElts", None) or ():
                if isinstance(element, ast.ColumnDef) and element.typeName is not None:
                    self.columns.setdefault((key, str(element.colname)), _column_type(element))
        return self.columns.get((key, column))

    def proven_not_null(self, table: str, column: str) -> bool:
        """Whether a valid CHECK constraint of the live table proves `column IS NOT NULL`
        (PostgreSQL 12+ then sets NOT NULL without scanning the table)."""
        key = table_key(table)
        return self.prove_not_null and any(t == key and column in not_null_columns(expression)
                   for t, expression in self.checks)

    def proven_bounds(self, parent: str, partition: str, bound: ast.PartitionBoundSpec) -> bool:
        """Whether a valid CHECK of the live partition-to-be proves the range bound it is
        attached with (PostgreSQL then skips the scan): a parent keyed by one column, without a
        default partition (that one would be scanned), bounds that are literals."""
        key = dict(self.keys).get(table_key(parent), ())
        lowers, uppers = bound.lowerdatums or (), bound.upperdatums or ()
        lower = _constant(lowers[0]) if len(lowers) == 1 else None
        upper = _constant(uppers[0]) if len(uppers) == 1 else None
        if bound.strategy != "r" or len(key) != 1 or lower is None or upper is None:
            return False
        checks = tuple(check for t, check in self.checks if t == table_key(partition))
        return _proves_range(checks, key[0], lower, upper)

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
        analysis = self._analyze(statement)
        used = [v for v in self.enum_values if f"'{v}'" in statement.text]
        if used and statement.kind != "AlterEnumStmt" and not self.outside_transaction:
            finding = self.finding("enum-value-in-transaction", statement,
                                   f"uses enum value {used[0]!r}, added earlier in the same "
                                   "transaction: PostgreSQL refuses it until that commits")
            analysis = replace(analysis, findings=(*analysis.findings, finding))
        return analysis

    def _analyze(self, statement: Statement) -> StatementAnalysis:
        if statement.kind not in _ANALYSED:
            return StatementAnalysis(statement, (), False, False, ())
        if statement.kind == "CreateStmt" and len(statement.relations) <= 1:
            # A table that references nothing: no lock on anything that exists, no hazard.
            name = table_key(statement.relations[0]) if statement.relations else "?"
            self.created.add(name)
            self.definitions[name] = statement.text
            return StatementAnalysis(statement, (), False, False, ())
        node = _parsed(statement.text)
        locks: list[tuple[str, str]] = []
        findings: list[Finding] = []
        rewrites = scans = False
        if isinstance(node, ast.CreateDomainStmt) and node.typeName is not None:
            name = str(getattr(node.domainname[-1], "sval", "?")) if node.domainname else "?"
            self.domains[name] = Domain(ColumnType.of(node.typeName), bool(node.constraints))
        elif isinstance(node, ast.CreateStmt):
            self.created.add(table_key(_relation(node.relation)))
            self.definitions[table_key(_relation(node.relation))] = statement.text
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
            if node.idxname and self.is_new(table):
                # An index lives in its table's schema, and shares its names with the tables: an
                # index of a new table is new too (dropping it blocks nobody).
                schema = node.relation.schemaname if node.relation else None
                self.created.add(table_key(f"{schema}.{node.idxname}" if schema
                                           else str(node.idxname)))
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
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            # CREATE TABLE ... AS, CREATE MATERIALIZED VIEW, SELECT INTO: a new relation.
            self.created.add(table_key(_relation(node.into.rel)))
        elif isinstance(node, ast.ReindexStmt):
            concurrent = any(getattr(p, "defname", None) == "concurrently" for p in node.params or ())
            target = _relation(node.relation)
            # REINDEX TABLE: SHARE on the table; REINDEX INDEX: ACCESS EXCLUSIVE on the index.
            index = node.kind == enums.ReindexObjectType.REINDEX_OBJECT_INDEX
            locks.append((target, "SHARE UPDATE EXCLUSIVE" if concurrent
                          else "ACCESS EXCLUSIVE" if index else "SHARE"))
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
            if node.renameType in (enums.ObjectType.OBJECT_TABLE, enums.ObjectType.OBJECT_INDEX,
                                   enums.ObjectType.OBJECT_MATVIEW):
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
                first = _relation(node.rels[0].relation) if node.rels else None
                findings.append(self.finding("table-rewrite-lock", statement,
                                             "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE",
                                             first))
        elif isinstance(node, ast.ClusterStmt):
            locks.append((_relation(node.relation), "ACCESS EXCLUSIVE"))
            rewrites = True
            findings.append(self.finding("table-rewrite-lock", statement,
                                         "CLUSTER rewrites the table under ACCESS EXCLUSIVE",
                                         _relation(node.relation)))
        elif isinstance(node, ast.VariableSetStmt) and node.name == "lock_timeout":
            value = sql_text(node.args[0]) if node.args else ""
            if value.strip("'") in ("0", "0ms", "0s"):
                findings.append(self.finding("missing-lock-timeout", statement,
                                             "lock_timeout is switched off"))
        elif isinstance(node, ast.AlterEnumStmt):
            if node.newVal:
                self.enum_values.append(str(node.newVal))
            if node.newValNeighbor:
                findings.append(self.finding("enum-value-order", statement,
                                             f"adds {node.newVal!r} "
                                             f"{'after' if node.newValIsAfter else 'before'} "
                                             f"{node.newValNeighbor!r}"))
        elif isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
            table = _relation(node.relation)
            locks.append((table, "ROW EXCLUSIVE"))
            verb = "UPDATE" if isinstance(node, ast.UpdateStmt) else "DELETE"
            if not isinstance(node, ast.InsertStmt) and node.whereClause is None:
                scans = True
                if not self.is_idle(table):
                    findings.append(self.finding("update-whole-table", statement,
                                                 f"{verb} of every row of {table} in one "
                                                 "transaction", table))
            elif not isinstance(node, ast.InsertStmt) and statement.text in self.rows \
                    and not self.is_idle(table):
                # The planner's estimate of the rows the WHERE clause matches (live only).
                rows = self.rows[statement.text]
                findings.append(replace(self.finding(
                    "update-whole-table", statement,
                    f"{verb} of ~{_count(rows)} rows of {table} (the planner's estimate) in one "
                    f"transaction: {RULES['update-whole-table'].fix}", table), rows=rows))
        elif isinstance(node, ast.LockStmt):
            mode = LOCK_ORDER[(node.mode or 8) - 1]
            for relation in node.relations or ():
                locks.append((_relation(relation), mode))
            if mode in BLOCKS_WRITES and node.relations:
                table = _relation(node.relations[0])
                if not self.is_new(table):
                    findings.append(self.finding("lock-table", statement,
                                                 f"LOCK TABLE {table} IN {mode} MODE holds it to "
                                                 "the end of the transaction", table))
        elif isinstance(node, ast.RefreshMatViewStmt):
            view = _relation(node.relation)
            locks.append((view, "EXCLUSIVE" if node.concurrent else "ACCESS EXCLUSIVE"))
            scans = True
            if not node.concurrent and not self.is_idle(view):
                findings.append(self.finding("refresh-not-concurrent", statement,
                                             f"REFRESH MATERIALIZED VIEW {view} blocks its "
                                             "readers while it recomputes", view))
        elif isinstance(node, ast.CreateTrigStmt):
            table = _relation(node.relation)
            locks.append((table, "SHARE ROW EXCLUSIVE"))
            if not self.is_new(table):
                findings.append(self.finding("trigger-blocks-writes", statement,
                                             f"CREATE TRIGGER on {table} blocks its writes", table))
        elif isinstance(node, ast.AlterSeqStmt):
            sequence = _relation(node.sequence)
            locks.append((sequence, "SHARE ROW EXCLUSIVE"))
            if not self.is_new(sequence):
                findings.append(self.finding("alter-sequence", statement,
                                             f"ALTER SEQUENCE {sequence} makes nextval() wait",
                                             sequence))
        elif isinstance(node, ast.CommentStmt) and isinstance(node.object, tuple):
            # Cheap: a catalog row, under a lock that lets reads and writes go on.
            names = [str(getattr(n, "sval", n)) for n in node.object]
            if node.objtype == enums.ObjectType.OBJECT_COLUMN:
                names = names[:-1]
            if node.objtype in (enums.ObjectType.OBJECT_TABLE, enums.ObjectType.OBJECT_COLUMN):
                locks.append((".".join(names), "SHARE UPDATE EXCLUSIVE"))
        if not statement.transactional and not self.outside_transaction:
            findings.append(self.finding("concurrently-in-transaction", statement,
                                         f"{statement.kind} runs outside the migration's "
                                         "transaction, as a journaled step"))
        analysis = StatementAnalysis(statement, tuple(locks), rewrites, scans, ())
        return replace(analysis, findings=tuple(
            replace(f, lock=analysis.lock_on(f.relation)) if RULES[f.rule].lock else f
            for f in findings))

    def _drop(self, node: ast.DropStmt, statement: Statement,
              locks: list[tuple[str, str]]) -> list[Finding]:
        names = _names(node.objects)
        findings = []
        if node.behavior == enums.DropBehavior.DROP_CASCADE:
            findings.append(self.finding("drop-cascade", statement,
                                         f"DROP ... CASCADE of {', '.join(names)} also drops "
                                         "whatever depends on it", names[0] if names else None))
        if node.removeType in (enums.ObjectType.OBJECT_VIEW, enums.ObjectType.OBJECT_MATVIEW,
                               enums.ObjectType.OBJECT_SEQUENCE):
            locks += [(name, "ACCESS EXCLUSIVE") for name in names]
        if node.removeType == enums.ObjectType.OBJECT_INDEX:
            for name in names:
                locks.append((name, "SHARE UPDATE EXCLUSIVE" if node.concurrent else "ACCESS EXCLUSIVE"))
            if not node.concurrent:
                if not all(self.is_new(name) for name in names):  # an index of a new table
                    findings.append(self.finding("drop-index-not-concurrent", statement,
                                                 f"DROP INDEX {', '.join(names)} blocks the table",
                                                 names[0] if names else None))
            elif self.outside_transaction and not node.missing_ok:
                findings.append(self.finding("not-idempotent-outside-transaction", statement,
                                             "DROP INDEX CONCURRENTLY without IF EXISTS"))
            for name in names:
                self.created.discard(table_key(name))
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
                else:
                    modes.append("ACCESS EXCLUSIVE")
                if contype == enums.ConstrType.CONSTR_EXCLUSION and not idle:
                    scans = True
                    findings.append(self.finding("exclude-builds-index", statement,
                                                 f"the exclusion constraint's index on {table} "
                                                 "is built under ACCESS EXCLUSIVE", table))
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
                if self.proven_not_null(table, str(cmd.name)):
                    continue  # a valid CHECK proves it: no scan
                scans = True
                if not idle:
                    findings.append(self.finding("set-not-null", statement,
                                                 f"SET NOT NULL on {table}.{cmd.name} scans the "
                                                 "table under ACCESS EXCLUSIVE", table))
            elif kind == at.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef):
                modes.append("ACCESS EXCLUSIVE")
                column = str(cmd.name)
                new_type = _column_type(cmd.def_)
                outcome, why = type_change(self.column_type(table, column), new_type,
                                           column=column, using=cmd.def_.raw_default,
                                           domains=self.domains)
                self.columns[(table_key(table), column)] = new_type
                rewrites = rewrites or outcome in ("rewrite", "unknown")
                scans = scans or outcome == "indexes"
                if idle or outcome == "none":
                    continue
                if outcome == "indexes":
                    findings.append(self.finding("type-change-rebuilds-indexes", statement,
                                                 f"changing {table}.{column}: {why}", table))
                else:
                    verb = "rewrites" if outcome == "rewrite" else "may rewrite"
                    findings.append(self.finding("type-change-rewrites", statement,
                                                 f"changing the type of {table}.{column} {verb} "
                                                 f"the table: {why}", table))
            elif kind == at.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                modes.append("ACCESS EXCLUSIVE")
                if cmd.def_.typeName is not None:
                    self.columns[(table_key(table), str(cmd.def_.colname))] = \
                        _column_type(cmd.def_)
                findings += self._add_column(cmd.def_, table, fresh, idle, statement)
                rewrites = rewrites or any(f.rule in ("volatile-default", "generated-column-rewrites")
                                           for f in findings)
            elif kind == at.AT_DropColumn:
                modes.append("ACCESS EXCLUSIVE")
                if not fresh:
                    findings.append(self.finding("drop-breaks-clients", statement,
                                                 f"dropping column {table}.{cmd.name}", table))
            elif kind in (at.AT_SetStatistics, at.AT_ClusterOn, at.AT_SetRelOptions):
                modes.append("SHARE UPDATE EXCLUSIVE")
            elif kind in (at.AT_SetTableSpace, at.AT_SetLogged, at.AT_SetUnLogged):
                modes.append("ACCESS EXCLUSIVE")
                rewrites = True
                if not idle:
                    rule = "set-tablespace-rewrites" if kind == at.AT_SetTableSpace \
                        else "set-logged-rewrites"
                    what = "SET TABLESPACE" if kind == at.AT_SetTableSpace else \
                        "SET LOGGED" if kind == at.AT_SetLogged else "SET UNLOGGED"
                    findings.append(self.finding(rule, statement,
                                                 f"{what} rewrites {table}", table))
            elif kind in _TRIGGER_SWITCHES:
                modes.append("SHARE ROW EXCLUSIVE")
                if not fresh:
                    findings.append(self.finding("trigger-blocks-writes", statement,
                                                 f"ENABLE/DISABLE TRIGGER on {table} blocks its "
                                                 "writes", table))
            elif kind == at.AT_AttachPartition and isinstance(cmd.def_, ast.PartitionCmd):
                modes.append("SHARE UPDATE EXCLUSIVE")
                part = _relation(cmd.def_.name)
                locks.append((part, "ACCESS EXCLUSIVE"))
                if cmd.def_.bound is not None and self.proven_bounds(table, part, cmd.def_.bound):
                    continue  # a valid CHECK proves the bound: no scan
                scans = True
                if not self.is_idle(part):
                    findings.append(self.finding("attach-partition-scans", statement,
                                                 f"ATTACH PARTITION {part} scans it under ACCESS "
                                                 "EXCLUSIVE unless a CHECK proves its bounds",
                                                 part))
            elif kind == at.AT_DetachPartition and isinstance(cmd.def_, ast.PartitionCmd):
                mode = "SHARE UPDATE EXCLUSIVE" if cmd.def_.concurrent else "ACCESS EXCLUSIVE"
                modes.append(mode)
                locks.append((_relation(cmd.def_.name), "ACCESS EXCLUSIVE"))
                if not cmd.def_.concurrent and not fresh:
                    findings.append(self.finding("detach-partition-not-concurrent", statement,
                                                 f"DETACH PARTITION blocks every query of {table}",
                                                 table))
            else:
                modes.append("ACCESS EXCLUSIVE")
        if modes:
            locks.insert(0, (table, max(modes, key=LOCK_ORDER.index)))
        return rewrites, scans

    def _add_column(self, column: ast.ColumnDef, table: str, fresh: bool, idle: bool,
                    statement: Statement) -> list[Finding]:
        constraints = column.constraints or ()
        default = next((c.raw_expr for c in constraints
                        if c.contype == enums.ConstrType.CONSTR_DEFAULT), None)
        not_null = any(c.contype == enums.ConstrType.CONSTR_NOTNULL for c in constraints)
        findings = []
        generated = any(c.contype == enums.ConstrType.CONSTR_GENERATED for c in constraints)
        if generated and not idle:
            findings.append(self.finding("generated-column-rewrites", statement,
                                         f"{table}.{column.colname} is GENERATED ... STORED: "
                                         "the table is rewritten", table))
        # A serial or identity column is filled from its sequence: nextval() for every row.
        serial = _SERIAL & {str(getattr(n, "sval", n)).lower()
                            for n in (column.typeName.names if column.typeName else None) or ()}
        identity = any(c.contype == enums.ConstrType.CONSTR_IDENTITY for c in constraints)
        if not idle and ((default is not None and _volatile(default)) or serial or identity):
            findings.append(self.finding("volatile-default", statement,
                                         f"{table}.{column.colname} gets a volatile default: "
                                         "the table is rewritten", table))
        if not_null and default is None and not fresh:
            findings.append(self.finding("not-null-without-default", statement,
                                         f"{table}.{column.colname} is NOT NULL without a "
                                         "DEFAULT", table))
        return findings


@functools.lru_cache(maxsize=1024)
def _conjuncts(expression: str) -> tuple[ast.Node, ...]:
    """The terms of a CHECK expression (as pg_get_expr prints it) that must all hold: itself, or
    each term of its AND."""
    try:
        node = pglast.parse_sql(f"SELECT {expression}")[0].stmt
    except pglast.parser.ParseError:
        return ()
    terms = [node.targetList[0].val] if isinstance(node, ast.SelectStmt) and node.targetList \
        else []
    found: list[ast.Node] = []
    while terms:
        term = terms.pop()
        if isinstance(term, ast.BoolExpr) and term.boolop == enums.BoolExprType.AND_EXPR:
            terms += list(term.args or ())
        else:
            found.append(term)
    return tuple(found)


def _column(node: ast.Node | None) -> str | None:
    if isinstance(node, ast.ColumnRef) and node.fields:
        return str(getattr(node.fields[-1], "sval", ""))
    return None


def not_null_columns(expression: str) -> frozenset[str]:
    """The columns a CHECK expression proves not null: `col IS NOT NULL`, alone or as one
    term of an AND."""
    return frozenset(name for term in _conjuncts(expression)
                     if isinstance(term, ast.NullTest)
                     and term.nulltesttype == enums.NullTestType.IS_NOT_NULL
                     and (name := _column(term.arg)) is not None)


def _constant(node: ast.Node | tuple[ast.Node, ...] | None) -> str | None:
    """A literal's text, whatever it is cast to (None for anything else)."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    if isinstance(node, ast.A_Const) and not node.isnull and node.val is not None:
        value = node.val
        return str(getattr(value, "sval", None) or getattr(value, "ival", None)
                   or getattr(value, "fval", None) or "")
    return None


def _proves_range(checks: tuple[str, ...], key: str, lower: str, upper: str) -> bool:
    """Whether a table's CHECK expressions, together, prove the range partition's bound `key
    IS NOT NULL AND key >= lower AND key < upper` the way PostgreSQL does: these very terms,
    each a CHECK or a term of its AND (the comparisons alone do not prove the IS NOT NULL to it)."""
    bounds = {(str(getattr(term.name[-1], "sval", "")), _constant(term.rexpr))
              for check in checks for term in _conjuncts(check)
              if isinstance(term, ast.A_Expr) and term.kind == enums.A_Expr_Kind.AEXPR_OP
              and term.name and _column(term.lexpr) == key}
    return {(">=", lower), ("<", upper)} <= bounds \
        and any(key in not_null_columns(check) for check in checks)


def _column_type(column: ast.ColumnDef) -> ColumnType:
    assert column.typeName is not None
    collation = column.collClause.collname if column.collClause is not None else ()
    return ColumnType.of(column.typeName, _names(collation)[-1] if collation else "")


def _ignores(migration: Migration) -> dict[str, str]:
    return dict(migration.ignores)


def analyze(migration: Migration, *, direction: str = "up", new: frozenset[str] = frozenset(),
            empty: frozenset[str] = frozenset(),
            columns: Columns = frozenset(), rows: Rows = frozenset(),
            checks: Checks = frozenset(),
            keys: Keys = frozenset(), prove_not_null: bool = True) -> list[StatementAnalysis]:
    """Every statement of a migration's section, analysed; `new` names the tables created
    earlier in the same run (no care at all), `empty` the existing tables without rows (no lock
    hazard; their clients still break on a rename or a drop), `columns` the live columns' types
    (whether a type change rewrites), `rows` the planner's row estimates of its UPDATE and DELETE
    statements with a WHERE clause (how much they write), `checks` the live tables' valid CHECK
    constraints (what they prove spares a scan), `keys` the partition keys of the live range-
    partitioned tables (what an ATTACH PARTITION's CHECK must prove); without `prove_not_null`
    a CHECK never spares SET NOT NULL its scan."""
    # Without live CHECKs there is nothing to prove: one cache entry serves both callers.
    return list(_analyzed(migration, direction, new, empty, columns, rows, checks, keys,
                          prove_not_null or not checks)[0])


def known_columns(stats: Mapping[str, TableStats] | None) -> Columns:
    """The column types the live statistics carry, for `analyze`."""
    return frozenset((table_key(name), column, ColumnType.parse(kind, collation))
                     for name, table in (stats or {}).items() if "." not in name
                     for column, kind, collation in table.columns)


def known_rows(stats: Mapping[str, TableStats] | None) -> Rows:
    """The planner's row estimates the live statistics carry, for `analyze`."""
    return frozenset(estimate for name, table in (stats or {}).items() if "." not in name
                     for estimate in table.planned)


def known_checks(stats: Mapping[str, TableStats] | None) -> Checks:
    """The valid CHECK constraints the live statistics carry, for `analyze`."""
    return frozenset((table_key(name), check) for name, table in (stats or {}).items()
                     if "." not in name for check in table.checks)


def known_keys(stats: Mapping[str, TableStats] | None) -> Keys:
    """The partition keys the live statistics carry, for `analyze`."""
    return frozenset((table_key(name), table.partition_key) for name, table in
                     (stats or {}).items() if "." not in name and table.partition_key)


def tracked_after(migration: Migration, new: frozenset[str], empty: frozenset[str],
                  columns: Columns = frozenset(), rows: Rows = frozenset(),
                  checks: Checks = frozenset(), keys: Keys = frozenset()
                  ) -> tuple[frozenset[str], frozenset[str]]:
    """The new and the empty tables once the migration's up section has run. Given the same
    live statistics as the run's later `analyze` of the section, it shares that analysis (the
    cache's key is every argument, spelled out the same way: positional, defaults included)."""
    _, new_after, empty_after = _analyzed(migration, "up", new, empty, columns, rows, checks,
                                          keys, True)
    return new_after, empty_after


@functools.lru_cache(maxsize=4096)
def _analyzed(migration: Migration, direction: str, new: frozenset[str], empty: frozenset[str],
              columns: Columns, rows: Rows = frozenset(), checks: Checks = frozenset(),
              keys: Keys = frozenset(), prove_not_null: bool = True
              ) -> tuple[tuple[StatementAnalysis, ...], frozenset[str], frozenset[str]]:
    # A run analyses each pending migration several times (statistics, lint, online steps):
    # pglast's node objects are parsed once.
    section = migration.up if direction == "up" else migration.down
    if section is None:
        return (), new, empty
    statements = section.statements(migration.path)
    outside = not migration.transaction or any(not s.transactional for s in statements)
    analyzer = _Analyzer(migration, outside_transaction=outside, new=new, empty=empty,
                         columns=columns, rows=rows, checks=checks, keys=keys,
                         prove_not_null=prove_not_null)
    analyses = tuple(analyzer.analyze(s) for s in statements)
    if not outside:
        analyses = _held_locks(analyses)
    return analyses, frozenset(analyzer.created), frozenset(analyzer.empty)


def _held_locks(analyses: tuple[StatementAnalysis, ...]) -> tuple[StatementAnalysis, ...]:
    """A LOCK TABLE is held to the end of the transaction: while a later UPDATE or DELETE of
    the same table writes the rows the planner estimates, so its cost is theirs."""
    written: dict[str, float] = {}  # table -> rows written later in the transaction
    verbs: dict[str, str] = {}
    judged: list[StatementAnalysis] = []
    for analysis in reversed(analyses):
        for finding in analysis.findings:
            if finding.rule == "update-whole-table" and finding.rows is not None:
                key = table_key(finding.relation or "")
                written[key] = written.get(key, 0.0) + finding.rows
                verbs[key] = analysis.statement.summary
        if any(f.rule == "lock-table" and table_key(f.relation or "") in written
               for f in analysis.findings):
            findings = tuple(
                replace(f, rows=written[key], message=f"{f.message}, while `{verbs[key]}` writes "
                        f"~{_count(written[key])} rows (the planner's estimate)")
                if f.rule == "lock-table" and (key := table_key(f.relation or "")) in written
                else f for f in analysis.findings)
            analysis = replace(analysis, findings=findings)
        judged.append(analysis)
    return tuple(reversed(judged))


# Findings whose statement throws data away: a migration with one is destructive (shown apart by
# plan, run by apply only with --allow-destroy, after the before-migrate backup).
DATA_LOSS_RULES = frozenset({"drop-breaks-clients", "truncate-cascade", "drop-cascade"})
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
    migration = Migration("00000000000000", "sql", Path(file), "", Section(text, 1), None, (),
                          "low", None, False, True, checksum(text))
    return analyze(migration)


# Rough speeds measured on this kind of machine (a 173 MB table indexed in about 3.6 s).
SCAN_BYTES_PER_SECOND = 50 * 1024 * 1024
DEFAULT_MAX_BLOCKING = 1.0  # seconds: the plan's lint.max_blocking when none is given


def sample_from(max_blocking: timedelta) -> int:
    """The table size from which a hazard can block for `max_blocking`: the write rate of such
    tables is worth sampling."""
    return int(max_blocking.total_seconds() * SCAN_BYTES_PER_SECOND)


def blocking_seconds(table: TableStats) -> float:
    """How long a scan, rewrite or index build of this table holds its lock, roughly."""
    return table.bytes / SCAN_BYTES_PER_SECOND


# Writing a row again (its new version, the WAL, an entry in every index, its triggers) against
# reading it in a scan or an index build: measured on the lint corpus's large table, an UPDATE of
# a third of it took ~20 times as long per row as an index build of all of it. Half that, so an
# estimate errs towards letting a migration through.
ROW_WRITE_FACTOR = 10.0


def written_seconds(table: TableStats, rows: float) -> float:
    """How long an UPDATE or DELETE writing `rows` of this table takes, roughly: their share of
    the table, each written again at ROW_WRITE_FACTOR the cost of reading it."""
    share = min(rows / table.rows, 1.0) if table.rows > 0 else 1.0
    return share * blocking_seconds(table) * ROW_WRITE_FACTOR


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
        seconds = blocking_seconds(table) if work else 0.0
        rate = table.writes_per_second
        blocked = (rate or 0.0) * seconds
        what = "reads and writes" if mode in BLOCKS_READS else "writes"
        held = f"for ~{format_duration(seconds)}" if work else "briefly"
        advice = f" → {RULES[r].fix}" if (r := _rule_for(analysis)) else ""
        lines.append(
            f"{verb} on {table.name} ({_count(table.rows)} rows, {format_size(table.bytes)}"
            f"{_rate(rate)}) holds {mode} {held}: blocks {what}"
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
            f"{format_size(table.bytes)}{_rate(table.writes_per_second)}, "
            f"~{format_duration(blocking_seconds(table))} to scan")


def _rate(rate: float | None) -> str:
    return "" if rate is None else f", ~{rate:,.0f} writes/s"


def with_live_severity(finding: Finding, stats: Mapping[str, TableStats],
                       max_blocking: float = DEFAULT_MAX_BLOCKING) -> Finding:
    """A lock hazard whose estimated blocking time on this table is under `max_blocking`
    seconds (the plan's lint.max_blocking) is information only, whatever the rule; above it the
    rule's severity stands. Hazards to clients or data are never a matter of size."""
    table = stats.get(finding.relation or "") or stats.get((finding.relation or "").split(".")[-1])
    cost = RULES[finding.rule].cost if finding.rule in RULES else "none"
    if table is None or cost not in ("table", "brief"):
        return finding
    seconds = written_seconds(table, finding.rows) if finding.rows is not None \
        else blocking_seconds(table) if cost == "table" else 0.0
    finding = replace(finding, blocking_seconds=round(seconds, 3))
    if finding.severity == "info" or seconds >= max_blocking:
        return finding
    return replace(finding, severity="info",
                   message=f"{finding.message} (~{format_duration(seconds)} on {format_size(table.bytes)}: "
                           f"under lint.max_blocking {format_duration(max_blocking)})")


def _count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def worst(findings: list[Finding]) -> Severity | None:
    found: Severity | None = None
    for finding in findings:
        if not finding.suppressed and (found is None or
                                       SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER[found]):
            found = finding.severity
    return found


__all__ = ["RULES", "SEVERITY_ORDER", "Finding", "Rule", "Severity", "StatementAnalysis",
           "analyze", "estimate",
           "lint_text", "split", "with_live_severity", "worst"]
