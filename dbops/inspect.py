"""Plan -> LiveState: what the live servers look like, read in one read-only transaction per server
with a handful of queries. The facts side of dbops: never writes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import psycopg

from dbops import ledger
from dbops import migration_history as history
from dbops.config.model import Plan, Role
from dbops.config.source import display_path
from dbops.connect import Endpoint, endpoint, open_connection
from dbops.health.probe import Stream, parse_lsn
from dbops.locks import APPLY_LOCK, lock_holder
from dbops.migrate.expand import state as expansion_state
from dbops.migrate.expand.state import Expansion
from dbops.schema_facts import schema_fingerprint
from dbops.setting_values import SettingSpec, display

if TYPE_CHECKING:
    from dbops.backup.manifest import Manifest
    from dbops.backup.pgbackrest import LiveSetup

_SETTINGS = """
    SELECT name, setting, unit, vartype, context, source, pending_restart, min_val, max_val,
           coalesce(enumvals, '{}'), boot_val, reset_val
    FROM pg_settings"""

# The configuration files' values, ALTER SYSTEM's postgresql.auto.conf last; readable by
# superusers and pg_read_all_settings only.
_FILE_SETTINGS = """
    SELECT name, setting, sourcefile LIKE '%postgresql.auto.conf' FROM pg_file_settings
    WHERE error IS NULL ORDER BY seqno"""

# Where a session's value masks the server's: the planner compares with the server's.
SESSION_SOURCES = frozenset({"client", "session", "user", "database"})

_ROLES = """
    SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, coalesce(s.setconfig, '{}'),
           (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname),
           r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls
    FROM pg_roles r LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
    WHERE r.rolname !~ '^pg_'"""

_REPLICATION = """
    SELECT application_name, client_addr::text, state, replay_lsn::text,
           extract(epoch FROM replay_lag)::float8,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
    FROM pg_stat_replication ORDER BY application_name"""




@dataclass(frozen=True)
class LiveSetting:
    spec: SettingSpec
    setting: str  # the running value, in the setting's unit
    context: str
    source: str
    pending_restart: bool
    written: str | None  # what ALTER SYSTEM left in postgresql.auto.conf (None: nothing, or unreadable)
    configured: str | None  # the configuration files' value (auto.conf included)
    boot_val: str

    @property
    def server_value(self) -> str:
        """The server-wide value, not one a session, role or database setting put on top."""
        if self.source not in SESSION_SOURCES:
            return self.setting
        return self.configured if self.configured is not None else self.boot_val

    @property
    def shown(self) -> str:
        return display(self.spec, self.server_value)


@dataclass(frozen=True)
class Server:
    """One PostgreSQL server of the plan: the primary or a replica."""

    name: str
    endpoint: str
    in_recovery: bool
    settings: dict[str, LiveSetting]
    auto_conf_readable: bool


# The role attributes that give power on their own, login included.
ROLE_ATTRIBUTES = ("superuser", "login", "createrole", "createdb", "replication", "bypassrls")


@dataclass(frozen=True)
class LiveRole(Role):
    """A role as the server has it: what a plan's Role says (name, login, connection limit,
    settings), its open sessions, and the attributes drift watches."""

    sessions: int
    superuser: bool = False
    createrole: bool = False
    createdb: bool = False
    replication: bool = False
    bypassrls: bool = False

    @property
    def attributes(self) -> dict[str, bool]:
        """LOGIN and the privileges a role can hold beyond what it is granted: what drift watches."""
        return {key: bool(getattr(self, key)) for key in ROLE_ATTRIBUTES}

    def snapshot(self) -> dict[str, Any]:
        """The role in the last-applied snapshot's form (Role.snapshot), with the attributes
        drift watches besides."""
        return {**super().snapshot(), **self.attributes}


@dataclass(frozen=True)
class LiveState:
    database: str
    server_version: int
    servers: dict[str, Server]
    roles: dict[str, LiveRole]
    applied: tuple[history.AppliedMigration, ...]
    journal: tuple[history.JournalEntry, ...]
    replication: tuple[Stream, ...]
    schema: dict[str, str]
    snapshot: ledger.Snapshot | None
    current_user: str = ""
    notes: tuple[str, ...] = field(default=())
    backups: tuple[Manifest, ...] = ()  # the backup catalog, oldest first
    backup_source: str = ""  # where `backups` were read: the directory, or the database's copy
    unfinished: tuple[ledger.Unfinished, ...] = ()  # applies that died or failed half-way
    # A migration run whose changes are not yet credited to the snapshot, and whether a runner
    # holds the lock (it may still be going) or not (it died).
    open_credit: ledger.OpenCredit | None = None
    runner_busy: bool = False
    pgbackrest: LiveSetup | None = None  # the pgbackrest engine's setup, when the plan has it
    expansions: tuple[Expansion, ...] = ()  # expand/contract migrations not yet completed

    @property
    def primary(self) -> Server:
        return self.servers["primary"]


def inspect(plan: Plan, *, command: str = "plan", fingerprint: bool = True) -> LiveState:
    """Read the primary (and each replica's settings) without writing anything. The schema
    fingerprint (drift and apply need it; a plan does not) is the costliest query: optional."""
    primary = endpoint(plan)
    with _read_only(primary, command) as conn:
        state = _read_primary(conn, plan, primary, fingerprint=fingerprint)
        backups, backup_source = _read_backups(conn, plan)
        pgbackrest = _read_pgbackrest(conn, plan)
    servers = dict(state.servers)
    for replica in plan.database.replicas:
        ep = endpoint(plan, replica)
        with _read_only(ep, command) as conn:
            servers[replica.name] = _read_server(conn, replica.name, ep)
    return replace(state, servers=servers, backups=backups, backup_source=backup_source,
                   pgbackrest=pgbackrest)


def _read_pgbackrest(conn: psycopg.Connection[Any], plan: Plan) -> LiveSetup | None:
    if plan.backup is None or plan.backup.engine != "pgbackrest" or not plan.backup.pgbackrest:
        return None
    # lazy: the backup readers only for a plan with a backup policy (`dbops plan` stays light)
    from dbops.backup.pgbackrest import read_setup
    from dbops.backup.pitr import newest_full, recorded

    setup = read_setup(conn, plan.backup.pgbackrest)
    return replace(setup, newest_full=newest_full(recorded(conn, plan.environment)))


def _read_backups(conn: psycopg.Connection[Any], plan: Plan) -> tuple[tuple[Manifest, ...], str]:
    """The backup catalog and where it was read: the policy's directory when it can be reached
    from here, else the copy recorded in the database (a CI runner has no backup directory)."""
    if plan.backup is None:
        return (), ""
    # lazy: the backup readers only for a plan with a backup policy (`dbops plan` stays light)
    from dbops.backup import record
    from dbops.backup.manifest import read_manifests

    directory = plan.backup.directory
    if directory.is_dir():
        return tuple(read_manifests(directory)), f"the backup directory {display_path(directory)}"
    recorded = record.read(conn, plan.environment)
    return tuple(recorded or ()), (f"the catalog recorded in the database (dbops.backup_catalog;"
                                   f" {display_path(directory)} is not reachable from here)")


def _read_only(ep: Endpoint, command: str) -> psycopg.Connection[Any]:
    conn = open_connection(ep, command=command)
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn


def _read_primary(conn: psycopg.Connection[Any], plan: Plan, ep: Endpoint, *,
                  fingerprint: bool) -> LiveState:
    server = _read_server(conn, "primary", ep)
    version, user = conn.execute("SELECT current_setting('server_version_num')::int, current_user"
                                 ).fetchone() or (0, "")
    roles, replication = _read_roles(conn), _read_replication(conn, server)
    credit = ledger.open_credit(conn)
    return LiveState(
        database=ep.describe(), server_version=int(version), servers={"primary": server},
        roles=roles, applied=tuple(history.read(conn)),
        journal=tuple(history.read_journal(conn)), replication=replication,
        schema=schema_fingerprint(conn) if fingerprint else {},
        snapshot=ledger.read_snapshot(conn, plan.environment), current_user=str(user),
        unfinished=tuple(ledger.read_unfinished(conn, plan.environment, _apply_lock_pid(conn))),
        open_credit=credit,
        runner_busy=credit is not None and history.lock_holder(conn) is not None,
        expansions=tuple(expansion_state.in_flight(conn)))


@dataclass(frozen=True)
class ServerFacts:
    """One server read without a plan: what `dbops import` describes as a plan."""

    server: Server
    roles: dict[str, LiveRole]
    replication: tuple[Stream, ...]
    server_version: int
    current_user: str


def read_facts(ep: Endpoint, *, command: str) -> ServerFacts:
    """The settings, roles and replicas of the server at `ep`, in one read-only transaction."""
    with _read_only(ep, command) as conn:
        server = _read_server(conn, "primary", ep)
        version, user = conn.execute("SELECT current_setting('server_version_num')::int, "
                                     "current_user").fetchone() or (0, "")
        return ServerFacts(server, _read_roles(conn), _read_replication(conn, server),
                           int(version), str(user))


def _read_roles(conn: psycopg.Connection[Any]) -> dict[str, LiveRole]:
    return {
        name: LiveRole(name, login, limit, dict(_split_setting(s) for s in config), sessions,
                       *attributes)
        for name, login, limit, config, sessions, *attributes in conn.execute(_ROLES)
    }


def _read_replication(conn: psycopg.Connection[Any], server: Server
                      ) -> tuple[Stream, ...]:
    if server.in_recovery:
        return ()
    return tuple(Stream(app or "", addr, state or "", parse_lsn(lsn), lag, behind)
                 for app, addr, state, lsn, lag, behind in conn.execute(_REPLICATION))


def _apply_lock_pid(conn: psycopg.Connection[Any]) -> int | None:
    holder = lock_holder(conn, APPLY_LOCK)
    return holder.pid if holder else None


def _read_server(conn: psycopg.Connection[Any], name: str, ep: Endpoint) -> Server:
    rows = conn.execute(_SETTINGS).fetchall()
    configured, written, readable = _file_settings(conn)
    settings = {
        row[0]: LiveSetting(
            spec=SettingSpec(row[0], row[3], row[2], row[7], row[8], tuple(row[9])),
            setting=row[1], context=row[4], source=row[5], pending_restart=row[6],
            written=written.get(row[0]), configured=configured.get(row[0]), boot_val=row[10])
        for row in rows
    }
    recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return Server(name, ep.describe(), bool(recovery and recovery[0]), settings, readable)


def _file_settings(conn: psycopg.Connection[Any]) -> tuple[dict[str, str], dict[str, str], bool]:
    """(value in the files, value ALTER SYSTEM wrote, readable); later rows win, as in PostgreSQL."""
    try:
        with conn.transaction():  # a savepoint: a role without the privilege still plans
            rows = conn.execute(_FILE_SETTINGS).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return {}, {}, False
    configured = {name: value for name, value, _ in rows}
    written = {name: value for name, value, auto in rows if auto}
    return configured, written, True


def _split_setting(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return name, value
