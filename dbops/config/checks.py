"""Semantic checks that JSON Schema cannot express: sizes that must agree, the connection budget, secrets."""

from __future__ import annotations

from typing import Any

from dbops.config import setting_checks
from dbops.config.source import Document
from dbops.errors import Problem

DEVELOPMENT = "development"
SUPERUSER_RESERVED_DEFAULT = 3


def check(doc: Document) -> list[Problem]:
    """Problems in a schema-valid document whose defaults are filled in."""
    data = doc.data
    return [
        *_pool_sizes(doc, data["pool"]),
        *_budget(doc, data),
        *_secrets(doc, data),
        *_alerts(doc, data["health"]["alerts"]),
        *setting_checks.check(doc, data.get("settings", {})),
    ]


def _pool_sizes(doc: Document, pool: dict[str, Any]) -> list[Problem]:
    if pool["min_size"] <= pool["max_size"]:
        return []
    return [
        doc.problem(
            ("pool", "max_size"),
            f"must be >= pool.min_size ({pool['max_size']} < {pool['min_size']})",
        )
    ]


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _budget(doc: Document, data: dict[str, Any]) -> list[Problem]:
    pool = data["pool"]
    demand = pool["instances"] * pool["max_size"] + pool["reserve"]
    spelled = (
        f"{pool['instances']} instances × {pool['max_size']} + {pool['reserve']} reserve = {demand}"
    )
    problems: list[Problem] = []
    role = data.get("roles", {}).get(pool.get("role") or "")
    limit = role["connection_limit"] if role and role["connection_limit"] >= 0 else None
    if limit is not None and demand > limit:
        problems.append(
            doc.problem(
                ("pool", "max_size"),
                f"connection budget: {spelled} exceeds roles.{pool['role']}.connection_limit ({limit})",
            )
        )
    settings = data.get("settings", {})
    max_connections = _as_int(settings.get("max_connections"))
    if max_connections is None:
        return problems  # the live server's max_connections is checked by the planner
    reserved = (
        _as_int(settings.get("superuser_reserved_connections", SUPERUSER_RESERVED_DEFAULT)) or 0
    ) + (_as_int(settings.get("reserved_connections", 0)) or 0)
    available = max_connections - reserved
    if limit is not None and limit > available:
        problems.append(
            doc.problem(
                ("roles", pool["role"], "connection_limit"),
                f"connection budget: {limit} exceeds max_connections {max_connections} "
                f"minus {reserved} reserved slots ({available})",
            )
        )
    elif limit is None and demand > available:
        problems.append(
            doc.problem(
                ("pool", "max_size"),
                f"connection budget: {spelled} exceeds max_connections {max_connections} "
                f"minus {reserved} reserved slots ({available})",
            )
        )
    return problems


def _secrets(doc: Document, data: dict[str, Any]) -> list[Problem]:
    path = ("database", "password")
    if data["environment"] == DEVELOPMENT or not data["database"].get("password"):
        return []
    if path in doc.interpolated:
        return []
    return [
        doc.problem(
            path,
            "a literal password is refused outside development: "
            "reference it instead, e.g. ${DB_PASSWORD}",
        )
    ]


def _alerts(doc: Document, alerts: list[dict[str, Any]]) -> list[Problem]:
    needs = {"webhook": "url", "command": "command"}
    return [
        doc.problem(("health", "alerts", n), f"a {a['type']} alert needs '{needs[a['type']]}'")
        for n, a in enumerate(alerts)
        if a["type"] in needs and not a.get(needs[a["type"]])
    ]
