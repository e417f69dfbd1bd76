"""The plan's server settings checked with no server, against the settings catalogs dbops ships
(`dbops.settings_catalog`): unknown names (with the nearest known one), read-only settings, and
values PostgreSQL would refuse (type, unit, range, enum), each at its file:line:col."""

from __future__ import annotations

from typing import Any

from dbops import settings_catalog
from dbops.config.model import setting_text
from dbops.config.source import Document
from dbops.errors import Problem
from dbops.setting_values import SettingSpec
from dbops.setting_values import check as check_value


def check(doc: Document, settings: dict[str, Any]) -> list[Problem]:
    """Problems in the plan's `settings`. A name with a dot is an extension's (or a custom
    setting): no catalog knows it, the live plan checks it. The plan does not say its server's
    version: a name is known when any shipped major version has it, and a value is refused when
    every version that has it refuses it (the newest one's reason is given)."""
    problems = []
    for name, value in settings.items():
        if "." in name:
            continue
        path = ("settings", name)
        versions = settings_catalog.lookup(name)
        if not versions:
            near = settings_catalog.suggestion(name)
            hint = f"; did you mean {near!r}?" if near else ""
            problems.append(doc.problem(
                path, f"unknown setting {name!r} (not a setting of PostgreSQL "
                      f"{settings_catalog.versions_text()}){hint}", at_key=True))
            continue
        if all(known.context == "internal" for known in versions):
            problems.append(doc.problem(path, "is read-only (internal) and cannot be set"))
            continue
        refused = [_refusal(known.spec, setting_text(value)) for known in versions]
        if all(refused):
            problems.append(doc.problem(path, str(refused[0])))
    return problems


def _refusal(spec: SettingSpec, value: str) -> str | None:
    """Why PostgreSQL would refuse `value` for `spec` (None: it would take it)."""
    try:
        check_value(spec, value)
    except ValueError as exc:
        return str(exc).split(": ", 1)[1]
    return None
