"""YAML documents that remember where each value came from (file, line, column)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from dbops.errors import PlanError, Problem

JsonPath = tuple[str | int, ...]


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


def read_document(path: Path) -> Document:
    """Parse one YAML file safely, keeping positions; raises PlanError on any syntax problem."""
    name = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError([Problem(name, 0, 0, "", f"cannot read plan: {exc.strerror}")]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = exc.problem or exc.context or "invalid YAML"
        raise PlanError([Problem(name, line, col, "", f"YAML syntax error: {what}")]) from None
    finally:
        loader.dispose()
    if node is None:
        raise PlanError([Problem(name, 1, 1, "", "the plan file is empty")])
    if not isinstance(node, yaml.MappingNode):
        where = node.start_mark
        raise PlanError(
            [
                Problem(
                    name,
                    where.line + 1,
                    where.column + 1,
                    "",
                    "the top level of a plan must be a mapping of keys",
                )
            ]
        )
    document = Document(data={})
    problems: list[Problem] = []
    document.data = _convert(node, (), name, document, problems)
    if problems:
        raise PlanError(problems)
    return document


def _origin(file: str, node: yaml.Node) -> Origin:
    return Origin(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(
    node: yaml.Node, path: JsonPath, file: str, doc: Document, problems: list[Problem]
) -> Any:
    doc.origins[path] = _origin(file, node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
            child = (*path, key)
            if key in result:
                first = doc.key_origins[child]
                problems.append(
                    Problem(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        dotted(child),
                        f"duplicate key (first written at line {first.line})",
                    )
                )
                continue
            doc.key_origins[child] = _origin(file, key_node)
            result[key] = _convert(value_node, child, file, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, n), file, doc, problems) for n, item in enumerate(node.value)
        ]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    # Dates stay strings: the schema checks their format and the model parses them.
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value
    return SafeConstructor().construct_object(node, deep=True)


def walk(data: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """Every (path, value) pair in a nested structure, parents before children."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk(value, (*path, key))
    elif isinstance(data, list):
        for n, value in enumerate(data):
            yield from walk(value, (*path, n))
