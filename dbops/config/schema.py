"""JSON Schema validation of plan documents, reported as located one-line problems."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterator
from datetime import date
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

from dbops.config import cron
from dbops.config.source import Document, JsonPath
from dbops.errors import Problem
from dbops.units import duration_seconds, is_duration, is_size


def packaged_schema(name: str) -> bytes:
    """A JSON Schema as shipped inside the package; schemas/ at the repository top is the published
    copy (a test keeps the two identical). Read as package data, so an installed dbops finds it."""
    return files("dbops").joinpath("schemas", name).read_bytes()


_FORMAT_HINTS = {
    "duration": "not a duration (use e.g. 500ms, 30s, 5m, 1h, 30d)",
    "size": "not a size (use e.g. 512kB, 64MB, 2GB)",
    "date": "not a date (use YYYY-MM-DD)",
}


_ONE_LINE = "^[^\\n\\r\\u0000]*$"  # the schema's pattern for values that must be one line


@cache
def _plan_schema_bytes() -> bytes:
    return packaged_schema("plan.schema.json")


@cache
def plan_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_plan_schema_bytes())
    return schema


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _duration_bound(minimum: bool) -> Any:
    """The `durationMinimum`/`durationMaximum` keywords: a duration's range, in its own units."""
    from jsonschema import ValidationError

    def check(validator: Any, bound: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if not is_duration(instance):
            return  # `format` reports it
        seconds, limit = duration_seconds(instance), duration_seconds(bound)
        if seconds < limit if minimum else seconds > limit:
            yield ValidationError(
                f"must be {'at least' if minimum else 'at most'} {bound} (got {instance!r})")

    return check


@cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator, FormatChecker, validators

    checker = FormatChecker(formats=())
    checker.checks("duration")(lambda v: not isinstance(v, str) or is_duration(v))
    checker.checks("size")(lambda v: not isinstance(v, str) or is_size(v))
    checker.checks("date")(_is_date)
    checker.checks("cron")(lambda v: cron.problem(v) is None)
    extended = validators.extend(Draft202012Validator, {  # type: ignore[no-untyped-call]
        "durationMinimum": _duration_bound(minimum=True),
        "durationMaximum": _duration_bound(minimum=False),
    })
    validator: Draft202012Validator = extended(plan_schema(), format_checker=checker)
    return validator


def validate(doc: Document, *, abstract: bool = False,
             cache: Path | None = None) -> list[Problem]:
    """Every schema problem in the document; an abstract (extend-only) plan may omit required keys.

    With `cache`, a document (with this very schema) that validated before is not validated
    again: loading jsonschema is a good part of a fast command's start-up.
    """
    seal = _seal(doc, abstract) if cache is not None else ""
    if cache is not None and (cache / seal).exists():
        return []
    problems = _problems(doc, abstract=abstract)
    if cache is not None and not problems:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            (cache / seal).touch()
        except OSError:
            pass  # a read-only checkout simply validates every time
    return problems


def _seal(doc: Document, abstract: bool) -> str:
    digest = hashlib.sha256(_plan_schema_bytes())
    digest.update(json.dumps([doc.data, abstract], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _problems(doc: Document, *, abstract: bool) -> list[Problem]:
    problems: list[Problem] = []
    for error in _validator().iter_errors(doc.data):
        if abstract and error.validator == "required":
            continue
        problems.extend(p for p in _explain(error, doc) if p not in problems)
    return sorted(problems, key=lambda p: (p.file, p.line, p.column))


def _explain(error: ValidationError, doc: Document) -> list[Problem]:
    path: JsonPath = tuple(error.absolute_path)
    value = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        return [
            doc.problem((*path, key), _unknown_key(key, allowed), at_key=True)
            for key in value
            if key not in allowed
        ]
    if kind == "required":
        missing = [
            k for k in _listed(error.validator_value) if isinstance(value, dict) and k not in value
        ]
        return [doc.problem(path, f"missing required key '{key}'") for key in missing]
    if "propertyNames" in error.absolute_schema_path:
        return [
            doc.problem(
                (*path, str(value)),
                "invalid name (lower-case letters, digits and _ only)",
                at_key=True,
            )
        ]
    return [doc.problem(path, _message(kind, error, value, schema))]


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key (allowed: {', '.join(allowed)})"


def _message(kind: Any, error: ValidationError, value: Any, schema: dict[str, Any]) -> str:
    if kind == "type":
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"must be {names}, got {_json_type(value)} {value!r}"
    if kind == "enum":
        options = ", ".join(str(o) for o in _listed(error.validator_value))
        return f"must be one of {options} (got {value!r})"
    if kind == "format" and error.validator_value == "cron":
        return f"{cron.problem(value)}: {value!r}"
    if kind == "format":
        return f"{_FORMAT_HINTS.get(str(error.validator_value), 'invalid format')}: {value!r}"
    if kind in ("minimum", "exclusiveMinimum"):
        sign = ">=" if kind == "minimum" else ">"
        return f"must be {sign} {error.validator_value} (got {value!r})"
    if kind in ("maximum", "exclusiveMaximum"):
        sign = "<=" if kind == "maximum" else "<"
        return f"must be {sign} {error.validator_value} (got {value!r})"
    if kind == "minLength":
        return "must not be empty"
    if kind == "pattern" and error.validator_value == _ONE_LINE:
        return f"a setting value must be one line (got {value!r})"
    if kind == "maxLength":
        return f"longer than {error.validator_value} characters"
    if kind == "pattern":
        return f"invalid value {value!r}: {schema.get('description', 'does not match ' + str(error.validator_value))}"
    return error.message


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "list" if isinstance(value, list) else "mapping"


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        merged = {**plan_schema()["$defs"][ref.removeprefix("#/$defs/")], **schema}
        merged.pop("$ref")
        return _resolve(merged)
    return schema


def subschema(path: JsonPath) -> dict[str, Any] | None:
    """The schema that governs the value at `path`, or None when the schema does not reach it."""
    node = _resolve(plan_schema())
    for part in path:
        if isinstance(part, int):
            items = node.get("items")
            if not isinstance(items, dict):
                return None
            node = _resolve(items)
            continue
        props = node.get("properties", {})
        if part in props:
            node = _resolve(props[part])
        elif isinstance(node.get("additionalProperties"), dict):
            node = _resolve(node["additionalProperties"])
        else:
            return None
    return node


def accepts_string(path: JsonPath) -> bool:
    node = subschema(path)
    if node is None:
        return True
    types = node.get("type", "string")
    return "string" in (types if isinstance(types, list) else [types])


def fill_defaults(data: dict[str, Any], path: JsonPath = ()) -> None:
    """Write the schema's defaults into every missing key; missing sections without required keys are created."""
    node = subschema(path)
    if node is None:
        return
    for key, prop in node.get("properties", {}).items():
        prop = _resolve(prop)
        if key not in data:
            if "default" in prop:
                data[key] = json.loads(json.dumps(prop["default"]))
            elif prop.get("type") == "object" and "properties" in prop and not prop.get("required"):
                data[key] = {}
        if isinstance(data.get(key), dict):
            fill_defaults(data[key], (*path, key))
        elif isinstance(data.get(key), list):
            for n, item in enumerate(data[key]):
                if isinstance(item, dict):
                    fill_defaults(item, (*path, key, n))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in _resolve(extra):
        for key, value in data.items():
            if key not in node.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, (*path, key))
