"""Semantic checks that JSON Schema cannot express: sizes that must agree, the connection budget, secrets."""

from __future__ import annotations

from typing import Any

from dbops.config import setting_checks
from dbops.config.secrets import is_secret_variable, secret_variables
from dbops.config.source import Document, JsonPath
from dbops.errors import Problem

DEVELOPMENT = "development"
SUPERUSER_RESERVED_DEFAULT = 3


def check(doc: Document) -> list[Problem]:
    """Problems in a schema-valid document whose defaults are filled in."""
    data = doc.data
    return [
        *_pool_sizes(doc, data["pool"]),
        *_budget(doc, data),
        *_alerts(doc, data),
        *_backup_engine(doc, data.get("backup")),
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


def literal_secrets(doc: Document) -> list[Problem]:
    """A password written literally in the plan files outside development. Judged on the files
    alone, before the environment or --set can touch the document: a DB_PASSWORD in the
    environment (always there in CI) does not make a literal in the file acceptable."""
    path = ("database", "password")
    data = doc.data
    database = data.get("database")
    if data.get("environment") == DEVELOPMENT or not isinstance(database, dict):
        return []
    if not database.get("password") or path in doc.interpolated or path in doc.deferred:
        return []
    return [
        doc.problem(
            path,
            "a literal password is refused outside development: "
            "reference it instead, e.g. ${DB_PASSWORD}",
        )
    ]


def _alerts(doc: Document, data: dict[str, Any]) -> list[Problem]:
    needs = {"webhook": "url", "command": "command"}
    secrets = secret_variables(doc)
    problems: list[Problem] = []
    for n, a in enumerate(data["health"]["alerts"]):
        path = ("health", "alerts", n)
        if a["type"] in needs and not a.get(needs[a["type"]]):
            problems.append(doc.problem(path, f"a {a['type']} alert needs '{needs[a['type']]}'"))
        for m, name in enumerate(a.get("env", ())):
            if is_secret_variable(name, secrets):
                problems.append(doc.problem(
                    (*path, "env", m), f"{name} holds a secret: it is never passed to a command"))
        if a["type"] == "webhook" and a.get("url"):
            problems += _webhook_url(doc, (*path, "url"), a, data["environment"])
    return problems


def _webhook_url(doc: Document, path: JsonPath, alert: dict[str, Any],
                 environment: str) -> list[Problem]:
    """The URL's scheme only: the URL itself is a secret and never goes into a message."""
    scheme = str(alert["url"]).partition("://")[0].lower() if "://" in alert["url"] else ""
    if scheme not in ("http", "https"):
        return [doc.problem(path, "a webhook URL starts with https:// (or http://)")]
    if scheme == "http" and environment != DEVELOPMENT and not alert.get("allow_http"):
        return [doc.problem(path, "a webhook outside development needs https:// "
                                  "(or allow_http: true on this alert)")]
    return []


def _backup_engine(doc: Document, backup: dict[str, Any] | None) -> list[Problem]:
    """The pgbackrest engine is declared in its `pgbackrest` block; a block for the engine not
    chosen is a mistake worth naming."""
    if backup is None:
        return []
    engine = backup["engine"]
    if engine == "pgbackrest" and "pgbackrest" not in backup:
        return [doc.problem(("backup", "engine"), "engine pgbackrest needs a 'pgbackrest' block "
                            "(pgbackrest: {repository: ...})")]
    if engine == "pgbackrest":
        owned = sorted(set(doc.data.get("settings", {})) & {"archive_mode", "archive_command",
                                                              "archive_timeout"})
        return [doc.problem(("settings", name), "engine pgbackrest sets it (archive-push into "
                            "the stanza); remove it from settings (archive_timeout: "
                            "backup.pgbackrest.archive_timeout)", at_key=True) for name in owned]
    if engine == "pg_dump" and "pgbackrest" in backup:
        return [doc.problem(("backup", "pgbackrest"), "a 'pgbackrest' block is read only with "
                            "engine: pgbackrest (set backup.engine, or remove the block)",
                            at_key=True)]
    return []
