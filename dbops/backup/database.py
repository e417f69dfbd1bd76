"""What backups need from the server: the dump's snapshot and its facts (server version, migration
version, exact row counts), and databases to restore into: create, carry properties, swap, drop.
Every name goes through psycopg.sql."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from dbops import migration_history as history
from dbops.connect import Endpoint, open_connection, with_database
from dbops.errors import BackupError

# Ordinary tables whose rows pg_dump writes: not the system's, not temporary, not an extension's.
_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND c.relpersistence <> 't'
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2"""
# The database's own data: pg_database_size less the system catalogs (shared ones live elsewhere).
_DATA_SIZE = """
    SELECT pg_database_size(current_database()) - coalesce((
      SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'm')
        AND NOT c.relisshared), 0)"""
_IDENTIFIER_LIMIT = 63
_SWAP_WAIT = 10.0


@dataclass(frozen=True)
class SourceFacts:
    """What the dump's snapshot holds, read in that very snapshot."""

    snapshot: str
    server_version: str
    migration_version: str | None
    encoding: str
    lc_collate: str
    lc_ctype: str
    tables: tuple[tuple[str, str], ...]
    data_size: int
    """Bytes of the database's tables, TOAST and indexes (pg_database_size less the system
    catalogs): more than a dump of it takes, which leaves index data out and compresses."""


@contextmanager
def exported_snapshot(ep: Endpoint) -> Iterator[tuple[psycopg.Connection[TupleRow], SourceFacts]]:
    """A REPEATABLE READ, read-only transaction whose snapshot is exported for pg_dump --snapshot,
    kept open for the block (pg_dump must import it while it exists). Its tables are locked
    ACCESS SHARE first, as pg_dump locks them, so DDL cannot slip in before pg_dump's own locks."""
    conn = open_connection(ep, command="backup-create")
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute(
            "SELECT pg_export_snapshot(), current_setting('server_version'),"
            " pg_encoding_to_char(encoding), datcollate, datctype"
            " FROM pg_database WHERE datname = current_database()").fetchone()
        assert row is not None
        applied = history.read(conn)
        tables = tuple((str(s), str(t)) for s, t in conn.execute(_TABLES).fetchall())
        size = conn.execute(_DATA_SIZE).fetchone()
        if tables:
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier(s, t) for s, t in tables)))
        yield conn, SourceFacts(
            snapshot=row[0], server_version=row[1],
            migration_version=applied[-1].version if applied else None,
            encoding=row[2], lc_collate=row[3], lc_ctype=row[4], tables=tables,
            data_size=max(0, int(size[0])) if size else 0)
    finally:
        conn.close()


def count_rows(conn: psycopg.Connection[Any],
               tables: tuple[tuple[str, str], ...] | None = None) -> dict[str, int]:
    """Exact rows of every table (`schema.table` -> rows) in the transaction's snapshot, in one
    query; without `tables`, of every table pg_dump would dump."""
    if tables is None:
        tables = tuple((str(s), str(t)) for s, t in conn.execute(_TABLES).fetchall())
    if not tables:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*) FROM {}").format(sql.Literal(f"{s}.{t}"),
                                                       sql.Identifier(s, t))
        for s, t in tables)
    return {str(name): int(rows) for name, rows in conn.execute(query).fetchall()}


def read_counts(ep: Endpoint, command: str) -> dict[str, int]:
    """Row counts of every table of the database `ep` names, in one snapshot."""
    with open_connection(ep, command=command) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return count_rows(conn)


def read_history(ep: Endpoint, command: str) -> list[history.AppliedMigration]:
    with open_connection(ep, command=command, autocommit=True) as conn:
        return history.read(conn)


def compare_counts(recorded: dict[str, int], restored: dict[str, int]) -> list[str]:
    """Every table whose rows differ from the numbers recorded at backup time."""
    problems = []
    for table in sorted(set(recorded) | set(restored)):
        if table not in restored:
            problems.append(f"{table}: missing after restore ({recorded[table]} rows at backup)")
        elif table not in recorded:
            problems.append(f"{table}: not in the backup's row counts ({restored[table]} rows)")
        elif recorded[table] != restored[table]:
            problems.append(f"{table}: {recorded[table]} rows at backup, "
                            f"{restored[table]} restored")
    return problems


def derived_name(base: str, suffix: str) -> str:
    """`base_suffix`, with `base` shortened so the whole fits PostgreSQL's 63-byte names."""
    room = _IDENTIFIER_LIMIT - len(suffix.encode()) - 1
    short = base.encode()[:room].decode(errors="ignore")
    return f"{short}_{suffix}"


@contextmanager
def admin_connection(ep: Endpoint, command: str) -> Iterator[psycopg.Connection[TupleRow]]:
    """An autocommit connection to a maintenance database (never the one being restored)."""
    maintenance = "template1" if ep.dbname == "postgres" else "postgres"
    with open_connection(with_database(ep, maintenance), command=command,
                         autocommit=True) as conn:
        yield conn


def exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
        is not None


def create(conn: psycopg.Connection[Any], name: str, *, encoding: str, lc_collate: str,
           lc_ctype: str) -> None:
    """A new empty database with the backup's encoding and locale (from template0)."""
    try:
        conn.execute(sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Identifier(name), sql.Literal(encoding), sql.Literal(lc_collate),
            sql.Literal(lc_ctype)))
    except psycopg.errors.InsufficientPrivilege:
        raise BackupError(f"restoring needs CREATEDB: {conn.info.user} cannot create "
                          f"database {name}") from None
    except psycopg.errors.DuplicateDatabase:
        raise BackupError(f"database {name} already exists; restore creates a new database "
                          "(choose another name)") from None


def drop(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# Settings whose value is a list of names (pg_dump's variable_is_guc_list_quote).
_LIST_SETTINGS = {"local_preload_libraries", "search_path", "session_preload_libraries",
                  "shared_preload_libraries", "temp_tablespaces", "unix_socket_directories"}


def carry_properties(conn: psycopg.Connection[Any], source: str, target: str) -> None:
    """Give `target` the database-level properties of `source` that pg_dump (without --create)
    does not carry: owner, connection limit, comment, privileges on the database, and the
    settings made with ALTER DATABASE ... SET and ALTER ROLE ... IN DATABASE ... SET."""
    row = conn.execute(
        "SELECT pg_get_userbyid(datdba), datconnlimit, datacl IS NOT NULL,"
        " shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (source,)).fetchone()
    if row is None:
        return
    owner, limit, has_acl, comment = row
    new = sql.Identifier(target)
    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(new, sql.Identifier(owner)))
    if limit != -1:
        conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            new, sql.Literal(limit)))
    if comment is not None:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(new, sql.Literal(comment)))
    if has_acl:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(new))
        for grantee, privilege, grantable in conn.execute(
                "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END,"
                " a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a"
                " WHERE d.datname = %s AND a.grantee <> d.datdba", (source,)).fetchall():
            conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege), new,
                sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")))
    for role, setting in conn.execute(
            "SELECT r.rolname, unnest(s.setconfig) FROM pg_db_role_setting s"
            " JOIN pg_database d ON d.oid = s.setdatabase"
            " LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = %s ORDER BY 1",
            (source,)).fetchall():
        name, _, value = str(setting).partition("=")
        target_sql = (sql.SQL("DATABASE {}").format(new) if role is None else
                      sql.SQL("ROLE {} IN DATABASE {}").format(sql.Identifier(role), new))
        conn.execute(sql.SQL("ALTER {} SET {} = {}").format(
            target_sql, sql.Identifier(name), _setting_value(name, value)))


def _setting_value(name: str, value: str) -> sql.Composable:
    if name not in _LIST_SETTINGS:
        return sql.Literal(value)
    return sql.SQL(", ").join(sql.Literal(item) for item in _split_list(value))


def _split_list(value: str) -> list[str]:
    """`"$user", public` -> ['$user', 'public'] (double quotes as the server wrote them)."""
    items, current, quoted, i = [], "", False, 0
    while i < len(value):
        char = value[i]
        if char == '"':
            if quoted and value[i + 1:i + 2] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            items.append(current.strip())
            current = ""
        else:
            current += char
        i += 1
    items.append(current.strip())
    return [item for item in items if item]


def rename(conn: psycopg.Connection[Any], old: str, new: str) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
        sql.Identifier(old), sql.Identifier(new)))


def swap(conn: psycopg.Connection[Any], live: str, incoming: str, displaced: str) -> None:
    """Put `incoming` in `live`'s place: refuse new connections to `live`, end its sessions, and
    rename both in one transaction (all or nothing). `live` ends up as `displaced`, which still
    refuses connections; on failure `live` accepts connections again and nothing was renamed."""
    live_id = sql.Identifier(live)
    try:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(live_id))
    except psycopg.errors.InsufficientPrivilege:
        raise BackupError(f"restoring over {live} needs its owner or a superuser: "
                          f"{conn.info.user} may not alter it; nothing was swapped") from None
    try:
        deadline = time.monotonic() + _SWAP_WAIT
        while True:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (live,)).fetchone()
            if not row or not row[0]:
                break
            if time.monotonic() > deadline:
                raise BackupError(f"sessions on {live} did not end within {_SWAP_WAIT:g}s; "
                                  "nothing was swapped")
            time.sleep(0.05)
        with conn.transaction():
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                live_id, sql.Identifier(displaced)))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(incoming), live_id))
    except BaseException:
        if exists(conn, live):
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(live_id))
        raise
