"""Session-level advisory locks that name their holder: the migration runner lock and the apply
lock. Each lock lives on its own autocommit connection, idle and outside any transaction, so the
server releases it the moment the holding process dies."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from dbops.connect import Endpoint, open_connection
from dbops.errors import LockTimeout

# Advisory keys, kept below 2**31 so pg_locks shows them as classid 0, objid KEY.
RUNNER_LOCK = 1_684_172_912  # 'dbop' 'migr' would not fit in one int4
APPLY_LOCK = 1_684_172_913


@dataclass(frozen=True)
class LockHolder:
    """A session as pg_stat_activity names it, where a lock matters: the holder of the runner or
    apply lock (held `since` the lock was taken); a session holding a table lock a migration step
    queues behind (`since` its transaction began; `query` and `query_start`: what it runs); or a
    session a health check names, holding a lock, waiting for one, or simply old (`since` it
    entered the state the check watches, `age` seconds ago by the server's clock; `state` as
    pg_stat_activity says it). The one model of a session for locks and health alike."""

    pid: int
    application_name: str
    since: datetime
    user: str
    client: str | None
    query: str = ""
    query_start: datetime | None = None
    state: str = ""
    age: float = 0.0

    @property
    def application(self) -> str:
        """Its application_name, or words that say it has none."""
        return self.application_name or "no application_name"

    def describe(self) -> str:
        """The session in a few words: its pid and application."""
        return f"pid {self.pid} ({self.application})"

    def __str__(self) -> str:
        client = f" from {self.client}" if self.client else ""
        return (
            f"pid {self.pid} ({self.application}, "
            f"user {self.user}{client}) since {self.since:%Y-%m-%d %H:%M:%S %Z}"
        )

    def blocking(self) -> str:
        """The holder as a migration step waiting for its table lock names it."""
        started = f"{self.query_start:%H:%M:%S}" if self.query_start else "?"
        return (
            f"{self.describe()}, in a transaction"
            f" since {self.since:%H:%M:%S}, query started {started}: {self.query}"
        )


def lock_holder(conn: psycopg.Connection[Any], key: int) -> LockHolder | None:
    """The session holding advisory lock `key` in this database, if any."""
    with conn.cursor(row_factory=class_row(LockHolder)) as cur:
        cur.execute(
            """
            SELECT a.pid, a.application_name, a.state_change AS since, a.usename AS user,
                   a.client_addr::text AS client
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s
              AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database
                                                   WHERE datname = current_database())""",
            (key,),
        )
        return cur.fetchone()


@contextmanager
def advisory_lock(
    ep: Endpoint, key: int, *, holder: str, wait: timedelta, command: str, option: str,
    poll: float = 0.1,
) -> Iterator[psycopg.Connection[Any]]:
    """Hold advisory lock `key` for the block, waiting up to `wait` for another holder; then a
    LockTimeout names it: "`holder` holds the lock on <db>: pid .. (user, since); waited ..
    (`option`)"."""
    conn = open_connection(ep, command=command, autocommit=True)
    try:
        deadline = time.monotonic() + wait.total_seconds()
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                found = lock_holder(conn, key)
                who = str(found) if found else "a session that has since ended"
                raise LockTimeout(
                    f"{holder} holds the lock on {ep.describe()}: "
                    f"{who}; waited {wait.total_seconds():g}s ({option})"
                )
            time.sleep(poll)
        try:
            yield conn
        finally:
            # A server restart in the block (apply --allow-restart) ended the session, and the
            # lock with it: nothing left to release.
            with contextlib.suppress(psycopg.OperationalError):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()
