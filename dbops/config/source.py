"""YAML documents that remember where each value came from (file, line, column)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from dbops.errors import PlanError, Problem

JsonPath = tuple[str | int, ...]

# Bounds on what one plan file may cost to read: a pull request's plan is untrusted input.
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000


def dotted(path: JsonPath) -> str:
    """('database', 'replicas', 0, 'port') -> 'database.replicas[0].port'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True)
class Origin:
    file: str
    line: int
    column: int


@dataclass
class Document:
    """A plan document: its data plus, for every path in it, where it was written."""

    data: dict[str, Any]
    origins: dict[JsonPath, Origin] = field(default_factory=dict)
    key_origins: dict[JsonPath, Origin] = field(default_factory=dict)
    interpolated: set[JsonPath] = field(default_factory=set)
    deferred: dict[JsonPath, str] = field(default_factory=dict)
    references: dict[JsonPath, tuple[str, ...]] = field(default_factory=dict)
    """The environment variables each interpolated or overridden value was read from."""

    def origin(self, path: JsonPath) -> Origin | None:
        """Where `path` was written, or its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(path[:end])
            if found:
                return found
        return None

    def problem(self, path: JsonPath, message: str, *, at_key: bool = False) -> Problem:
        where = (self.key_origins.get(path) if at_key else None) or self.origin(path)
        if where is None:
            return Problem("", 0, 0, dotted(path), message)
        return Problem(where.file, where.line, where.column, dotted(path), message)


def display_path(path: Path) -> str:
    """Paths in messages are relative to the working directory when they can be."""
    if not path.is_absolute():
        return str(path)
    cwd = Path.cwd()
    if not path.is_relative_to(cwd):
        path, cwd = path.resolve(), cwd.resolve()  # through symlinks only when needed
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def read_text(path: Path, what: str = "plan", limit: int = MAX_FILE_BYTES) -> str:
    """A project file's text, at most `limit` bytes of UTF-8; PlanError (file:line:col) otherwise.

    Reads one byte past the limit instead of trusting the file's size, so /dev/zero or a pipe is
    refused as quickly as a large file.
    """
    name = display_path(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(limit + 1)
    except OSError as exc:
        raise PlanError([Problem(name, 0, 0, "", f"cannot read {what}: {exc.strerror}")]) from None
    if len(raw) > limit:
        raise PlanError([Problem(name, 0, 0, "", f"{what} file is larger than "
                                 f"{_kib(limit)} (the limit for {what} files)")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise PlanError([Problem(name, line, column, "",
                                 f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")]) from None


def _kib(size: int) -> str:
    return f"{size // 2**20} MiB" if size % 2**20 == 0 else f"{size // 2**10} KiB"


def read_document(path: Path) -> Document:
    """Parse one YAML file safely and within bounds, keeping positions; raises PlanError on any
    problem: size, encoding, syntax, depth, alias expansion, tags and merge keys."""
    name = display_path(path)
    text = read_text(path)
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: found before parsing starts
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise PlanError([Problem(name, line, col, "", f"YAML syntax error: control character "
                                 f"U+{code:04X} is not allowed")]) from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = exc.problem or exc.context or "invalid YAML"
        raise PlanError([Problem(name, line, col, "", f"YAML syntax error: {what}")]) from None
    except _TooDeep as exc:
        raise PlanError([_at(name, exc.node_mark, "", f"nested deeper than {MAX_DEPTH} levels")]) from None
    except yaml.YAMLError as exc:  # a reader or scanner error without a position
        raise PlanError([Problem(name, 0, 0, "", f"YAML syntax error: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise PlanError([Problem(name, 1, 1, "", "the plan file is empty")])
    if not isinstance(node, yaml.MappingNode):
        raise PlanError([_at(name, node.start_mark, "",
                             "the top level of a plan must be a mapping of keys")])
    document = Document(data={})
    problems: list[Problem] = []
    walker = _Converter(name, document, problems)
    try:
        document.data = walker.convert(node, ())
    except _Stop as stop:
        raise PlanError([*problems, stop.problem]) from None
    if problems:
        raise PlanError(problems)
    return document


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.node_mark = mark


class _Stop(Exception):
    """Converting cannot go on (a cycle or too much expansion): the one problem to report."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader's composer, refusing nesting deeper than MAX_DEPTH before it recurses."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _at(file: str, mark: yaml.Mark | None, path: str, message: str) -> Problem:
    if mark is None:
        return Problem(file, 0, 0, path, message)
    return Problem(file, mark.line + 1, mark.column + 1, path, message)


class _Converter:
    """YAML nodes to plain data with positions. Aliases are followed, within bounds: a cycle, more
    than MAX_VALUES values in all (the alias bomb) or more than MAX_DEPTH levels stop it."""

    def __init__(self, file: str, doc: Document, problems: list[Problem]) -> None:
        self.file, self.doc, self.problems = file, doc, problems
        self.values = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: JsonPath) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Stop(self._problem(node, path, f"more than {MAX_VALUES} values once aliases "
                                      "are expanded (an alias bomb?)"))
        if len(path) > MAX_DEPTH:
            raise _Stop(self._problem(node, path, f"nested deeper than {MAX_DEPTH} levels"))
        if id(node) in self.active:
            raise _Stop(self._problem(node, path, "an alias refers to a value that contains it"))
        self.doc.origins[path] = _origin(self.file, node)
        if not _known_tag(node):
            self.problems.append(self._problem(
                node, path, f"unknown tag {node.tag} (plans are plain YAML; refer to secrets "
                "as ${NAME})"))
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.convert(item, (*path, n)) for n, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.problems.append(self._problem(
                    key_node, path, "merge keys (<<) are not supported: share settings between "
                    "plans with `extends:`"))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or not _known_tag(key_node):
                self.problems.append(self._problem(key_node, path, "a key must be a plain name"))
                continue
            key = str(self._scalar(key_node, path))
            child = (*path, key)
            if key in result:
                first = self.doc.key_origins[child]
                self.problems.append(self._problem(
                    key_node, child, f"duplicate key (first written at line {first.line})"))
                continue
            self.doc.key_origins[child] = _origin(self.file, key_node)
            result[key] = self.convert(value_node, child)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: JsonPath) -> Any:
        # Dates stay strings: the schema checks their format and the model parses them.
        if node.tag == _TIMESTAMP:
            return node.value
        try:
            value = SafeConstructor().construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.problems.append(self._problem(node, path, f"unreadable value: {exc}"))
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(self._problem(node, path, f"{node.value} is not a number a plan "
                                               "can use (no NaN or infinity)"))
            return None
        return value

    def _problem(self, node: yaml.Node, path: JsonPath, message: str) -> Problem:
        return _at(self.file, node.start_mark, dotted(path), message)


_YAML = "tag:yaml.org,2002:"
_MERGE = f"{_YAML}merge"
_TIMESTAMP = f"{_YAML}timestamp"
_KNOWN_TAGS = frozenset(f"{_YAML}{name}" for name in
                        ("str", "int", "float", "bool", "null", "map", "seq", "timestamp"))


def _known_tag(node: yaml.Node) -> bool:
    return node.tag in _KNOWN_TAGS


def _origin(file: str, node: yaml.Node) -> Origin:
    return Origin(file, node.start_mark.line + 1, node.start_mark.column + 1)


def walk(data: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """Every (path, value) pair in a nested structure, parents before children."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk(value, (*path, key))
    elif isinstance(data, list):
        for n, value in enumerate(data):
            yield from walk(value, (*path, n))
