"""The migration history in the target database (schema `dbops`, created by dbops.ledger): the
history table, the step journal of non-transactional migrations, and the runner lock. Knows the
database, never reads files."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from dbops import __version__, locks
from dbops.connect import Endpoint
from dbops.locks import LockHolder

Direction = Literal["up", "down"]
Mode = Literal["transaction", "steps", "baseline"]

LOCK_KEY = locks.RUNNER_LOCK

@dataclass(frozen=True)
class AppliedMigration:
    version: str
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: float
    applied_by_role: str
    applied_by_host: str
    dbops_version: str
    execution_mode: str
    applied_order: int


@dataclass(frozen=True)
class JournalEntry:
    version: str
    direction: str
    step: int
    statement: str
    status: str


def exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('dbops.migration_history') IS NOT NULL").fetchone()
    return bool(row and row[0])


def read(conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
    """Every applied migration, oldest first, in one query (empty before first use)."""
    if not exists(conn):
        return []
    with conn.cursor(row_factory=class_row(AppliedMigration)) as cur:
        cur.execute("""
            SELECT version, name, checksum, applied_at, duration_ms, applied_by_role,
                   applied_by_host, dbops_version, execution_mode, applied_order
            FROM dbops.migration_history ORDER BY applied_order""")
        return cur.fetchall()


def read_journal(conn: psycopg.Connection[Any]) -> list[JournalEntry]:
    if not exists(conn):
        return []
    with conn.cursor(row_factory=class_row(JournalEntry)) as cur:
        cur.execute(
            "SELECT version, direction, step, statement, status"
            " FROM dbops.migration_journal ORDER BY version, direction, step"
        )
        return cur.fetchall()


def record(
    conn: psycopg.Connection[Any],
    *,
    version: str,
    name: str,
    checksum: str,
    duration_ms: float | None,
    mode: Mode,
) -> None:
    conn.execute(record_query(version=version, name=name, checksum=checksum,
                              duration_ms=duration_ms, mode=mode))


# The column the history INSERT returns: a message of several migrations reads their durations.
RECORDED = "dbops_recorded_ms"
# A migration that travels in one message with its history row marks when it starts: its
# transaction's own start time is the message's, which several migrations may share.
MARK_START = "SELECT set_config('dbops.started', clock_timestamp()::text, true)"
_STARTED = ("coalesce(nullif(current_setting('dbops.started', true), '')::timestamptz,"
            " transaction_timestamp())")  # the mark, unless the migration reset it


def record_query(*, version: str, name: str, checksum: str, duration_ms: float | None,
                 mode: Mode) -> sql.Composed:
    """The history INSERT with its values bound as literals, so it can travel in one message with
    the migration's own statements (after MARK_START). Without a duration, the time since that
    mark is recorded."""
    started: sql.Composable
    duration: sql.Composable
    if duration_ms is not None:
        started, duration = sql.SQL("now()"), sql.Literal(duration_ms)
    else:
        started = sql.SQL(_STARTED)
        duration = sql.SQL(f"1000 * extract(epoch FROM clock_timestamp() - {_STARTED})")
    return sql.SQL(
        "INSERT INTO dbops.migration_history (version, name, checksum, applied_at, duration_ms,"
        " applied_by_host, dbops_version, execution_mode) VALUES ({}, {}, {}, {}, {}, {}, {}, {})"
        f" RETURNING duration_ms AS {RECORDED}"
    ).format(sql.Literal(version), sql.Literal(name), sql.Literal(checksum), started, duration,
             sql.Literal(socket.gethostname()), sql.Literal(__version__), sql.Literal(mode))


def forget(conn: psycopg.Connection[Any], version: str) -> None:
    conn.execute(forget_query(version))


def forget_query(version: str) -> sql.Composed:
    return sql.SQL("DELETE FROM dbops.migration_history WHERE version = {}").format(
        sql.Literal(version))


def journal_start(
    conn: psycopg.Connection[Any], version: str, direction: Direction, step: int, statement: str
) -> None:
    conn.execute(
        "INSERT INTO dbops.migration_journal (version, direction, step, statement, status)"
        " VALUES (%s, %s, %s, %s, 'started')"
        " ON CONFLICT (version, direction, step) DO UPDATE SET started_at = now()",
        (version, direction, step, statement),
    )


def journal_done(
    conn: psycopg.Connection[Any], version: str, direction: Direction, step: int
) -> None:
    conn.execute(
        "UPDATE dbops.migration_journal SET status = 'done', finished_at = now()"
        " WHERE version = %s AND direction = %s AND step = %s",
        (version, direction, step),
    )


def journal_clear(conn: psycopg.Connection[Any], version: str) -> None:
    conn.execute(journal_clear_query(version))


def journal_clear_query(version: str) -> sql.Composed:
    return sql.SQL("DELETE FROM dbops.migration_journal WHERE version = {}").format(
        sql.Literal(version))


def lock_holder(conn: psycopg.Connection[Any]) -> LockHolder | None:
    return locks.lock_holder(conn, LOCK_KEY)


@contextmanager
def runner_lock(
    ep: Endpoint, *, wait: timedelta, command: str, poll: float = 0.1
) -> Iterator[psycopg.Connection[Any]]:
    """Hold the migration runner lock for the block.

    A session-level advisory lock on its own autocommit connection: the session stays idle and
    outside any transaction, so CREATE INDEX CONCURRENTLY in the same run does not wait on it, and
    the server releases it the moment the process dies. Another holder is waited for up to
    `wait`, then named in the LockTimeout.
    """
    with locks.advisory_lock(ep, LOCK_KEY, holder="another migration runner", wait=wait,
                             command=command, option="--lock-wait", poll=poll) as conn:
        yield conn
