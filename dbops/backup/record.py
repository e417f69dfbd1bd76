"""The backup catalog's copy in the target database (`dbops.backup_catalog`), so that where the
backup directory cannot be reached (a CI runner) plan and drift still judge the backups.

The directory's manifests stay the truth: after each change to them (create, verify, prune,
restore) the rows of this environment and this directory are made equal to them. A row keeps
the whole manifest (checksums, verifications) and, in columns, what one looks for: id, time,
reason, size, whether its latest verification passed, when a restore test last ran, and where
the backup is stored (`host:directory`).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dbops.backup.manifest import Manifest


def location(directory: Path) -> str:
    """Where this machine keeps the backups of `directory`: `host:/absolute/directory`."""
    return f"{socket.gethostname()}:{directory.resolve()}"


def sync(conn: psycopg.Connection[Any], environment: str, directory: Path,
         manifests: Sequence[Manifest]) -> None:
    """Make the environment's rows for `directory` equal to its `manifests` (one transaction;
    the dbops schema is up to date)."""
    where = location(directory)
    rows = [(m.id, environment, where, m.started_at, m.reason, m.size,
             None if m.last_check is None else m.last_check.ok,
             m.restore_test.at if m.restore_test else None, Jsonb(m.to_dict()))
            for m in manifests]
    with conn.transaction(), conn.cursor() as cursor:
        # One batch (psycopg pipelines executemany), not a round trip per backup.
        cursor.executemany(
            "INSERT INTO dbops.backup_catalog (id, environment, location, started_at, reason,"
            " size, verified, restore_tested_at, manifest) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " environment = excluded.environment, location = excluded.location,"
            " started_at = excluded.started_at, reason = excluded.reason,"
            " size = excluded.size, verified = excluded.verified,"
            " restore_tested_at = excluded.restore_tested_at,"
            " manifest = excluded.manifest, recorded_at = now()", rows)
        conn.execute("DELETE FROM dbops.backup_catalog WHERE environment = %s AND location = %s"
                     " AND NOT id = ANY(%s)", (environment, where, [m.id for m in manifests]))


def read(conn: psycopg.Connection[Any], environment: str) -> list[Manifest] | None:
    """The environment's recorded backups, oldest first; None when no dbops has recorded any
    here (no table yet)."""
    row = conn.execute("SELECT to_regclass('dbops.backup_catalog') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    rows = conn.execute("SELECT location, manifest FROM dbops.backup_catalog"
                        " WHERE environment = %s ORDER BY started_at, id",
                        (environment,)).fetchall()
    found = []
    for where, data in rows:
        try:
            found.append(Manifest.from_dict(data, Path(where.partition(":")[2]) / data["id"]))
        except (ValueError, KeyError, TypeError):
            continue  # a row some other dbops wrote in a format this one does not read
    return found
