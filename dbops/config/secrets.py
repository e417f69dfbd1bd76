"""Which environment variables hold secrets. A child process dbops starts never receives one, and
a plan cannot declare one for it."""

from __future__ import annotations

from dbops.config.source import Document, JsonPath

HEALTH_TOKEN = "DBOPS_HEALTH_TOKEN"
"""The bearer token of the health endpoints (dbops/health/exposure.py)."""
ALWAYS_SECRET = frozenset({"DB_PASSWORD", HEALTH_TOKEN})
"""Secrets whatever a plan says: the seed's password variable and the health endpoints' token."""


def is_secret_path(path: JsonPath) -> bool:
    """The plan's values that are Secrets: the database password and webhook URLs."""
    return path == ("database", "password") or (
        len(path) == 4 and path[:2] == ("health", "alerts") and path[3] == "url")


def secret_variables(doc: Document) -> frozenset[str]:
    """The variables that are always secret and those the plan reads a secret value from."""
    referenced = {name for path, names in doc.references.items() if is_secret_path(path)
                  for name in names}
    return ALWAYS_SECRET | referenced


def is_secret_variable(name: str, secrets: frozenset[str]) -> bool:
    """Whether `name` is among `secrets` or a libpq variable (PG*: PGPASSWORD, PGSERVICE, ...)."""
    return name in secrets or name.upper().startswith("PG")
