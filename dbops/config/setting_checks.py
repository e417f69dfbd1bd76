"""The plan's server settings checked with no server, against the settings catalogs dbops ships
(`dbops.settings_catalog`): unknown names (with the nearest known one), read-only settings, and
values PostgreSQL would refuse (type, unit, range, enum), each at its file:line:col."""

from __future__ import annotations

from typing import Any

from dbops import settings_catalog
from dbops.config.model import setting_text
from dbops.config.source import Document
from dbops.errors import Problem
from dbops.setting_values import check as check_value


def check(doc: Document, settings: dict[str, Any]) -> list[Problem]:
    """Problems in the plan's `settings`. A name with a dot is an extension's (or a custom
    setting): no catalog knows it, the live plan checks it. Without a server version, a name is
    known when any shipped major version has it, and its value is checked against the newest
    that does."""
    problems = []
    for name, value in settings.items():
        if "." in name:
            continue
        path = ("settings", name)
        known = settings_catalog.lookup(name)
        if known is None:
            near = settings_catalog.suggestion(name)
            hint = f"; did you mean {near!r}?" if near else ""
            problems.append(doc.problem(
                path, f"unknown setting {name!r} (not a setting of PostgreSQL "
                      f"{settings_catalog.versions_text()}){hint}", at_key=True))
            continue
        if known.context == "internal":
            problems.append(doc.problem(path, "is read-only (internal) and cannot be set"))
            continue
        try:
            check_value(known.spec, setting_text(value))
        except ValueError as exc:
            problems.append(doc.problem(path, str(exc).split(": ", 1)[1]))
    return problems
