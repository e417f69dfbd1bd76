"""The settings of each PostgreSQL major version, shipped with dbops (`dbops/data/settings/
pg<major>.json`, written from pg_settings by `bin/settings-catalog`): what `validate` checks a
plan's settings against with no server. Values are read by `setting_values`, the one model of
setting values. Pure apart from reading the packaged files.
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from dbops.setting_values import SettingSpec


@dataclass(frozen=True)
class CatalogSetting:
    """One setting as a server of this major version describes it."""

    spec: SettingSpec
    context: str  # internal, postmaster (restart), sighup, superuser, user, ...

    @property
    def needs_restart(self) -> bool:
        return self.context == "postmaster"


@dataclass(frozen=True)
class SettingsCatalog:
    major: int
    server_version: str  # the server it was generated from
    settings: dict[str, CatalogSetting]


@functools.cache
def majors() -> tuple[int, ...]:
    """The major versions whose catalog dbops ships, oldest first."""
    folder = resources.files("dbops") / "data" / "settings"
    return tuple(sorted(int(entry.name[2:-5]) for entry in folder.iterdir()
                        if entry.name.startswith("pg") and entry.name.endswith(".json")))


@functools.cache
def load(major: int) -> SettingsCatalog:
    """The shipped catalog of `major` (it must be one of `majors()`)."""
    text = (resources.files("dbops") / "data" / "settings" / f"pg{major}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return SettingsCatalog(major, str(data["server_version"]), {
        name: CatalogSetting(SettingSpec(name, s["type"], s["unit"], s["min"], s["max"],
                                         tuple(s["enumvals"])), s["context"])
        for name, s in data["settings"].items()})


def for_version(major: int) -> tuple[SettingsCatalog, str | None]:
    """The catalog of `major`, else the nearest shipped one (the newer on a tie) with a note
    saying so."""
    shipped = majors()
    if major in shipped:
        return load(major), None
    nearest = min(shipped, key=lambda m: (abs(m - major), -m))
    return load(nearest), (f"no settings catalog of PostgreSQL {major} is shipped; checked "
                           f"against PostgreSQL {nearest}'s")


def lookup(name: str) -> list[CatalogSetting]:
    """The setting in every shipped catalog that has it, newest first (empty: none has it)."""
    return [found for major in reversed(majors())
            if (found := load(major).settings.get(name)) is not None]


def suggestion(name: str) -> str | None:
    """The known setting name nearest to `name`, if one is near enough."""
    names = sorted({n for major in majors() for n in load(major).settings})
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def versions_text() -> str:
    return ", ".join(str(m) for m in majors())
