"""The project root, found like git finds its repository, and its `dbops.toml`.

The root is `DBOPS_PROJECT_DIR` (or `-C DIR`) when set, else the nearest directory at or above
the current one holding a `dbops.toml`, failing that one holding a `plans/` directory, failing
that the current directory. Every relative path a plan names resolves against it.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dbops.config.source import display_path, read_text
from dbops.errors import PlanError, Problem, UsageError

CONFIG_FILE = "dbops.toml"
PLANS_DIR = "plans"
ROOT_VARIABLE = "DBOPS_PROJECT_DIR"
MAX_CONFIG_FILE = 64 * 2**10

# The keys dbops.toml may set, and what each one is.
_KEYS = {
    "plans": "the plans directory, relative to the project root",
    "default_environment": "the environment commands use when none is named",
}


@dataclass(frozen=True)
class Project:
    """One project: its root directory and the defaults its dbops.toml sets."""

    root: Path
    plans: Path
    default_environment: str | None = None

    @classmethod
    def at(cls, root: Path) -> Project:
        """The project rooted at `root`, its dbops.toml (if any) read and checked."""
        config = root / CONFIG_FILE
        values = _read_config(config) if config.is_file() else {}
        return cls(
            root=root,
            plans=root / values.get("plans", PLANS_DIR),
            default_environment=values.get("default_environment"),
        )


def find_root(
    start: Path | None = None, *, given: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The project root: `given` (-C), else $DBOPS_PROJECT_DIR, else the nearest directory at or
    above `start` (the current directory) with a dbops.toml, then with a plans/ directory."""
    env = os.environ if environ is None else environ
    chosen = given if given is not None else Path(env[ROOT_VARIABLE]) if env.get(ROOT_VARIABLE) else None
    if chosen is not None:
        if not chosen.is_dir():
            source = "-C" if given is not None else ROOT_VARIABLE
            raise UsageError(f"project directory not found: {chosen} (from {source})")
        return chosen.absolute()
    here = (Path.cwd() if start is None else start).absolute()
    for marker in (CONFIG_FILE, PLANS_DIR):
        for folder in (here, *here.parents):
            if (folder / marker).exists():
                return folder
    return here


def find_project(
    start: Path | None = None, *, given: Path | None = None, environ: Mapping[str, str] | None = None
) -> Project:
    return Project.at(find_root(start, given=given, environ=environ))


def _read_config(path: Path) -> dict[str, str]:
    name = display_path(path)
    text = read_text(path, "project configuration", MAX_CONFIG_FILE)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError([Problem(name, 0, 0, "", f"not valid TOML: {exc}")]) from None
    for key, value in data.items():
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise PlanError([Problem(name, 0, 0, key, f"unknown key (known: {known})")])
        if not isinstance(value, str) or not value:
            raise PlanError([Problem(name, 0, 0, key, f"must be a non-empty string: {_KEYS[key]}")])
    return data
