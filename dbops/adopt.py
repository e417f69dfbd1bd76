"""A running server described as a plan: what `dbops import ENV --from-database` writes.

Pure: it turns the facts `inspect.read_facts` read into the text of plans/ENV.yaml, a plan that
`dbops plan ENV` finds in step with the server it came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from dbops.config.model import Role
from dbops.config.profiles import PROFILES
from dbops.config.schema import plan_schema
from dbops.connect import Endpoint
from dbops.inspect import LiveRole, LiveSetting, ServerFacts
from dbops.planner import connection_capacity
from dbops.scaffold import render
from dbops.setting_values import same

# Where this server keeps its files and listens, and what initdb chose for its locale: facts of
# one host that a plan copied to another would break.
HOST_SETTINGS = frozenset({
    "port", "listen_addresses", "unix_socket_directories", "unix_socket_group",
    "unix_socket_permissions", "data_directory", "config_file", "hba_file", "ident_file",
    "external_pid_file", "log_directory", "log_filename", "ssl_cert_file", "ssl_key_file",
    "ssl_ca_file", "ssl_crl_file", "ssl_crl_dir",
})
_HOST_PREFIXES = ("lc_", "primary_")  # the locale; a replica's connection to its primary

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")  # the plan schema's role name pattern


@dataclass(frozen=True)
class ImportedSetting:
    name: str
    value: str
    comment: str


@dataclass(frozen=True)
class PoolSizing:
    """The pool that fits the budget: instances * max_size + reserve <= role limit <=
    max_connections - reserved."""

    profile: str
    role: str | None
    min_size: int
    max_size: int
    reserve: int
    explanation: str


def imported_settings(facts: ServerFacts) -> tuple[list[ImportedSetting], list[ImportedSetting]]:
    """Settings the configuration files (ALTER SYSTEM included) set away from their defaults:
    those a plan can name, and those it cannot (mixed-case names such as TimeZone)."""
    found: list[ImportedSetting] = []
    unnamed: list[ImportedSetting] = []
    for name, live in sorted(facts.server.settings.items()):
        if (live.source != "configuration file" or live.context == "internal"
                or name in HOST_SETTINGS or name.startswith(_HOST_PREFIXES)
                or _is_default(live)):
            continue
        origin = _origin(live, facts.server.auto_conf_readable)
        setting = ImportedSetting(name, live.shown, origin)
        (found if _IDENTIFIER.match(name) else unnamed).append(setting)
    return found, unnamed


def _is_default(live: LiveSetting) -> bool:
    try:
        return same(live.spec, live.setting, live.boot_val)
    except ValueError:
        return live.setting == live.boot_val


def _origin(live: LiveSetting, readable: bool) -> str:
    if not readable:
        return "from a configuration file"
    if live.written is not None and _is_same(live, live.written):
        origin = "ALTER SYSTEM (postgresql.auto.conf)"
    else:
        origin = "postgresql.conf"
    if live.pending_restart and live.configured is not None:
        origin += f"; the files say {live.configured}, waiting for a restart"
    return origin


def _is_same(live: LiveSetting, value: str) -> bool:
    try:
        return same(live.spec, live.setting, value)
    except ValueError:
        return False


def imported_roles(facts: ServerFacts) -> tuple[list[Role], list[str]]:
    """Roles that log in or have a connection limit, and the superusers left out."""
    roles, superusers = [], []
    for role in sorted(facts.roles.values(), key=lambda r: r.name):
        if role.superuser:
            superusers.append(role.name)
        elif (role.login or role.connection_limit >= 0) and _IDENTIFIER.match(role.name):
            roles.append(Role(role.name, role.login, role.connection_limit,
                                      dict(sorted(role.settings.items()))))
    return roles, superusers


def pool_sizing(facts: ServerFacts, profile: str) -> PoolSizing:
    """The profile's pool, shrunk to fit the server's connections and the application role's
    limit (the login role with the largest limit; none when no role has one)."""
    settings = facts.server.settings

    def number(name: str) -> int:
        live = settings.get(name)
        return int(live.setting) if live is not None else 0

    max_connections, reserved = connection_capacity(number)
    available = max_connections - reserved
    candidates = [r for r in facts.roles.values()
                  if r.login and not r.superuser and r.connection_limit > 0
                  and _IDENTIFIER.match(r.name)]
    role: LiveRole | None = max(candidates, key=lambda r: (r.connection_limit, r.name),
                                default=None)
    budget = available if role is None else min(role.connection_limit, available)
    defaults = PROFILES[profile]
    reserve = max(0, min(_default_reserve(), budget - 1))
    max_size = max(1, min(int(defaults["max_size"]), budget - reserve))
    min_size = min(int(defaults["min_size"]), max_size)
    where = f"max_connections {max_connections} minus {reserved} reserved ({available})"
    limit = f" ≤ role {role.name}'s limit {role.connection_limit}" if role else ""
    explanation = f"1 × {max_size} + {reserve} reserve = {max_size + reserve}{limit} ≤ {where}"
    return PoolSizing(profile, role.name if role else None, min_size, max_size, reserve,
                      explanation)


def _default_reserve() -> int:
    """The schema's default for pool.reserve: one number, kept where the plan format is."""
    return int(plan_schema()["properties"]["pool"]["properties"]["reserve"]["default"])


def scalar(value: Any) -> str:
    """`value` as a YAML scalar that reads back as the same string (quoted only when needed)."""
    text = str(value)
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        loaded = None
    number = isinstance(loaded, int | float) and not isinstance(loaded, bool)
    plain = (loaded == text or (number and str(loaded) == text)) and "#" not in text
    return text if plain and text else json.dumps(text, ensure_ascii=False)


def describe(facts: ServerFacts, ep: Endpoint, environment: str, profile: str) -> str:
    """plans/<environment>.yaml for the server `facts` describe, reached at `ep`."""
    roles, superusers = imported_roles(facts)
    settings, unnamed = imported_settings(facts)
    version = facts.server.settings.get("server_version")
    return render(
        "import-plan.yaml.j2",
        environment=environment,
        version=version.setting if version else str(facts.server_version),
        ep=ep,
        settings=settings,
        unnamed_settings=unnamed,
        roles=roles,
        superusers=superusers,
        replicas=facts.replication,
        pool=pool_sizing(facts, profile),
        scalar=scalar,
    )
