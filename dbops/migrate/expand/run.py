"""Where the migration engine meets expand/contract: run a YAML migration's expand (and, with
`migrations.complete: auto`, its complete), refuse new migrations while one is expanded, and
finish (complete or abort) the expansions in flight."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import psycopg

from dbops.errors import MigrationError
from dbops.migrate.expand import state
from dbops.migrate.expand.phases import Phases

if TYPE_CHECKING:
    from dbops.migrate.files import Migration, MigrationSet
    from dbops.migrate.runner import RunSettings

Notify = Callable[[str], None]


def expand(conn: psycopg.Connection[Any], settings: RunSettings, migration: Migration,
           complete: Literal["auto", "manual"], notify: Notify | None,
           max_lag: timedelta | None = None) -> float:
    """Expand one YAML migration (resuming a killed expansion), its backfill held while a
    replica lags more than `max_lag`; returns milliseconds."""
    phases = Phases(conn, settings, notify, max_lag=max_lag)
    duration = phases.expand(migration)
    if complete == "auto":
        phases.complete(migration)
    elif notify is not None:
        spec = migration.expand
        assert spec is not None
        notify(f"{migration}: expanded; new clients use search_path "
               f"{spec.version_schema(migration.version)}; when every client does, run "
               "`dbops migrate complete` (or `dbops migrate abort` to undo it)")
    return duration


def finish(conn: psycopg.Connection[Any], migrations: MigrationSet, phase: str,
           settings: RunSettings, notify: Notify | None) -> list[Migration]:
    """Complete (or abort) every expansion in flight, oldest first; idempotent."""
    phases = Phases(conn, settings, notify)
    done: list[Migration] = []
    for e in state.in_flight(conn):
        migration = migrations.get(e.version)
        if migration is None or migration.expand is None:
            raise MigrationError(f"expansion {e.version} {e.name} has no YAML migration file: "
                                 "restore the file to complete or abort it")
        if phase == "complete":
            phases.complete(migration)
        else:
            phases.abort(migration)
        done.append(migration)
    return done
