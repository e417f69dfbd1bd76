"""The state of expansions in the target database (table dbops.expansion, created by
dbops.ledger): which phase each YAML migration reached and where its backfill stands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from dbops.errors import MigrationError

Phase = Literal["expanding", "expanded", "completed"]


@dataclass(frozen=True)
class Backfill:
    """One table's backfill: the last primary key done (keyset position), rows done, rows
    estimated in all, and whether it finished."""

    position: str | None = None
    done: int = 0
    total: int = 0
    finished: bool = False


@dataclass(frozen=True)
class Expansion:
    version: str
    name: str
    base_schema: str
    phase: Phase
    started_at: datetime
    expanded_at: datetime | None
    completed_at: datetime | None
    backfill: dict[str, Any] = field(default_factory=dict)

    def table_backfill(self, table: str) -> Backfill:
        raw = self.backfill.get(table)
        return Backfill(**raw) if isinstance(raw, dict) else Backfill()

    @property
    def next_phase(self) -> str:
        return {"expanding": "expand (resume: dbops migrate up)",
                "expanded": "complete (dbops migrate complete) or abort (dbops migrate abort)",
                "completed": "none"}[self.phase]

    def progress(self) -> str:
        """'tasks 1200/5000 rows' per table, or 'no backfill'."""
        parts = []
        for table in sorted(self.backfill):
            fill = self.table_backfill(table)
            shown = "done" if fill.finished else f"{fill.done}/{max(fill.total, fill.done)} rows"
            parts.append(f"{table} {shown}")
        return ", ".join(parts) or "no backfill"


def exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('dbops.expansion') IS NOT NULL").fetchone()
    return bool(row and row[0])


def read(conn: psycopg.Connection[Any]) -> list[Expansion]:
    """Every expansion not yet completed, and the completed ones whose version schema remains,
    oldest first (empty before first use)."""
    if not exists(conn):
        return []
    with conn.cursor(row_factory=class_row(Expansion)) as cur:
        cur.execute("SELECT version, name, base_schema, phase, started_at, expanded_at,"
                    " completed_at, backfill FROM dbops.expansion ORDER BY version")
        return cur.fetchall()


def in_flight(conn: psycopg.Connection[Any]) -> list[Expansion]:
    return [e for e in read(conn) if e.phase != "completed"]


def get(conn: psycopg.Connection[Any], version: str) -> Expansion | None:
    return next((e for e in read(conn) if e.version == version), None)


def start(conn: psycopg.Connection[Any], version: str, name: str, schema: str) -> None:
    conn.execute("INSERT INTO dbops.expansion (version, name, base_schema, phase)"
                 " VALUES (%s, %s, %s, 'expanding')", (version, name, schema))


def record_backfill(conn: psycopg.Connection[Any], version: str, table: str,
                    fill: Backfill) -> None:
    conn.execute("UPDATE dbops.expansion SET backfill = jsonb_set(backfill, %s, %s)"
                 " WHERE version = %s",
                 ([table], Jsonb(fill.__dict__), version))


def set_phase(conn: psycopg.Connection[Any], version: str, phase: Phase) -> None:
    column = {"expanded": "expanded_at", "completed": "completed_at"}.get(phase)
    if column == "expanded_at":
        conn.execute("UPDATE dbops.expansion SET phase = %s, expanded_at = now()"
                     " WHERE version = %s", (phase, version))
    elif column == "completed_at":
        conn.execute("UPDATE dbops.expansion SET phase = %s, completed_at = now()"
                     " WHERE version = %s", (phase, version))
    else:
        conn.execute("UPDATE dbops.expansion SET phase = %s WHERE version = %s",
                     (phase, version))


def forget(conn: psycopg.Connection[Any], version: str) -> None:
    conn.execute("DELETE FROM dbops.expansion WHERE version = %s", (version,))


def check_none_in_flight(conn: psycopg.Connection[Any], next_version: str) -> None:
    """Refuse to run migrations while an expansion waits for complete or abort (only the one
    being resumed may be in flight)."""
    for e in in_flight(conn):
        if e.phase == "expanded" or e.version != next_version:
            raise MigrationError(
                f"migration {e.version} {e.name} is {e.phase} (expand/contract in flight): run "
                "`dbops migrate complete` or `dbops migrate abort` before further migrations"
                if e.phase == "expanded" else
                f"migration {e.version} {e.name} was interrupted while expanding: run "
                "`dbops migrate up` with it as the next migration, or `dbops migrate abort`")
