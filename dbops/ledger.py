"""Schema `dbops` in the target database: its versioned DDL, the last-applied snapshot, the
audit log of applies and the backup catalog's copy. A database carries its own truth; dbops needs no state file."""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from dbops import __version__
from dbops.locks import RUNNER_LOCK
from dbops.schema_facts import schema_fingerprint

# Each entry upgrades the dbops schema by one version; never edit one that has shipped.
_UPGRADES: tuple[str, ...] = (
    """
    CREATE TABLE dbops.migration_history (
        version         text PRIMARY KEY,
        name            text NOT NULL,
        checksum        text NOT NULL,
        applied_at      timestamptz NOT NULL DEFAULT now(),
        duration_ms     double precision NOT NULL,
        applied_by_role text NOT NULL DEFAULT current_user,
        applied_by_host text NOT NULL,
        dbops_version   text NOT NULL,
        execution_mode  text NOT NULL CHECK (execution_mode IN ('transaction', 'steps', 'baseline')),
        applied_order   bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE TABLE dbops.migration_journal (
        version     text NOT NULL,
        direction   text NOT NULL CHECK (direction IN ('up', 'down')),
        step        integer NOT NULL,
        statement   text NOT NULL,
        status      text NOT NULL CHECK (status IN ('started', 'done')),
        started_at  timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        PRIMARY KEY (version, direction, step)
    );
    """,
    """
    CREATE TABLE dbops.applied_snapshot (
        environment        text PRIMARY KEY,
        plan_hash          text NOT NULL,
        applied_at         timestamptz NOT NULL DEFAULT now(),
        settings           jsonb NOT NULL,
        roles              jsonb NOT NULL,
        schema_fingerprint jsonb NOT NULL
    );
    CREATE TABLE dbops.apply_audit (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at            timestamptz NOT NULL DEFAULT now(),
        who           text NOT NULL DEFAULT current_user,
        client_host   text NOT NULL,
        dbops_version text NOT NULL,
        environment   text NOT NULL,
        plan_hash     text NOT NULL,
        changes       jsonb NOT NULL,
        result        text NOT NULL CHECK (result IN ('applied', 'rolled back', 'failed')),
        reason        text NOT NULL DEFAULT ''
    );
    """,
    # An apply's row is written when it starts and updated as it goes, so a run that dies leaves
    # a trace; the snapshot keeps the unmanaged baseline; a migration run's credit row survives
    # SIGKILL so its schema changes are still credited to migrations afterwards.
    """
    ALTER TABLE dbops.applied_snapshot ADD COLUMN unmanaged jsonb NOT NULL DEFAULT '{}';
    ALTER TABLE dbops.apply_audit DROP CONSTRAINT apply_audit_result_check;
    ALTER TABLE dbops.apply_audit ADD CONSTRAINT apply_audit_result_check
        CHECK (result IN ('running', 'applied', 'rolled back', 'failed', 'interrupted'));
    ALTER TABLE dbops.apply_audit
        ADD COLUMN plan_file_sha256 text,
        ADD COLUMN done jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN undone jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN not_undone jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN backend_pid integer,
        ADD COLUMN finished_at timestamptz;
    CREATE TABLE dbops.migration_credit (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        started_at timestamptz NOT NULL DEFAULT now(),
        before     jsonb NOT NULL
    );
    """,
    # One audit table for every operation that changes something (dbops.audit): applies keep
    # their progress columns; the rest write one row when they finish.
    """
    ALTER TABLE dbops.apply_audit
        ADD COLUMN action text NOT NULL DEFAULT 'apply',
        ADD COLUMN os_user text NOT NULL DEFAULT '',
        ADD COLUMN record_id text NOT NULL UNIQUE
            DEFAULT replace(gen_random_uuid()::text, '-', '');
    ALTER TABLE dbops.apply_audit DROP CONSTRAINT apply_audit_result_check;
    ALTER TABLE dbops.apply_audit ADD CONSTRAINT apply_audit_result_check
        CHECK (result IN ('running', 'applied', 'rolled back', 'failed', 'interrupted', 'done'));
    """,
    # The backup catalog as the manifests record it (dbops.backup.record), for where the backup
    # directory cannot be reached.
    """
    CREATE TABLE dbops.backup_catalog (
        id                text PRIMARY KEY,
        environment       text NOT NULL,
        location          text NOT NULL,
        started_at        timestamptz NOT NULL,
        reason            text NOT NULL,
        size              bigint NOT NULL,
        verified          boolean,
        restore_tested_at timestamptz,
        manifest          jsonb NOT NULL,
        recorded_at       timestamptz NOT NULL DEFAULT now()
    );
    """,
    # Expand/contract migrations in flight (dbops.migrate.expand.state): the phase reached and
    # the backfill's keyset position per table, so a killed expansion resumes where it stopped.
    """
    CREATE TABLE dbops.expansion (
        version      text PRIMARY KEY,
        name         text NOT NULL,
        base_schema  text NOT NULL,
        phase        text NOT NULL CHECK (phase IN ('expanding', 'expanded', 'completed')),
        started_at   timestamptz NOT NULL DEFAULT now(),
        expanded_at  timestamptz,
        completed_at timestamptz,
        backfill     jsonb NOT NULL DEFAULT '{}'
    );
    """,
)


@dataclass(frozen=True)
class Snapshot:
    """What dbops last applied to this database for an environment."""

    environment: str
    plan_hash: str
    applied_at: datetime
    settings: dict[str, str]
    roles: dict[str, dict[str, Any]]
    schema_fingerprint: dict[str, str]
    # What the plan does not manage, as it was then: {"settings": {name: value}, "roles":
    # {name: attributes}}; empty for a snapshot written before dbops kept it.
    unmanaged: dict[str, Any] = field(default_factory=dict)


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create schema dbops on first use and apply the upgrades since; idempotent."""
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS dbops;"
                     " CREATE TABLE IF NOT EXISTS dbops.meta (key text PRIMARY KEY, value text NOT NULL)",
                     prepare=False)
        row = conn.execute("SELECT value FROM dbops.meta WHERE key = 'schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current < len(_UPGRADES):
            # Every missing upgrade and the new version in one message: one round trip.
            conn.execute(
                "".join(f"{ddl.strip()}\n" for ddl in _UPGRADES[current:])
                + f"INSERT INTO dbops.meta VALUES ('schema_version', '{len(_UPGRADES)}')"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                prepare=False)


def read_snapshot(conn: psycopg.Connection[Any], environment: str) -> Snapshot | None:
    row = conn.execute("SELECT to_regclass('dbops.applied_snapshot') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    with conn.cursor(row_factory=class_row(Snapshot)) as cur:
        # to_jsonb(s): a read-only plan against a schema an older dbops wrote (no unmanaged
        # column yet) reads it too.
        cur.execute("SELECT environment, plan_hash, applied_at, settings, roles, schema_fingerprint,"
                    " coalesce(to_jsonb(s) -> 'unmanaged', '{}') AS unmanaged"
                    " FROM dbops.applied_snapshot s WHERE environment = %s", (environment,))
        return cur.fetchone()


def write_snapshot(conn: psycopg.Connection[Any], snapshot: Snapshot) -> None:
    conn.execute(
        "INSERT INTO dbops.applied_snapshot"
        " (environment, plan_hash, applied_at, settings, roles, schema_fingerprint, unmanaged)"
        " VALUES (%s, %s, now(), %s, %s, %s, %s) ON CONFLICT (environment) DO UPDATE SET"
        " plan_hash = excluded.plan_hash, applied_at = excluded.applied_at,"
        " settings = excluded.settings, roles = excluded.roles,"
        " schema_fingerprint = excluded.schema_fingerprint, unmanaged = excluded.unmanaged",
        (snapshot.environment, snapshot.plan_hash, Jsonb(snapshot.settings),
         Jsonb(snapshot.roles), Jsonb(snapshot.schema_fingerprint), Jsonb(snapshot.unmanaged)))


def advance(known: dict[str, str], before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """The fingerprint dbops knows, moved by exactly what changed between `before` and `after`
    (its own migrations), so changes made by hand stay visible as drift."""
    moved = dict(known)
    for address in set(before) | set(after):
        if before.get(address) == after.get(address):
            continue
        if address in after:
            moved[address] = after[address]
        else:
            moved.pop(address, None)
    return moved


@dataclass(frozen=True)
class OpenCredit:
    """The oldest migration run whose schema changes are not yet credited to the snapshots: it
    died (SIGKILL), or it is still running."""

    started_at: datetime
    before: dict[str, str]  # the schema fingerprint when it started


def open_credit(conn: psycopg.Connection[Any]) -> OpenCredit | None:
    row = conn.execute("SELECT to_regclass('dbops.migration_credit') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    with conn.cursor(row_factory=class_row(OpenCredit)) as cur:
        cur.execute("SELECT started_at, before FROM dbops.migration_credit ORDER BY id LIMIT 1")
        return cur.fetchone()


@contextmanager
def crediting(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Credit the schema changes made inside the block to migrations: on exit, advance every
    environment's snapshot by (schema before the block -> schema after it), so they are not drift.

    Call it under the runner lock, after ensure_schema, on an autocommit connection. The schema
    before is written down (committed) on entry; a run killed inside the block leaves that row, and
    the next run credits from it, so the dead run's changes are credited too.
    """
    if open_credit(conn) is None:
        conn.execute("INSERT INTO dbops.migration_credit (before) VALUES (%s)",
                     (Jsonb(schema_fingerprint(conn)),))
    try:
        yield
    except BaseException:
        # On failure here the row stays and the next run credits these changes: the first error
        # is the one to report.
        with suppress(psycopg.Error):
            _settle_credit(conn)
        raise
    _settle_credit(conn)


def _settle_credit(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        credit = open_credit(conn)
        if credit is None:
            return
        snapshots = conn.execute("SELECT environment, schema_fingerprint"
                                 " FROM dbops.applied_snapshot FOR UPDATE").fetchall()
        # No snapshot yet (a plan was never applied here): nothing to advance, nothing to read.
        after = schema_fingerprint(conn) if snapshots else {}
        for environment, known in snapshots:
            conn.execute("UPDATE dbops.applied_snapshot SET schema_fingerprint = %s"
                         " WHERE environment = %s",
                         (Jsonb(advance(known, credit.before, after)), environment))
        conn.execute("DELETE FROM dbops.migration_credit")


def credited_schema(conn: psycopg.Connection[Any], environment: str) -> dict[str, str] | None:
    """The environment's snapshot fingerprint as migrations credited it, locked until the end of
    the caller's transaction (None: no snapshot yet). When no runner is going, a dead run's changes
    are credited first, and the transaction keeps runners out until it ends."""
    idle = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (RUNNER_LOCK,)).fetchone()
    if idle and idle[0]:
        _settle_credit(conn)
    row = conn.execute("SELECT schema_fingerprint FROM dbops.applied_snapshot"
                       " WHERE environment = %s FOR UPDATE", (environment,)).fetchone()
    return None if row is None else dict(row[0])


def record_operation(conn: psycopg.Connection[Any], *, record_id: str, action: str,
                     environment: str, plan_hash: str, at: datetime, result: str,
                     detail: str) -> None:
    """A finished operation's row in one go (every command but apply, which writes as it goes)."""
    conn.execute(
        "INSERT INTO dbops.apply_audit (record_id, action, at, os_user, client_host,"
        " dbops_version, environment, plan_hash, changes, result, reason, finished_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '[]', %s, %s, now())"
        " ON CONFLICT (record_id) DO NOTHING",
        (record_id, action, at, os_user(), socket.gethostname(), __version__, environment,
         plan_hash, result, detail))


def carry_operation(conn: psycopg.Connection[Any], *, record_id: str, action: str, at: datetime,
                    os_user: str, host: str, role: str, dbops_version: str, environment: str,
                    plan_hash: str, result: str, detail: str) -> None:
    """An audit record written elsewhere first (kept before a restore replaced the database),
    as it was: who, where and when are the record's, not this session's. Once per record_id."""
    conn.execute(
        "INSERT INTO dbops.apply_audit (record_id, action, at, os_user, client_host, who,"
        " dbops_version, environment, plan_hash, changes, result, reason, finished_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, '[]', %s, %s, %s)"
        " ON CONFLICT (record_id) DO NOTHING",
        (record_id, action, at, os_user, host, role, dbops_version, environment, plan_hash,
         result, detail, at))


def os_user() -> str:
    """Who ran dbops on this machine (the login name, else the user id)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def begin_apply(conn: psycopg.Connection[Any], *, environment: str, plan_hash: str,
                changes: list[dict[str, Any]], plan_file_sha256: str | None,
                lock_pid: int) -> int:
    """An apply's row, written before it touches anything (result 'running'); returns its id.
    Rows of earlier applies still 'running' died with their process or server: they become
    'interrupted' (the caller holds the apply lock, so none of them is alive)."""
    conn.execute(
        "UPDATE dbops.apply_audit SET result = 'interrupted', finished_at = now(),"
        " reason = 'stopped before it finished (its process or the server went away)'"
        " WHERE environment = %s AND action = 'apply' AND result = 'running'", (environment,))
    row = conn.execute(
        "INSERT INTO dbops.apply_audit (os_user, client_host, dbops_version, environment,"
        " plan_hash, changes, result, plan_file_sha256, backend_pid)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s) RETURNING id",
        (os_user(), socket.gethostname(), __version__, environment, plan_hash, _json(changes),
         plan_file_sha256, lock_pid)).fetchone()
    assert row is not None
    return int(row[0])


def progress_apply(conn: psycopg.Connection[Any], audit_id: int, done: list[str]) -> None:
    conn.execute("UPDATE dbops.apply_audit SET done = %s WHERE id = %s", (_json(done), audit_id))


def finish_apply(conn: psycopg.Connection[Any], audit_id: int, *, result: str, reason: str,
                 done: list[str], undone: list[str], not_undone: list[str]) -> None:
    conn.execute(
        "UPDATE dbops.apply_audit SET result = %s, reason = %s, done = %s, undone = %s,"
        " not_undone = %s, finished_at = now() WHERE id = %s",
        (result, reason, _json(done), _json(undone), _json(not_undone), audit_id))


@dataclass(frozen=True)
class Unfinished:
    """An apply that did not finish cleanly since the last one that did: what it left behind."""

    id: int
    at: datetime
    result: str  # running (its process died), interrupted or failed
    left: tuple[str, ...]  # "setting.work_mem on primary", "role.app", "2 migration(s) up", ...

    @property
    def settings(self) -> set[str]:
        """The settings it changed and did not undo: dbops's to bring back to the plan."""
        return {item.split()[0].removeprefix("setting.") for item in self.left
                if item.startswith("setting.")}

    def __str__(self) -> str:
        left = ", ".join(self.left) or "nothing it recorded"
        return (f"the apply of {self.at:%Y-%m-%d %H:%M:%S %Z} (audit #{self.id}) "
                f"{'was interrupted' if self.result != 'failed' else 'failed'} and left: {left}")


def read_unfinished(conn: psycopg.Connection[Any], environment: str,
                    live_pid: int | None) -> list[Unfinished]:
    """Applies after the environment's last clean one (applied or fully rolled back) that left
    something: a 'running' row whose session (`live_pid`, the apply lock's holder) is gone, an
    'interrupted' one, or a 'failed' one whose rollback could not undo everything."""
    row = conn.execute("SELECT to_regclass('dbops.meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    row = conn.execute("SELECT value::int FROM dbops.meta WHERE key = 'schema_version'").fetchone()
    if not row or row[0] < 3:  # written by an older dbops: no progress recorded
        return []
    applies = " AND action = 'apply'" if row[0] >= 4 else ""  # other operations share the table
    rows = conn.execute(
        "SELECT id, at, result, done, not_undone, backend_pid FROM dbops.apply_audit"
        f" WHERE environment = %s{applies} AND id > coalesce((SELECT max(id)"
        f"   FROM dbops.apply_audit WHERE environment = %s{applies}"
        "   AND result IN ('applied', 'rolled back')), 0)"
        " AND result IN ('running', 'interrupted', 'failed') ORDER BY id",
        (environment, environment)).fetchall()
    found = []
    for id_, at, result, done, not_undone, pid in rows:
        if result == "running" and pid is not None and pid == live_pid:
            continue  # an apply that is running right now
        left = tuple(not_undone if result == "failed" else done)
        if left:
            found.append(Unfinished(int(id_), at, result, left))
    return found


def _json(value: Any) -> Jsonb:
    return Jsonb(json.loads(json.dumps(value, default=str)))
