"""Plan -> LiveState: what the live servers look like, read in one read-only transaction per server
with a handful of queries. The facts side of dbops: never writes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from dbops import ledger
from dbops.backup import record
from dbops.backup.manifest import Manifest, read_manifests
from dbops.config.model import Plan
from dbops.config.source import display_path
from dbops.connect import Endpoint, endpoint, open_connection
from dbops.locks import APPLY_LOCK, lock_holder
from dbops.migrate import history
from dbops.migrate.expand import state as expansion_state
from dbops.migrate.expand.state import Expansion
from dbops.setting_values import SettingSpec, display

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
    SELECT application_name, client_addr::text, state,
           extract(epoch FROM replay_lag)::float8,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
    FROM pg_stat_replication ORDER BY application_name"""

# A definition per user object; equal definitions hash equal, whatever the catalog's OIDs.
_FINGERPRINT = """
    WITH user_ns AS (
        SELECT oid, nspname FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'dbops')
          AND nspname !~ '^pg_(toast|temp)'),
    extension_objects AS (SELECT objid FROM pg_depend WHERE deptype = 'e')
    SELECT 'table.' || n.nspname || '.' || c.relname,
           md5(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                          || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                          || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
                          ', ' ORDER BY a.attnum))
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE c.relkind IN ('r', 'p') AND c.oid NOT IN (SELECT objid FROM extension_objects)
    GROUP BY n.nspname, c.relname
    UNION ALL
    SELECT 'index.' || n.nspname || '.' || c.relname,
           md5(pg_get_indexdef(c.oid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN user_ns n ON n.oid = c.relnamespace
    UNION ALL
    SELECT 'constraint.' || n.nspname || '.' || t.relname || '.' || con.conname,
           md5(pg_get_constraintdef(con.oid))
    FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
    JOIN user_ns n ON n.oid = t.relnamespace
    UNION ALL
    SELECT 'view.' || n.nspname || '.' || c.relname, md5(pg_get_viewdef(c.oid))
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('v', 'm') AND c.oid NOT IN (SELECT objid FROM extension_objects)
    UNION ALL
    SELECT 'function.' || n.nspname || '.' || p.proname
           || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           md5(pg_get_functiondef(p.oid))
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p') AND p.oid NOT IN (SELECT objid FROM extension_objects)"""


@dataclass(frozen=True)
class TableStats:
    """Live statistics of one table, for turning a migration hazard into an estimate."""

    name: str
    rows: float
    bytes: int
    writes_per_second: float | None  # recent writes/s; None: not sampled
    long_transactions: tuple[str, ...] = ()
    columns: tuple[tuple[str, str, str], ...] = ()  # (name, format_type, collation or "")
    # (statement text, rows): the planner's estimate of the rows an UPDATE or DELETE of this
    # table with a WHERE clause touches (EXPLAIN, never run).
    planned: tuple[tuple[str, float], ...] = ()
    # The expressions of the table's valid CHECK constraints, as PostgreSQL prints them: what
    # they prove lets PostgreSQL skip a scan (SET NOT NULL, ATTACH PARTITION).
    checks: tuple[str, ...] = ()
    # A range-partitioned table's key columns, when it has no default partition (ATTACH
    # PARTITION would scan that one too) and no expression in its key: () for any other table.
    partition_key: tuple[str, ...] = ()


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
class LiveRole:
    name: str
    login: bool
    connection_limit: int
    settings: dict[str, str]
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


@dataclass(frozen=True)
class ReplicaStatus:
    application_name: str
    client: str | None
    state: str
    replay_lag_seconds: float | None
    lag_bytes: int | None


@dataclass(frozen=True)
class LiveState:
    database: str
    server_version: int
    servers: dict[str, Server]
    roles: dict[str, LiveRole]
    applied: tuple[history.AppliedMigration, ...]
    journal: tuple[history.JournalEntry, ...]
    replication: tuple[ReplicaStatus, ...]
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
    servers = dict(state.servers)
    for replica in plan.database.replicas:
        ep = endpoint(plan, replica)
        with _read_only(ep, command) as conn:
            servers[replica.name] = _read_server(conn, replica.name, ep)
    return replace(state, servers=servers, backups=backups, backup_source=backup_source)


def _read_backups(conn: psycopg.Connection[Any], plan: Plan) -> tuple[tuple[Manifest, ...], str]:
    """The backup catalog and where it was read: the policy's directory when it can be reached
    from here, else the copy recorded in the database (a CI runner has no backup directory)."""
    if plan.backup is None:
        return (), ""
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
    replication: tuple[ReplicaStatus, ...]
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
                      ) -> tuple[ReplicaStatus, ...]:
    if server.in_recovery:
        return ()
    return tuple(ReplicaStatus(*row) for row in conn.execute(_REPLICATION))


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


def schema_fingerprint(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Every user table, index, constraint, view and function, with a hash of its definition."""
    return dict(conn.execute(_FINGERPRINT).fetchall())


def _split_setting(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return name, value


_TABLE_STATS = """
    SELECT c.relname, n.nspname,
           (CASE WHEN c.reltuples < 0 THEN coalesce(s.n_live_tup, 0) ELSE c.reltuples END)::float8,
           pg_total_relation_size(c.oid)::bigint,
           coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)::float8,
           coalesce((SELECT array_agg(ARRAY[a.attname::text, format_type(a.atttypid, a.atttypmod),
                                            coalesce(co.collname::text, '')] ORDER BY a.attnum)
                     FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                    '{}'),
           coalesce((SELECT array_agg(pg_get_expr(k.conbin, k.conrelid) ORDER BY k.conname)
                     FROM pg_constraint k
                     WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.convalidated), '{}'),
           coalesce((SELECT array_agg(a.attname::text ORDER BY k.n)
                     FROM pg_partitioned_table p
                     CROSS JOIN LATERAL unnest(p.partattrs::int2[]) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum
                     WHERE p.partrelid = c.oid AND p.partstrat = 'r' AND p.partdefid = 0
                       AND 0 <> ALL (p.partattrs::int2[])), '{}'),
           coalesce((SELECT array_agg(DISTINCT 'pid ' || a.pid || ' (' || coalesce(nullif(
                         a.application_name, ''), 'no application_name') || '), in a transaction for '
                         || date_trunc('second', now() - a.xact_start))
                     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.relation = c.oid AND l.granted AND a.pid <> pg_backend_pid()
                       AND now() - a.xact_start > interval '5 seconds'), '{}')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL)"""


_WRITES = """
    SELECT n.nspname || '.' || c.relname, coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.oid IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL)"""


WRITE_SAMPLE_SECONDS = 1.0  # backends report their counters about once a second


def table_stats(conn: psycopg.Connection[Any], tables: list[str], *,
                sample_from: int | None = None,
                planned: Sequence[tuple[str, str]] = ()) -> dict[str, TableStats]:
    """Row estimates, sizes, column types and long lock holders of these tables, and, when one
    of them holds at least `sample_from` bytes, their recent write rate: the change of the
    activity counters over WRITE_SAMPLE_SECONDS (the lifetime average misrepresents a table
    bulk-loaded once and idle since). Smaller tables are not worth the wait: no rate. For each
    (table, statement) of `planned` (an UPDATE or DELETE with a WHERE clause), the planner's
    estimate of the rows it touches."""
    rows_read = conn.execute(_TABLE_STATS, (tables,)).fetchall()
    rates: dict[str, float] = {}
    sample = WRITE_SAMPLE_SECONDS
    if sample_from is not None and any(int(row[3]) >= sample_from for row in rows_read):
        before = {str(k): float(v) for k, v in conn.execute(_WRITES, (tables,))}
        started = time.monotonic()
        time.sleep(sample)
        conn.execute("SELECT pg_stat_clear_snapshot()")  # a transaction caches the counters
        after = {str(k): float(v) for k, v in conn.execute(_WRITES, (tables,))}
        elapsed = time.monotonic() - started
        rates = {k: max(after.get(k, v) - v, 0.0) / elapsed for k, v in before.items()}
    stats: dict[str, TableStats] = {}
    for name, schema, rows, size, _, columns, checks, key, holders in rows_read:
        entry = TableStats(str(name), float(rows), int(size), rates.get(f"{schema}.{name}"),
                           tuple(holders), tuple((c[0], c[1], c[2]) for c in columns),
                           checks=tuple(str(check) for check in checks),
                           partition_key=tuple(str(column) for column in key))
        stats[str(name)] = stats[f"{schema}.{name}"] = entry
    estimates: dict[str, list[tuple[str, float]]] = {}
    for table, text in planned:
        found = stats.get(table) or stats.get(table.split(".")[-1])
        rows = planned_rows(conn, text) if found is not None else None
        if found is not None and rows is not None:
            estimates.setdefault(found.name, []).append((text, rows))
    for key, entry in list(stats.items()):
        if entry.name in estimates:
            stats[key] = replace(entry, planned=tuple(estimates[entry.name]))
    return stats


def planned_rows(conn: psycopg.Connection[Any], statement: str) -> float | None:
    """The planner's estimate of the rows an UPDATE or DELETE touches: `EXPLAIN` without
    ANALYZE plans it and runs nothing. None when it cannot be planned here (a table or column an
    earlier statement of the run creates, a lock not granted within lock_timeout)."""
    try:
        with conn.transaction():  # a savepoint: a statement that fails to plan changes nothing
            row = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}").fetchone()
    except psycopg.Error:
        return None
    plan = row[0][0]["Plan"] if row else {}
    if plan.get("Node Type") == "ModifyTable" and plan.get("Plans"):
        plan = plan["Plans"][0]
    return float(plan["Plan Rows"]) if "Plan Rows" in plan else None
