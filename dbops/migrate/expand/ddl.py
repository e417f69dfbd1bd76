"""The SQL of each phase of an expand/contract migration, composed with psycopg.sql from the
operations and the live columns of the tables they touch (a Layout). Pure: no connection.

The base tables keep their old shape for old clients; new columns live under temporary names
(`_dbops_new_<column>`); a BEFORE INSERT OR UPDATE trigger fills whichever side the writer did
not write, choosing by the writer's search_path (the version schema in it means the new shape);
the version schema's views present the new shape and, being simple, are updatable."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from dbops.migrate.expand.model import (
    TEMP_PREFIX,
    AddColumn,
    AlterColumn,
    CreateIndex,
    DropColumn,
    ExpandSpec,
    RenameColumn,
    RenameTable,
)


@dataclass(frozen=True)
class LiveColumn:
    name: str
    type: str  # format_type() of the live column


@dataclass(frozen=True)
class LiveTable:
    name: str
    columns: tuple[LiveColumn, ...]  # in attnum order, dbops's temporary columns left out
    key: str | None  # the single-column primary key, when there is one

    def column(self, name: str) -> LiveColumn | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class NewColumn:
    """A column the expansion adds under a temporary name and renames into place on complete."""

    temp: str
    final: str
    type: str
    old: str | None  # the column it replaces (alter_column), None for add_column
    up: str | None  # its value from the old row
    down: str | None  # the old column's value from the new row (alter_column)
    old_type: str | None
    nullable: bool
    check: str | None
    unique: bool
    default: str | None

    @property
    def not_null_constraint(self) -> str:
        return _short(f"_dbops_nn_{self.final}")

    @property
    def check_constraint(self) -> str:
        return _short(f"_dbops_ck_{self.final}")

    @property
    def unique_index(self) -> str:
        return _short(f"_dbops_uq_{self.final}")


@dataclass(frozen=True)
class TableLayout:
    """What an expansion does to one table, and both of its shapes."""

    schema: str
    table: str
    view: str  # its name in the version schema
    key: str | None
    old_columns: tuple[LiveColumn, ...]
    new_columns: tuple[NewColumn, ...]
    view_columns: tuple[tuple[str, str], ...]  # (name in the new shape, base column)
    renames: tuple[tuple[str, str], ...]  # base column -> new name, no new column needed
    drops: tuple[str, ...]  # base columns dropped on complete (drop_column)
    old_fills: tuple[tuple[str, str], ...]  # (old base column, down expression) for new writers
    new_table_name: str | None

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def needs_trigger(self) -> bool:
        return bool(self.new_columns or self.old_fills)

    @property
    def needs_backfill(self) -> bool:
        return any(c.up is not None for c in self.new_columns)


def _short(name: str) -> str:
    """A name within PostgreSQL's 63 bytes, made unique by a hash when it had to be cut."""
    if len(name) <= 63:
        return name
    return f"{name[:54]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def temp_name(column: str) -> str:
    return _short(f"{TEMP_PREFIX}{column}")


def trigger_name(version: str) -> str:
    return f"_dbops_sync_{version}"


def function_name(version: str, table: str) -> str:
    return _short(f"_dbops_sync_{version}_{table}")


def layout(spec: ExpandSpec, live: dict[str, LiveTable]) -> dict[str, TableLayout]:
    """Each touched table's layout; raises ValueError naming a missing table or column."""
    out: dict[str, TableLayout] = {}
    for table in spec.tables:
        if table not in live:
            raise ValueError(f"table {spec.schema}.{table} does not exist")
        t = live[table]
        ops = [op for op in spec.operations if not isinstance(op, (CreateIndex,))
               and getattr(op, "table", None) == table]
        replaced: dict[str, str] = {}  # base column -> temp column standing for it
        renamed: dict[str, str] = {}
        drops: list[str] = []
        new: list[NewColumn] = []
        fills: list[tuple[str, str]] = []
        view = table
        for op in ops:
            if (isinstance(op, (RenameColumn, AlterColumn, DropColumn))
                    and t.column(op.column) is None):
                raise ValueError(f"column {table}.{op.column} does not exist (line {op.line})")
            if isinstance(op, RenameColumn):
                renamed[op.column] = op.name
            elif isinstance(op, AlterColumn) and not op.needs_column:
                renamed[op.column] = op.final_name
            elif isinstance(op, AlterColumn):
                old = t.column(op.column)
                assert old is not None
                column = NewColumn(
                    temp=temp_name(op.final_name), final=op.final_name,
                    type=op.type or old.type, old=op.column, up=op.up or op.column,
                    down=op.down or op.final_name, old_type=old.type,
                    nullable=op.nullable is not False, check=op.check, unique=op.unique,
                    default=op.default)
                new.append(column)
                replaced[op.column] = column.temp
                fills.append((op.column, column.down or op.final_name))
            elif isinstance(op, AddColumn):
                if t.column(op.name) is not None:
                    raise ValueError(f"column {table}.{op.name} already exists (line {op.line})")
                new.append(NewColumn(
                    temp=temp_name(op.name), final=op.name, type=op.type, old=None, up=op.up,
                    down=None, old_type=None, nullable=op.nullable, check=op.check,
                    unique=op.unique, default=op.default))
            elif isinstance(op, DropColumn):
                drops.append(op.column)
                if op.down is not None:
                    fills.append((op.column, op.down))
            elif isinstance(op, RenameTable):
                view = op.name
        view_columns: list[tuple[str, str]] = []
        for c in t.columns:
            if c.name in drops:
                continue
            if c.name in replaced:
                final = next(n.final for n in new if n.old == c.name)
                view_columns.append((final, replaced[c.name]))
            else:
                view_columns.append((renamed.get(c.name, c.name), c.name))
        view_columns += [(n.final, n.temp) for n in new if n.old is None]
        names = [name for name, _ in view_columns]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"the new shape of {table} would have two columns named {duplicate}")
        out[table] = TableLayout(
            schema=spec.schema, table=table, view=view, key=t.key, old_columns=t.columns,
            new_columns=tuple(new), view_columns=tuple(view_columns),
            renames=tuple(renamed.items()), drops=tuple(drops), old_fills=tuple(fills),
            new_table_name=view if view != table else None)
    return out


def add_columns(t: TableLayout) -> list[sql.Composed]:
    """The temporary columns and their constraints, NOT VALID (checked by validate later)."""
    out: list[sql.Composed] = []
    for c in t.new_columns:
        default = (sql.SQL(" DEFAULT {}").format(sql.SQL(c.default)) if c.default is not None
                   else sql.SQL(""))
        out.append(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}{}").format(
            t.ident, sql.Identifier(c.temp), sql.SQL(c.type), default))
        if not c.nullable:
            out.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID")
                       .format(t.ident, sql.Identifier(c.not_null_constraint),
                               sql.Identifier(c.temp)))
        if c.check is not None:
            out.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({}) NOT VALID").format(
                t.ident, sql.Identifier(c.check_constraint),
                sql.SQL(rename_in_expression(c.check, c.final, c.temp))))
    return out


def rename_in_expression(expression: str, name: str, replacement: str) -> str:
    """An expression with every reference to column `name` made to `replacement` (pglast's parse
    tree, so strings and other names are left alone)."""
    from pglast import parse_sql
    from pglast.stream import RawStream
    from pglast.visitors import Visitor

    tree: Any = parse_sql(f"SELECT {expression}")

    class _Rename(Visitor):
        def visit_ColumnRef(self, ancestors: object, node: Any) -> None:
            fields = node.fields
            if len(fields) == 1 and getattr(fields[0], "sval", None) == name:
                fields[0].sval = replacement

    _Rename()(tree)
    return str(RawStream()(tree[0].stmt)).removeprefix("SELECT ")


def trigger(t: TableLayout, version: str, version_schema: str) -> list[sql.Composed]:
    """The function and trigger keeping both shapes in step on every write."""
    up_vars = sql.SQL(" ").join(
        sql.SQL("{} {}.{}%TYPE := NEW.{};").format(
            sql.Identifier(c.name), t.ident, sql.Identifier(c.name), sql.Identifier(c.name))
        for c in t.old_columns)
    up_sets = sql.SQL(" ").join(
        sql.SQL("NEW.{} := ({})::{};").format(sql.Identifier(c.temp), sql.SQL(c.up),
                                              sql.SQL(c.type))
        for c in t.new_columns if c.up is not None)
    new_vars = sql.SQL(" ").join(
        sql.SQL("{} {}.{}%TYPE := NEW.{};").format(
            sql.Identifier(name), t.ident, sql.Identifier(base), sql.Identifier(base))
        for name, base in t.view_columns)
    old_types = {c.name: c.type for c in t.old_columns}
    down_sets = sql.SQL(" ").join(
        sql.SQL("NEW.{} := ({})::{};").format(sql.Identifier(column), sql.SQL(expression),
                                              sql.SQL(old_types[column]))
        for column, expression in t.old_fills)
    body = sql.SQL(
        "BEGIN IF {} = ANY (current_schemas(false)) THEN DECLARE {} BEGIN {} END; "
        "ELSE DECLARE {} BEGIN {} END; END IF; RETURN NEW; END").format(
            sql.Literal(version_schema), new_vars, down_sets or sql.SQL("NULL;"), up_vars,
            up_sets or sql.SQL("NULL;"))
    function = sql.Identifier(t.schema, function_name(version, t.table))
    return [
        sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            function, sql.Literal(body.as_string(None))),
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger_name(version)),
                                                        t.ident),
        sql.SQL("CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION "
                "{}()").format(sql.Identifier(trigger_name(version)), t.ident, function),
    ]


def drop_trigger(t: TableLayout, version: str) -> list[sql.Composed]:
    return [
        sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger_name(version)),
                                                         t.ident),
        sql.SQL("DROP FUNCTION IF EXISTS {}()").format(
            sql.Identifier(t.schema, function_name(version, t.table))),
    ]


def preflight(t: TableLayout) -> sql.Composed:
    """One read-only pass that evaluates every `up` and every `down` over the existing rows, so
    an expression that fails stops the expansion before anything changes."""
    old = sql.SQL(", ").join(sql.Identifier(c.name) for c in t.old_columns)
    new_shape = sql.SQL(", ").join(
        sql.SQL("({})::{} AS {}").format(
            sql.SQL(n.up) if n.up is not None else sql.SQL("NULL"), sql.SQL(n.type),
            sql.Identifier(name))
        if (n := next((c for c in t.new_columns if c.temp == base), None)) is not None
        else sql.SQL("{} AS {}").format(sql.Identifier(base), sql.Identifier(name))
        for name, base in t.view_columns)
    old_types = {c.name: c.type for c in t.old_columns}
    downs = [sql.SQL("count(({})::{})").format(sql.SQL(expression), sql.SQL(old_types[column]))
             for column, expression in t.old_fills]
    return sql.SQL("SELECT {} FROM (SELECT {} FROM (SELECT {} FROM {}) AS old_shape) AS "
                   "new_shape").format(sql.SQL(", ").join([sql.SQL("count(*)"), *downs]),
                                       new_shape, old, t.ident)


def backfill_batch(t: TableLayout, position: str | None, size: int) -> sql.Composed:
    """Touch the next `size` rows after `position` (keyset on the primary key) so the trigger
    computes their new columns; returns (rows, last key as text)."""
    assert t.key is not None
    key = sql.Identifier(t.key)
    after = (sql.SQL("WHERE {} > {}").format(key, sql.Literal(position)) if position is not None
             else sql.SQL(""))
    return sql.SQL(
        "WITH batch AS (SELECT {key} FROM {table} {after} ORDER BY {key} LIMIT {size}),"
        " touched AS (UPDATE {table} AS t SET {key} = t.{key} FROM batch"
        " WHERE t.{key} = batch.{key} RETURNING t.{key})"
        " SELECT count(*), max({key})::text FROM touched").format(
            key=key, table=t.ident, after=after, size=sql.Literal(size))


def validate(t: TableLayout) -> list[sql.Composed]:
    out = []
    for c in t.new_columns:
        if not c.nullable:
            out.append(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                t.ident, sql.Identifier(c.not_null_constraint)))
        if c.check is not None:
            out.append(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                t.ident, sql.Identifier(c.check_constraint)))
    return out


def indexes(t: TableLayout, spec: ExpandSpec) -> list[tuple[str, sql.Composed]]:
    """(index name, CREATE INDEX CONCURRENTLY) for unique columns and create_index operations;
    columns are named in the new shape and built on the base columns standing for them."""
    out = [(c.unique_index, sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({})").format(
        sql.Identifier(c.unique_index), t.ident, sql.Identifier(c.temp)))
        for c in t.new_columns if c.unique]
    base_of = {name: base for name, base in t.view_columns}
    for op in spec.operations:
        if isinstance(op, CreateIndex) and op.table == t.table:
            columns = sql.SQL(", ").join(sql.Identifier(base_of.get(c, c)) for c in op.columns)
            out.append((op.name, sql.SQL("CREATE {}INDEX CONCURRENTLY {} ON {} USING {} ({})")
                        .format(sql.SQL("UNIQUE " if op.unique else ""), sql.Identifier(op.name),
                                t.ident, sql.SQL(op.method), columns)))
    return out


@dataclass(frozen=True)
class Grant:
    """A privilege on the base schema (table None: USAGE) or one of its tables, to a role
    (None: PUBLIC), which the version schema's views copy."""

    table: str | None
    grantee: str | None
    privilege: str


def _grantee(name: str | None) -> sql.Composable:
    return sql.SQL("PUBLIC") if name is None else sql.Identifier(name)


def version_views(spec: ExpandSpec, version_schema: str, layouts: dict[str, TableLayout],
                  live: dict[str, LiveTable], security_invoker: bool,
                  grants: tuple[Grant, ...] = ()) -> list[sql.Composed]:
    """The version schema: a view per table of the base schema, the touched ones in the new
    shape, the others as they are; whoever may use the base schema and its tables may use the
    version schema and its views alike."""
    out = [sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(version_schema))]
    out += [sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(version_schema),
                                                             _grantee(g.grantee))
            for g in grants if g.table is None and g.privilege == "USAGE"]
    option = sql.SQL(" WITH (security_invoker = true)") if security_invoker else sql.SQL("")
    for name, table in sorted(live.items()):
        t = layouts.get(name)
        view = t.view if t else name
        pairs = t.view_columns if t else tuple((c.name, c.name) for c in table.columns)
        columns = sql.SQL(", ").join(
            sql.Identifier(base) if base == shown
            else sql.SQL("{} AS {}").format(sql.Identifier(base), sql.Identifier(shown))
            for shown, base in pairs)
        out.append(sql.SQL("CREATE VIEW {}{} AS SELECT {} FROM {}").format(
            sql.Identifier(version_schema, view), option, columns,
            sql.Identifier(spec.schema, name)))
        out += [sql.SQL("GRANT {} ON {} TO {}").format(
            sql.SQL(g.privilege), sql.Identifier(version_schema, view), _grantee(g.grantee))
            for g in grants if g.table == name
            and g.privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")]
    return out


def contract(t: TableLayout, version: str) -> list[sql.Composed]:
    """Complete one table: the old columns go, the new ones take their final names."""
    out = drop_trigger(t, version)
    ident = t.ident
    for c in t.new_columns:
        if c.old is not None:
            out.append(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                ident, sql.Identifier(c.old)))
        out.append(sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
            ident, sql.Identifier(c.temp), sql.Identifier(c.final)))
        if not c.nullable:
            # Fast: the validated CHECK proves it, so SET NOT NULL does not scan the table.
            out.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(
                ident, sql.Identifier(c.final)))
            out.append(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                ident, sql.Identifier(c.not_null_constraint)))
        if c.check is not None:
            out.append(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                ident, sql.Identifier(c.check_constraint),
                sql.Identifier(_short(f"{t.view}_{c.final}_check"))))
        if c.unique:
            out.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE USING INDEX {}").format(
                ident, sql.Identifier(_short(f"{t.view}_{c.final}_key")),
                sql.Identifier(c.unique_index)))
    for column in t.drops:
        out.append(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
            ident, sql.Identifier(column)))
    for old, new in t.renames:
        out.append(sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
            ident, sql.Identifier(old), sql.Identifier(new)))
    if t.new_table_name is not None:
        out.append(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            ident, sql.Identifier(t.new_table_name)))
    return out


def undo(t: TableLayout, version: str) -> list[sql.Composed]:
    """Abort one table: the trigger and the new columns go (their constraints and indexes with
    them); the old columns never changed."""
    return [*drop_trigger(t, version), *(
        sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(t.ident, sql.Identifier(c.temp))
        for c in t.new_columns)]
