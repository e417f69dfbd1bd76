"""What the connecting role may do, against what one plan asks of it: the privilege model behind
`dbops doctor`, plan's notes and apply's refusal. Probing reads the live servers (read-only);
judging is pure, a finding per need, each with the statement that would meet it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from dbops.config.model import Plan
from dbops.connect import connection
from dbops.errors import DbopsError

# The role the printed statements are for when the connecting role is a superuser: the dedicated
# role the README's least-privilege setup creates.
DEDICATED_ROLE = "dbops"
PARAMETER_GRANTS = 150000  # GRANT ALTER SYSTEM ON PARAMETER exists from PostgreSQL 15
SET_OPTION = 160000  # from PostgreSQL 16 SET ROLE needs the membership's SET option
_BARE = re.compile(r"[a-z_][a-z0-9_$]*")

_ROLE = """
    SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
           current_setting('server_version_num')::int, current_database(),
           has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE'),
           pg_has_role('pg_monitor', 'USAGE'), pg_has_role('pg_read_all_settings', 'USAGE'),
           (SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'dbops'),
           has_database_privilege(current_database(), 'CREATE'),
           (SELECT array_agg(word) FROM pg_get_keywords() WHERE catcode <> 'U')
    FROM pg_roles r WHERE r.rolname = current_user"""

_PARAMETERS = "SELECT name, has_parameter_privilege(name, 'ALTER SYSTEM') FROM unnest(%s::text[]) name"

# Relations pg_dump could not read: no SELECT, or in a schema without USAGE (the first few).
_UNREADABLE = """
    SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'S', 'm', 'v', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
      AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))
    ORDER BY 1 LIMIT 5"""


@dataclass(frozen=True)
class Facts:
    """What the connecting role holds, as the servers say (the probe's result)."""

    role: str
    superuser: bool
    server_version: int
    database: str
    createrole: bool = False
    createdb: bool = False
    reload: bool = False
    monitor: bool = False
    read_settings: bool = False
    ledger_schema: bool | None = None  # may use schema dbops; None: it does not exist yet
    create_on_database: bool = False
    alter_system: dict[str, bool] = field(default_factory=dict)  # per declared setting
    owner_role: bool | None = None  # may SET ROLE to migrations.role; None: no such role
    unreadable: tuple[str, ...] = ()
    replicas: dict[str, str] = field(default_factory=dict)  # name -> "" reachable, else why not
    # The words this server does not take as a bare name (reserved, column-name and type or
    # function-name keywords): a statement quotes a name among them.
    keywords: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Finding:
    """One thing the plan asks of the connecting role, and whether the role can do it."""

    subject: str  # what in the plan asks for it: settings.work_mem, roles, backup, ...
    need: str  # what it needs: "ALTER SYSTEM on work_mem"
    ok: bool
    grant: str = ""  # the statement that meets it (for the role doctor prints them for)
    blocking: bool = True  # a missing non-blocking need is advice, not a refusal
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.subject}: {self.need}" + (f" ({self.detail})" if self.detail else "")
        return text + (f": {self.grant}" if self.grant and not self.ok else "")


def probe(plan: Plan, *, replicas: bool = True, command: str = "doctor") -> Facts:
    """Read, in one read-only session on the primary, what the plan's role holds; with
    `replicas`, also try each replica (plan and apply reach them through inspect anyway)."""
    with connection(plan, command=command, autocommit=True) as conn:
        conn.read_only = True
        facts = _read(conn, plan)
    if not replicas:
        return facts
    reach = {}
    for replica in plan.database.replicas:
        try:
            with connection(plan, command=command, replica=replica, autocommit=True) as conn:
                conn.execute("SELECT 1")
            reach[replica.name] = ""
        except DbopsError as exc:
            reach[replica.name] = str(exc)
    return replace(facts, replicas=reach)


def _read(conn: psycopg.Connection[Any], plan: Plan) -> Facts:
    row = conn.execute(_ROLE).fetchone()
    if row is None:  # a role dropped while connected
        raise DbopsError("the connecting role is not in pg_roles")
    (role, superuser, createrole, createdb, version, database, reload, monitor, read_settings,
     ledger_schema, create_on_database, keywords) = row
    names = sorted(plan.settings)
    if superuser or not names:
        alter_system = dict.fromkeys(names, bool(superuser))
    elif version >= PARAMETER_GRANTS:
        alter_system = {name: bool(ok) for name, ok in conn.execute(_PARAMETERS, (names,))}
    else:
        alter_system = dict.fromkeys(names, False)
    owner_role = None
    if plan.migrations.role is not None:
        found = conn.execute("SELECT to_regrole(%s) IS NOT NULL",
                             (sql.Identifier(plan.migrations.role).as_string(None),)).fetchone()
        if found and found[0]:
            option = "SET" if version >= SET_OPTION else "MEMBER"
            member = conn.execute("SELECT pg_has_role(%s, %s)",
                                  (plan.migrations.role, option)).fetchone()
            owner_role = bool(member and member[0])
    unreadable = tuple(r[0] for r in conn.execute(_UNREADABLE)) if plan.backup else ()
    return Facts(role=str(role), superuser=bool(superuser), server_version=int(version),
                 database=str(database), createrole=bool(createrole), createdb=bool(createdb),
                 reload=bool(reload), monitor=bool(monitor), read_settings=bool(read_settings),
                 ledger_schema=ledger_schema, create_on_database=bool(create_on_database),
                 alter_system=alter_system, owner_role=owner_role, unreadable=unreadable,
                 keywords=frozenset(keywords or ()))


def judge(plan: Plan, facts: Facts) -> tuple[Finding, ...]:
    """Every need of the plan, met or not. Statements name the connecting role, or the dedicated
    role `dbops` when the connecting role is a superuser (what it would take to stop being one)."""
    to = _ident(DEDICATED_ROLE if facts.superuser else facts.role, facts.keywords)
    su = facts.superuser
    findings = [_ledger(facts, to)]
    findings.append(Finding(
        "drift", "read the configuration files (pg_file_settings: ALTER SYSTEM entries)",
        su or facts.read_settings or facts.monitor,
        f"GRANT {'pg_monitor' if plan.health.enabled else 'pg_read_all_settings'} TO {to};"))
    for name in sorted(plan.settings):
        can = facts.alter_system.get(name, su)
        if facts.server_version >= PARAMETER_GRANTS:
            findings.append(Finding(f"settings.{name}", f"ALTER SYSTEM on {name}", can,
                                    f"GRANT ALTER SYSTEM ON PARAMETER {_parameter(name, facts.keywords)} TO {to};"))
        else:
            findings.append(Finding(f"settings.{name}", f"ALTER SYSTEM on {name}", can,
                                    detail="before PostgreSQL 15 only a superuser may"))
    if plan.settings:
        findings.append(Finding(
            "settings", "EXECUTE on pg_reload_conf() (settings take effect)", su or facts.reload,
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO {to};"))
    if plan.roles:
        findings.append(Finding("roles", "CREATEROLE (create and alter the declared roles)",
                                su or facts.createrole, f"ALTER ROLE {to} CREATEROLE;"))
    findings += _migrations(plan, facts, to)
    if plan.health.enabled:
        findings.append(Finding("health", "pg_monitor (health checks and gates)",
                                su or facts.monitor, f"GRANT pg_monitor TO {to};"))
    findings += _backups(plan, facts, to)
    findings += [Finding(f"database.replicas.{name}", "reach the replica", not why,
                         detail=why) for name, why in sorted(facts.replicas.items())]
    return tuple(findings)


def _ledger(facts: Facts, to: str) -> Finding:
    need = "schema dbops (migration history, journal, snapshot, audit)"
    if facts.ledger_schema is None:
        return Finding("dbops", need + ": create it", facts.superuser or facts.create_on_database,
                       f"GRANT CREATE ON DATABASE {_ident(facts.database, facts.keywords)} TO {to};")
    return Finding("dbops", need, facts.superuser or facts.ledger_schema,
                   f"ALTER SCHEMA dbops OWNER TO {to};")


def _migrations(plan: Plan, facts: Facts, to: str) -> list[Finding]:
    owner = plan.migrations.role
    if owner is None:
        if not facts.superuser:
            return []
        return [Finding("migrations.role", "objects owned by the application's owner role",
                        False, blocking=False,
                        detail=f"migrations run as {facts.role}, a superuser, so new objects "
                        "belong to it; set migrations.role to the application's owner role")]
    if facts.owner_role is None:
        return [Finding("migrations.role", f"SET ROLE {owner}", False,
                        detail=f"role {owner} does not exist")]
    return [Finding("migrations.role", f"SET ROLE {owner} (membership in the owner role)",
                    facts.owner_role, f"GRANT {_ident(owner, facts.keywords)} TO {to};")]


def _backups(plan: Plan, facts: Facts, to: str) -> list[Finding]:
    policy = plan.backup
    findings = []
    if policy is not None:
        shown = ", ".join(facts.unreadable)
        findings.append(Finding(
            "backup", "read every table and sequence (pg_dump)", not facts.unreadable,
            f"GRANT pg_read_all_data TO {to};",
            detail=f"cannot read {shown}{', ...' if len(facts.unreadable) >= 5 else ''}"
            if facts.unreadable else ""))
        if policy.restore_test != "never":
            findings.append(Finding("backup.verify.restore_test",
                                    "CREATEDB (restore tests into a scratch database)",
                                    facts.superuser or facts.createdb, f"ALTER ROLE {to} CREATEDB;"))
    if plan.migrations.rehearse == "always":
        findings.append(Finding("migrations.rehearse",
                                "CREATEDB (rehearsals on a scratch database)",
                                facts.superuser or facts.createdb, f"ALTER ROLE {to} CREATEDB;"))
    return findings


def missing(findings: Sequence[Finding], *, blocking: bool = True) -> list[Finding]:
    """The needs not met (only those that refuse an apply, unless `blocking` is False)."""
    return [f for f in findings if not f.ok and (f.blocking or not blocking)]


def statements(findings: Sequence[Finding]) -> list[str]:
    """The statements that meet these findings, each once, in order."""
    return list(dict.fromkeys(f.grant for f in findings if f.grant))


def _ident(name: str, keywords: frozenset[str]) -> str:
    """A name as a person would type it: bare when PostgreSQL reads it back unchanged."""
    if _BARE.fullmatch(name) and name not in keywords:
        return name
    return sql.Identifier(name).as_string(None)


def _parameter(name: str, keywords: frozenset[str]) -> str:
    return ".".join(_ident(part, keywords) for part in name.split("."))
