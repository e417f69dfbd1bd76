"""Plan files in: resolve the name, read YAML, interpolate ${ENV}, merge `extends`, apply overrides,
validate, fill profile and schema defaults, check semantics, and build the typed Plan.

Precedence, highest first: command-line `--set` > environment variables (DB_HOST, ...) >
the plan file (and the files it extends) > the workload profile > the schema's defaults.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dbops.config import fleet, schema, semantics
from dbops.config.model import Plan, build_plan
from dbops.config.profiles import apply_profile
from dbops.config.project import Project, find_root
from dbops.config.source import (
    Document,
    JsonPath,
    Origin,
    display_path,
    read_document,
    read_text,
    walk,
)
from dbops.errors import PlanError, Problem

# The seed application's environment variables, and the plan setting each one overrides.
ENV_OVERRIDES: dict[str, JsonPath] = {
    "DB_HOST": ("database", "host"),
    "DB_PORT": ("database", "port"),
    "DB_NAME": ("database", "name"),
    "DB_USER": ("database", "user"),
    "DB_PASSWORD": ("database", "password"),
    "DB_SSL_MODE": ("database", "sslmode"),
    "DB_POOL_MIN": ("pool", "min_size"),
    "DB_POOL_MAX": ("pool", "max_size"),
    "DB_WORKLOAD_PROFILE": ("pool", "profile"),
    "DB_HEALTH_CHECK_ENABLED": ("health", "enabled"),
    "DB_MONITORING_ENABLED": ("health", "monitoring"),
    "DB_SLOW_QUERY_THRESHOLD": ("pool", "slow_query_threshold"),
    "DB_LOG_QUERIES": ("pool", "log_queries"),
    "DB_LOG_SLOW_QUERIES": ("pool", "log_slow_queries"),
}

MAX_DOTENV_FILE = 64 * 1024

# Secrets resolve late: a plan validates and renders without them; connecting needs them.
SECRET_PATHS: frozenset[JsonPath] = frozenset({("database", "password")})

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def known_environments(root: Path) -> list[str]:
    return sorted(p.stem for p in plan_files(root) if not _is_abstract(p))


def plan_files(root: Path) -> list[Path]:
    folder = Project.at(root).plans
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []


def _is_abstract(path: Path) -> bool:
    try:
        return read_document(path).data.get("abstract") is True
    except PlanError:
        return False


def resolve_plan_path(ref: str, root: Path) -> Path:
    """`production` -> <plans>/production.yaml under the project root; a path (`staging.yaml`,
    `../plans/staging.yaml`) as the user typed it, from the current directory (a bare file name
    not found there is looked up in the plans directory)."""
    plans = Project.at(root).plans
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        given = Path(ref)
        if given.exists() or "/" in ref:
            return given
        return plans / ref
    path = plans / f"{ref}.yaml"
    if not path.exists():
        known = ", ".join(known_environments(root)) or f"none: {display_path(plans)}/ has no plans"
        raise PlanError(
            [
                Problem(
                    display_path(path),
                    0,
                    0,
                    "",
                    f"unknown environment '{ref}' (known environments: {known})",
                )
            ]
        )
    return path


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a .env file, parsed by python-dotenv (comments, `export`, quotes,
    `KEY=v # comment`); values are taken literally (no ${VAR} expansion), keys without a value
    are skipped. The file is bounded and must be UTF-8 like every other input."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # lazy: only for a project that has a .env file

    text = read_text(path, ".env", MAX_DOTENV_FILE)
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value for key, value in parsed.items() if value is not None}


def environment(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables plans see: the process environment over the project's .env file."""
    return {**read_dotenv(root / ".env"), **(os.environ if environ is None else environ)}


def load_plan(
    ref: str,
    *,
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Plan:
    """Load, validate and build one plan; raises PlanError listing every problem found."""
    root = find_root() if root is None else root
    env = environment(root, environ)
    path = resolve_plan_path(ref, root)
    doc, problems = load_document(path, env)
    if doc.data.get("abstract") is True:
        raise PlanError(
            [
                Problem(
                    display_path(path),
                    1,
                    1,
                    "",
                    "this plan is abstract (only for extends): name a concrete plan",
                )
            ]
        )
    problems += semantics.literal_secrets(doc)
    _apply_environment(doc, env)
    problems += _apply_overrides(doc, overrides or {})
    broken = {p.path for p in problems}
    cache = root / ".dbops" / "cache" / "valid-plans"
    problems += [p for p in schema.validate(doc, cache=cache) if p.path not in broken]
    if problems:
        raise PlanError(problems)
    apply_profile(doc.data.setdefault("pool", {}))
    one_database = "fleet" not in doc.data
    schema.fill_defaults(doc.data)
    if one_database:  # the fleet section has no required key, so the defaults would create it
        doc.data.pop("fleet")
    problems = fleet.expand(doc, root, cache=cache)
    if problems:
        raise PlanError(problems)
    problems = semantics.check(doc) + fleet.problems(doc)
    if problems:
        raise PlanError(problems)
    return build_plan(doc, source=path, root=root)


def validate_file(
    path: Path, *, root: Path, environ: Mapping[str, str] | None = None
) -> list[Problem]:
    """Every problem in one plan file (abstract files are checked against the schema only)."""
    env = environment(root, environ)
    try:
        doc, problems = load_document(path, env)
    except PlanError as exc:
        return exc.problems
    if doc.data.get("abstract") is True:
        broken = {p.path for p in problems}
        return problems + [p for p in schema.validate(doc, abstract=True) if p.path not in broken]
    try:
        load_plan(str(path), root=root, environ=env)
    except PlanError as exc:
        return exc.problems
    return []


def load_document(
    path: Path, env: Mapping[str, str], chain: tuple[Path, ...] = ()
) -> tuple[Document, list[Problem]]:
    """One file with its `extends` ancestors merged beneath it, ${VAR}s resolved.

    Missing variables are returned as problems (so every problem in a file is reported);
    unreadable files and circular extends raise PlanError.
    """
    doc = read_document(path)
    problems = _interpolate(doc, env)
    parent_ref = doc.data.pop("extends", None)
    if parent_ref is None:
        return doc, problems
    if not isinstance(parent_ref, str):
        return doc, [*problems, doc.problem(("extends",), "must be a path to a plan file")]
    parent_path = (path.parent / parent_ref).resolve()
    here = (*chain, path.resolve())
    if parent_path in here:
        names = " -> ".join(display_path(p) for p in (*here, parent_path))
        raise PlanError([doc.problem(("extends",), f"circular extends: {names}")])
    if not parent_path.is_file():
        raise PlanError([doc.problem(("extends",), f"extended plan not found: {parent_ref}")])
    parent, parent_problems = load_document(parent_path, env, here)
    parent.data.pop("abstract", None)
    return _merge(parent, doc), parent_problems + problems


def _merge(base: Document, top: Document) -> Document:
    data = _merge_data(base.data, top.data)
    return Document(
        data=data,
        origins={**base.origins, **top.origins},
        key_origins={**base.key_origins, **top.key_origins},
        interpolated=(base.interpolated - set(top.origins)) | top.interpolated,
        deferred={
            **{p: m for p, m in base.deferred.items() if p not in top.origins},
            **top.deferred,
        },
        references={
            **{p: r for p, r in base.references.items() if p not in top.origins},
            **top.references,
        },
    )


def _merge_data(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_data(merged[key], value)
        else:
            merged[key] = value
    return merged


def _interpolate(doc: Document, env: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    for path, value in list(walk(doc.data)):
        if not isinstance(value, str) or "$" not in value:
            continue
        missing: list[str] = []

        def substitute(match: re.Match[str], missing: list[str] = missing) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            missing.append(name)
            return match.group(0)

        result = _REFERENCE.sub(substitute, value)
        doc.references[path] = tuple(m[1] for m in _REFERENCE.finditer(value) if m[1])
        if missing and path in SECRET_PATHS:
            doc.interpolated.add(path)
            doc.deferred[path] = f"environment variable {missing[0]} is not set"
            _set(doc.data, path, "")
            continue
        if missing:
            problems += [
                doc.problem(
                    path,
                    f"environment variable {name} is not set (and ${{{name}}} has no :-default)",
                )
                for name in missing
            ]
            continue
        if "${" in value.replace("$${", "") and "${" in result:
            problems.append(
                doc.problem(
                    path, f"malformed reference in {value!r} (use ${{NAME}} or ${{NAME:-default}})"
                )
            )
            continue
        if result != value:
            doc.interpolated.add(path)
            _set(doc.data, path, _typed(result, path))
    return problems


def _typed(text: str, path: JsonPath) -> Any:
    """A substituted value takes the type the schema expects there, as YAML would spell it."""
    if schema.accepts_string(path):
        return text
    if text.strip().lower() in _BOOLEANS and _expects(path, "boolean"):
        return _BOOLEANS[text.strip().lower()]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    structured = _expects(path, "array") or _expects(path, "object")
    return value if isinstance(value, int | float | bool) or structured else text


def _expects(path: JsonPath, kind: str) -> bool:
    node = schema.subschema(path) or {}
    types = node.get("type")
    return kind == types or (isinstance(types, list) and kind in types)


def _set(data: dict[str, Any], path: JsonPath, value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = value


def _apply_environment(doc: Document, env: Mapping[str, str]) -> None:
    for name, path in ENV_OVERRIDES.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        if name == "DB_SLOW_QUERY_THRESHOLD" and raw.isdigit():
            raw = f"{raw}ms"  # the seed gives milliseconds
        _override(doc, path, raw, f"environment {name}")
        doc.references[path] = (*doc.references.get(path, ()), name)


def _apply_overrides(doc: Document, overrides: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    for dotted_key, raw in overrides.items():
        path = tuple(dotted_key.split("."))
        if schema.subschema(path) is None:
            problems.append(Problem(f"--set {dotted_key}", 0, 0, dotted_key, "unknown setting"))
            continue
        _override(doc, path, raw, f"--set {dotted_key}")
    return problems


def _override(doc: Document, path: JsonPath, raw: str, origin: str) -> None:
    _set(doc.data, path, _typed(raw, path))
    doc.deferred.pop(path, None)
    doc.origins[path] = Origin(origin, 0, 0)
    doc.interpolated.add(path)  # came from outside the file, so it is not a literal secret
