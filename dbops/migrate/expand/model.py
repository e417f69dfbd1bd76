"""The operations of a YAML migration (`<version>_<slug>.yaml`) as typed values, read from the
file with positions so every problem names its file and line. Never touches a database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from dbops.config.source import Document, display_path, read_document, read_text
from dbops.errors import MigrationError, PlanError

MAX_OPERATIONS = 100
MAX_EXPRESSION = 10_000  # characters of one SQL expression or statement list
MAX_BATCH = 100_000
MAX_PAUSE = timedelta(seconds=60)
DEFAULT_BATCH = 1000
DEFAULT_PAUSE = timedelta(0)
_IDENT = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")
_PAUSE = re.compile(r"^(\d{1,6})(ms|s)$")
TEMP_PREFIX = "_dbops_new_"


@dataclass(frozen=True)
class RenameColumn:
    table: str
    column: str
    name: str
    line: int


@dataclass(frozen=True)
class AlterColumn:
    """A column changed into a new one (name, type, NOT NULL, CHECK, UNIQUE, DEFAULT), kept in
    step with the old one by `up` (new value from the old row) and `down` (old from the new)."""

    table: str
    column: str
    line: int
    name: str | None = None
    type: str | None = None
    nullable: bool | None = None
    check: str | None = None
    unique: bool = False
    default: str | None = None
    up: str | None = None
    down: str | None = None

    @property
    def final_name(self) -> str:
        return self.name or self.column

    @property
    def needs_column(self) -> bool:
        """Anything beyond a rename needs a new column; a rename alone is a view's alias."""
        return any((self.type, self.nullable is False, self.check, self.unique,
                    self.default is not None, self.up))


@dataclass(frozen=True)
class AddColumn:
    table: str
    name: str
    type: str
    line: int
    nullable: bool = True
    default: str | None = None
    check: str | None = None
    unique: bool = False
    up: str | None = None  # the value of existing rows (and of old clients' inserts)


@dataclass(frozen=True)
class DropColumn:
    table: str
    column: str
    line: int
    down: str | None = None  # the value old clients read for rows new clients write


@dataclass(frozen=True)
class CreateIndex:
    name: str
    table: str
    columns: tuple[str, ...]
    line: int
    unique: bool = False
    method: str = "btree"


@dataclass(frozen=True)
class RenameTable:
    table: str
    name: str
    line: int


@dataclass(frozen=True)
class RawSql:
    up: str
    line: int
    down: str | None = None


Operation = RenameColumn | AlterColumn | AddColumn | DropColumn | CreateIndex | RenameTable | RawSql


@dataclass(frozen=True)
class ExpandSpec:
    """One YAML migration: its operations on tables of `schema`, and how the backfill runs."""

    schema: str
    operations: tuple[Operation, ...]
    batch_size: int = DEFAULT_BATCH
    batch_pause: timedelta = DEFAULT_PAUSE

    def version_schema(self, version: str) -> str:
        return f"{self.schema}_{version}"

    def losses(self) -> list[str]:
        """What completing the expansion destroys, one line each: a dropped column's data (an
        altered or renamed column's values live on in the new column; `sql` operations are
        judged like any SQL migration)."""
        return [f"line {op.line}: drop_column {op.table}.{op.column}: its data is gone once "
                "the expansion completes" for op in self.operations if isinstance(op, DropColumn)]

    @property
    def tables(self) -> tuple[str, ...]:
        """The base tables the operations touch, in order of first mention."""
        seen: dict[str, None] = {}
        for op in self.operations:
            if not isinstance(op, RawSql):
                seen.setdefault(op.table)
        return tuple(seen)


_KEYS: dict[str, tuple[set[str], set[str]]] = {  # operation: (required keys, optional keys)
    "rename_column": ({"table", "column", "name"}, set()),
    "alter_column": ({"table", "column"},
                     {"name", "type", "nullable", "check", "unique", "default", "up", "down"}),
    "add_column": ({"table", "name", "type"}, {"nullable", "default", "check", "unique", "up"}),
    "drop_column": ({"table", "column"}, {"down"}),
    "create_index": ({"name", "table", "columns"}, {"unique", "method"}),
    "rename_table": ({"table", "name"}, set()),
    "sql": ({"up"}, {"down"}),
}
_TOP = {"operations", "schema", "backfill", "description"}
_METHODS = {"btree", "hash", "gin", "gist", "brin", "spgist"}


def parse_file(path: Path) -> tuple[ExpandSpec, str]:
    """A YAML migration's operations and its text (for the checksum); MigrationError names the
    file and line of the first problem."""
    try:
        text = read_text(path, "migration")
        if not text.strip():
            raise MigrationError(f"{display_path(path)}: the migration file is empty")
        document = read_document(path)
    except PlanError as exc:
        raise MigrationError(str(exc.problems[0]).replace("plan", "migration")) from None
    return _Reader(document, display_path(path)).spec(), text


class _Reader:
    def __init__(self, document: Document, file: str) -> None:
        self.doc, self.file = document, file

    def fail(self, path: tuple[str | int, ...], message: str) -> MigrationError:
        origin = self.doc.key_origins.get(path) or self.doc.origin(path)
        where = f"{self.file}:{origin.line}" if origin else self.file
        return MigrationError(f"{where}: {message}")

    def line(self, path: tuple[str | int, ...]) -> int:
        origin = self.doc.key_origins.get(path) or self.doc.origin(path)
        return origin.line if origin else 0

    def spec(self) -> ExpandSpec:
        data = self.doc.data
        unknown = sorted(set(data) - _TOP)
        if unknown:
            raise self.fail((unknown[0],), f"unknown key {unknown[0]!r} (known: "
                            f"{', '.join(sorted(_TOP))})")
        schema = self.ident(data.get("schema", "public"), ("schema",))
        operations = data.get("operations")
        if not isinstance(operations, list) or not operations:
            raise self.fail(("operations",), "'operations' must be a non-empty list")
        if len(operations) > MAX_OPERATIONS:
            raise self.fail(("operations",), f"more than {MAX_OPERATIONS} operations")
        ops = tuple(self.operation(op, ("operations", n)) for n, op in enumerate(operations))
        batch_size, pause = self.backfill(data.get("backfill", {}))
        self.check_conflicts(ops)
        return ExpandSpec(schema, ops, batch_size, pause)

    def backfill(self, value: Any) -> tuple[int, timedelta]:
        path: tuple[str | int, ...] = ("backfill",)
        if not isinstance(value, dict) or set(value) - {"batch_size", "pause"}:
            raise self.fail(path, "'backfill' takes batch_size (rows) and pause (e.g. 50ms)")
        size = value.get("batch_size", DEFAULT_BATCH)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH:
            raise self.fail((*path, "batch_size"), f"batch_size must be 1..{MAX_BATCH} rows")
        pause = DEFAULT_PAUSE
        if "pause" in value:
            match = _PAUSE.match(str(value["pause"]))
            if not match:
                raise self.fail((*path, "pause"), "pause must be a duration like 50ms or 1s")
            number, unit = int(match.group(1)), match.group(2)
            pause = timedelta(milliseconds=number) if unit == "ms" else timedelta(seconds=number)
            if pause > MAX_PAUSE:
                raise self.fail((*path, "pause"), "pause must be at most 60s")
        return size, pause

    def operation(self, value: Any, path: tuple[str | int, ...]) -> Operation:
        if not isinstance(value, dict) or len(value) != 1:
            raise self.fail(path, "an operation is a mapping with one key: "
                            + ", ".join(sorted(_KEYS)))
        kind, body = next(iter(value.items()))
        here = (*path, kind)
        if kind not in _KEYS:
            raise self.fail(here, f"unknown operation {kind!r} (known: {', '.join(sorted(_KEYS))})")
        if not isinstance(body, dict):
            raise self.fail(here, f"{kind} takes a mapping of its settings")
        required, optional = _KEYS[kind]
        missing = sorted(required - set(body))
        if missing:
            raise self.fail(here, f"{kind} needs {', '.join(missing)}")
        extra = sorted(set(body) - required - optional)
        if extra:
            raise self.fail((*here, extra[0]), f"{kind} has no setting {extra[0]!r} (known: "
                            f"{', '.join(sorted(required | optional))})")
        line = self.line(here)
        b = {key: (*here, key) for key in body}

        def ident(key: str) -> str:
            return self.ident(body[key], b[key])

        def text(key: str) -> str | None:
            return self.text(body[key], b[key]) if key in body else None

        def flag(key: str) -> bool | None:
            if key not in body:
                return None
            if not isinstance(body[key], bool):
                raise self.fail(b[key], f"{key} must be true or false")
            return bool(body[key])

        if kind == "rename_column":
            return RenameColumn(ident("table"), ident("column"), ident("name"), line)
        if kind == "alter_column":
            nullable = flag("nullable")
            op = AlterColumn(ident("table"), ident("column"), line,
                             name=ident("name") if "name" in body else None, type=text("type"),
                             nullable=nullable, check=text("check"), unique=bool(flag("unique")),
                             default=text("default"), up=text("up"), down=text("down"))
            if nullable is True:
                raise self.fail(b["nullable"], "nullable: true (dropping NOT NULL) needs no "
                                "expansion: use an sql operation")
            if not op.needs_column and op.name is None:
                raise self.fail(here, "alter_column changes nothing: give name, type, nullable, "
                                "check, unique or default")
            if op.needs_column and op.down is None and op.type is not None:
                raise self.fail(here, "a type change needs `down`: the old column's value "
                                "computed from the new one")
            return op
        if kind == "add_column":
            return AddColumn(ident("table"), ident("name"), str(text("type")), line,
                             nullable=flag("nullable") is not False, default=text("default"),
                             check=text("check"), unique=bool(flag("unique")), up=text("up"))
        if kind == "drop_column":
            return DropColumn(ident("table"), ident("column"), line, down=text("down"))
        if kind == "create_index":
            columns = body["columns"]
            if not isinstance(columns, list) or not columns or len(columns) > 32:
                raise self.fail(b["columns"], "columns must be a list of 1 to 32 column names")
            method = str(body.get("method", "btree"))
            if method not in _METHODS:
                raise self.fail(b.get("method", here), f"method must be one of "
                                f"{', '.join(sorted(_METHODS))}")
            return CreateIndex(ident("name"), ident("table"),
                               tuple(self.ident(c, (*b["columns"], n))
                                     for n, c in enumerate(columns)),
                               line, unique=bool(flag("unique")), method=method)
        if kind == "rename_table":
            return RenameTable(ident("table"), ident("name"), line)
        return RawSql(str(text("up")), line, down=text("down"))

    def ident(self, value: Any, path: tuple[str | int, ...]) -> str:
        if not isinstance(value, str) or not _IDENT.match(value):
            raise self.fail(path, f"{value!r} is not a plain lower-case SQL name (letters, "
                            "digits, _ and $, at most 63)")
        if value.startswith("_dbops_"):
            raise self.fail(path, f"{value!r}: names starting with _dbops_ are dbops's own")
        return value

    def text(self, value: Any, path: tuple[str | int, ...]) -> str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise self.fail(path, "must be SQL text")
        out = str(value).strip()
        if not out:
            raise self.fail(path, "must not be empty")
        if len(out) > MAX_EXPRESSION:
            raise self.fail(path, f"longer than {MAX_EXPRESSION} characters")
        return out

    def check_conflicts(self, ops: tuple[Operation, ...]) -> None:
        """One operation per column, and a renamed table takes no other operation: each column's
        old and new shape must be unambiguous for the triggers and views."""
        columns: dict[tuple[str, str], int] = {}
        renamed: dict[str, int] = {}
        for n, op in enumerate(ops):
            path: tuple[str | int, ...] = ("operations", n)
            if isinstance(op, (RenameColumn, AlterColumn, DropColumn)):
                key = (op.table, op.column)
            elif isinstance(op, AddColumn):
                key = (op.table, op.name)
            else:
                key = None
            if key is not None:
                if key in columns:
                    raise self.fail(path, f"{key[0]}.{key[1]} already has an operation (at "
                                    f"line {columns[key]}): one operation per column")
                columns[key] = op.line
            if isinstance(op, RenameTable):
                if op.table in renamed:
                    raise self.fail(path, f"table {op.table} is renamed twice")
                renamed[op.table] = op.line
