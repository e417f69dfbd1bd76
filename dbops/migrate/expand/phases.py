"""The three phases of an expand/contract migration on one autocommit connection: expand (new
columns, triggers, backfill, constraints, indexes, version schema), complete (contract into the
new shape) and abort (back to the old shape). Each is resumable after a crash and idempotent."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from dbops import migration_history as history
from dbops.errors import MigrationError
from dbops.migrate.expand import ddl, state
from dbops.migrate.expand.ddl import LiveColumn, LiveTable, TableLayout
from dbops.migrate.expand.model import CreateIndex, ExpandSpec, RawSql
from dbops.progress import step as progress_step

if TYPE_CHECKING:
    from dbops.migrate.files import Migration
    from dbops.migrate.runner import RunSettings

Notify = Callable[[str], None]
_T = TypeVar("_T")
Query = sql.SQL | sql.Composed
_REPORT_EVERY = 5.0  # seconds between two backfill progress lines


def spec_of(migration: Migration) -> ExpandSpec:
    assert migration.expand is not None, "only YAML migrations expand"
    return migration.expand


def live_tables(conn: psycopg.Connection[Any], schema: str) -> dict[str, LiveTable]:
    """Every ordinary table of `schema` with its columns (dbops's temporary ones left out) and its
    single-column primary key."""
    rows = conn.execute("""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               coalesce((SELECT i.indisprimary AND i.indnatts = 1 FROM pg_index i
                         WHERE i.indrelid = c.oid AND i.indisprimary
                           AND a.attnum = ANY (i.indkey)), false)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname, a.attnum""", (schema,)).fetchall()
    columns: dict[str, list[LiveColumn]] = {}
    keys: dict[str, str] = {}
    for table, column, type_, is_key in rows:
        if column.startswith("_dbops_"):
            continue
        columns.setdefault(table, []).append(LiveColumn(column, type_))
        if is_key:
            keys[table] = column
    return {t: LiveTable(t, tuple(cols), keys.get(t)) for t, cols in columns.items()}


def grants(conn: psycopg.Connection[Any], schema: str) -> tuple[ddl.Grant, ...]:
    """The privileges granted on `schema` and its tables (PUBLIC as None)."""
    rows = conn.execute("""
        SELECT NULL, nullif(a.grantee, 0), a.privilege_type
        FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = %s
        UNION ALL
        SELECT c.relname, nullif(a.grantee, 0), a.privilege_type
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p')""", (schema, schema)).fetchall()
    names = dict(conn.execute("SELECT oid, rolname FROM pg_roles").fetchall())
    return tuple(ddl.Grant(table, names.get(grantee) if grantee else None, privilege)
                 for table, grantee, privilege in rows)


def layouts(conn: psycopg.Connection[Any], migration: Migration) -> dict[str, TableLayout]:
    spec = spec_of(migration)
    try:
        return ddl.layout(spec, live_tables(conn, spec.schema))
    except ValueError as exc:
        raise MigrationError(f"{migration.file}: {exc}") from None


class Phases:
    """Runs the phases of YAML migrations on one autocommit connection (the runner's)."""

    def __init__(self, conn: psycopg.Connection[Any], settings: RunSettings,
                 notify: Notify | None = None, *, max_lag: timedelta | None = None) -> None:
        self._conn = conn
        self._settings = settings
        self._notify = notify or (lambda message: None)
        self._max_lag = max_lag  # the backfill waits while a replica lags more than this
        # (monotonic seconds, primary WAL position) as seen before each batch: when a replica's
        # replay position was first passed (health.replication.LsnTimeline's reasoning; migrate
        # may not import health).
        self._seen: deque[tuple[float, int]] = deque(maxlen=4096)

    def expand(self, migration: Migration) -> float:
        """Expand (or resume expanding) one migration; returns its duration in milliseconds.
        A failure other than a crash undoes the expansion, so old clients never see a half."""
        started = time.perf_counter()
        spec = spec_of(migration)
        current = state.get(self._conn, migration.version)
        if current is not None and current.phase != "expanding":
            return 0.0
        tables = layouts(self._conn, migration)
        try:
            if current is None:
                self._preflight(migration, tables)
                self._yield_autovacuum(spec.schema, list(tables))
                self._transaction(self._start_statements(migration, spec, tables),
                                  before=lambda: state.start(self._conn, migration.version,
                                                             migration.name, spec.schema))
            else:
                self._notify(f"{migration}: resuming the expansion started at "
                             f"{current.started_at:%Y-%m-%d %H:%M:%S}")
            for t in tables.values():
                if t.needs_backfill:
                    self._backfill(migration, spec, t)
            for t in tables.values():
                for statement in ddl.validate(t):
                    self._retrying(partial(self._run, statement))
                for name, create in ddl.indexes(t, spec):
                    self._concurrent_index(t.schema, name, create)
            self._publish(migration, spec, tables)
        except (psycopg.Error, MigrationError) as exc:
            if isinstance(exc, psycopg.OperationalError) and self._conn.closed:
                raise
            message = exc.diag.message_primary if isinstance(exc, psycopg.Error) else str(exc)
            self._notify(f"{migration}: expand failed ({message}); undoing it")
            self.abort(migration)
            raise MigrationError(f"{migration.file}: expand failed, nothing changed for old "
                                 f"clients: {message}") from None
        return (time.perf_counter() - started) * 1000

    def complete(self, migration: Migration) -> None:
        """Contract an expanded migration into its new shape, in one transaction; earlier
        completed version schemas go (their views would hold the old columns)."""
        current = state.get(self._conn, migration.version)
        if current is None or current.phase == "completed":
            return
        if current.phase != "expanded":
            raise MigrationError(f"{migration}: the expansion is not finished: run "
                                 "`dbops migrate up` to resume it, or abort it")
        tables = layouts(self._conn, migration)
        older = [e for e in state.read(self._conn)
                 if e.phase == "completed" and e.version != migration.version]

        def before() -> None:
            for e in older:
                self._conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(f"{e.base_schema}_{e.version}")))
                state.forget(self._conn, e.version)

        statements = [s for t in tables.values() for s in ddl.contract(t, migration.version)]
        self._yield_autovacuum(spec_of(migration).schema, list(tables))
        self._transaction(statements, before=before,
                          after=lambda: state.set_phase(self._conn, migration.version,
                                                        "completed"))

    def abort(self, migration: Migration) -> None:
        """Undo an expansion at any point before complete: drop the version schema, triggers,
        new columns and indexes, run the sql operations' `down`, forget it in the history."""
        spec = spec_of(migration)
        current = state.get(self._conn, migration.version)
        if current is not None and current.phase == "completed":
            raise MigrationError(f"{migration}: already completed; nothing to abort")
        tables = layouts(self._conn, migration)
        statements: list[Query] = [
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(spec.version_schema(migration.version)))]
        for t in tables.values():
            statements += ddl.undo(t, migration.version)
        statements += [sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(spec.schema,
                                                                                op.name))
                       for op in spec.operations if isinstance(op, CreateIndex)]
        if current is not None:
            statements += [sql.SQL(op.down) for op in reversed(spec.operations)
                           if isinstance(op, RawSql) and op.down is not None]

        self._yield_autovacuum(spec.schema, list(tables))

        def after() -> None:
            history.forget(self._conn, migration.version)
            history.journal_clear(self._conn, migration.version)
            state.forget(self._conn, migration.version)

        self._transaction(statements, after=after)

    def _start_statements(self, migration: Migration, spec: ExpandSpec,
                          tables: dict[str, TableLayout]) -> list[Query]:
        out: list[Query] = [sql.SQL(op.up) for op in spec.operations
                                     if isinstance(op, RawSql)]
        for t in tables.values():
            out += ddl.add_columns(t)
            if t.needs_trigger:
                out += ddl.trigger(t, migration.version, spec.version_schema(migration.version))
        return out

    def _preflight(self, migration: Migration, tables: dict[str, TableLayout]) -> None:
        for t in tables.values():
            if t.needs_backfill and t.key is None:
                raise MigrationError(f"{migration.file}: table {t.table} has no single-column "
                                     "primary key to backfill by")
            if t.needs_trigger:
                with self._conn.transaction():
                    self._conn.execute("SET TRANSACTION READ ONLY")
                    self._conn.execute("SET LOCAL statement_timeout = 0")
                    self._conn.execute(ddl.preflight(t))

    def _backfill(self, migration: Migration, spec: ExpandSpec, t: TableLayout) -> None:
        current = state.get(self._conn, migration.version)
        fill = current.table_backfill(t.table) if current else state.Backfill()
        if fill.finished:
            return
        if fill.total == 0:
            row = self._conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class "
                                     "WHERE oid = %s::regclass",
                                     (t.ident.as_string(None),)).fetchone()
            fill = state.Backfill(fill.position, fill.done, int(row[0]) if row else 0)
        reported = time.monotonic()
        pause = spec.batch_pause.total_seconds()
        with progress_step(f"backfill {t.schema}.{t.table} ({migration.version})"):
            while True:
                self._wait_for_replicas()
                count, last = self._retrying(partial(self._batch, migration, spec, t, fill))
                fill = state.Backfill(last or fill.position, fill.done + count, fill.total,
                                      count == 0)
                if count == 0:
                    break
                if time.monotonic() - reported > _REPORT_EVERY:
                    reported = time.monotonic()
                    self._notify(f"{migration}: backfill {t.table}: {fill.done}/"
                                 f"{max(fill.total, fill.done)} rows")
                if pause:
                    time.sleep(pause)

    def _yield_autovacuum(self, schema: str, tables: list[str]) -> None:
        """Cancel an autovacuum of these tables before taking their ACCESS EXCLUSIVE lock, as
        PostgreSQL would after deadlock_timeout, but without the application's writes queued
        behind the waiting DDL meanwhile (after a backfill, autovacuum is all but certain). A
        vacuum against wraparound is left alone; without the right to signal it, the lock is
        waited for as usual."""
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            self._conn.execute(
                "SELECT pg_cancel_backend(a.pid) FROM pg_stat_activity a"
                " WHERE a.backend_type = 'autovacuum worker'"
                " AND a.query NOT LIKE '%%to prevent wraparound%%'"
                " AND a.pid IN (SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = ANY (%s))", (schema, tables))

    def _wait_for_replicas(self) -> None:
        """Hold the backfill while a streaming replica replays more than max_lag behind (the
        health threshold), so its writes never push the replicas past it. The lag is judged as
        the health check judges it: zero when replay has caught up, else the larger of
        PostgreSQL's replay_lag and how long ago the primary was first seen past the replay
        position (replay_lag alone stands still while replay is stuck)."""
        if self._max_lag is None:
            return
        limit = self._max_lag.total_seconds()
        told = 0.0
        while True:
            row = self._conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
                " (SELECT min(pg_wal_lsn_diff(replay_lsn, '0/0'))::bigint"
                "  FROM pg_stat_replication),"
                " (SELECT max(extract(epoch FROM replay_lag))::float8 FROM pg_stat_replication)"
            ).fetchone()
            if row is None or row[1] is None:
                return  # no replica streams from this server
            now = time.monotonic()
            current, replayed, measured = int(row[0]), int(row[1]), row[2]
            self._seen.append((now, current))
            if replayed >= current:
                return
            passed = next((at for at, lsn in self._seen if lsn > replayed), now)
            lag = max(float(measured or 0.0), now - passed)
            if lag <= limit:
                return
            if now - told > 30:
                told = now
                self._notify(f"backfill paused: a replica replays {lag:.1f}s behind "
                             f"(limit {limit:.0f}s, health.thresholds.replication_lag)")
            time.sleep(0.5)

    def _batch(self, migration: Migration, spec: ExpandSpec, t: TableLayout,
               fill: state.Backfill) -> tuple[int, str | None]:
        """One backfill batch and its keyset position, committed together."""
        with self._conn.transaction():
            row = self._conn.execute(
                ddl.backfill_batch(t, fill.position, spec.batch_size)).fetchone()
            count, last = (int(row[0]), row[1]) if row else (0, None)
            state.record_backfill(self._conn, migration.version, t.table,
                                  state.Backfill(last or fill.position, fill.done + count,
                                                 fill.total, count == 0))
        return count, last

    def _concurrent_index(self, schema: str, name: str, create: sql.Composed) -> None:
        row = self._conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
            " AND c.relname = %s", (schema, name)).fetchone()
        if row is not None and row[0]:
            return
        if row is not None:  # a build a crash left INVALID
            self._conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(schema, name)))
        self._retrying(lambda: self._conn.execute(create))

    def _publish(self, migration: Migration, spec: ExpandSpec,
                 tables: dict[str, TableLayout]) -> None:
        version_schema = spec.version_schema(migration.version)
        live = live_tables(self._conn, spec.schema)
        statements: list[Query] = [
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(version_schema)),
            *ddl.version_views(spec, version_schema, tables, live,
                               self._conn.info.server_version >= 150000,
                               grants(self._conn, spec.schema))]

        def after() -> None:
            history.record(self._conn, version=migration.version, name=migration.name,
                           checksum=migration.checksum, duration_ms=None, mode="steps")
            state.set_phase(self._conn, migration.version, "expanded")

        self._transaction(statements, after=after)

    def _run(self, statement: Query) -> None:
        self._conn.execute(statement)

    def _transaction(self, statements: Sequence[Query], *,
                     before: Callable[[], None] | None = None,
                     after: Callable[[], None] | None = None) -> None:
        role = self._settings.role

        def run() -> None:
            with self._conn.transaction():
                if before:
                    before()
                if role is not None:  # what the migration creates belongs to the owner role
                    self._conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                for statement in statements:
                    self._conn.execute(statement)
                if role is not None:  # the bookkeeping runs as the connecting role
                    self._conn.execute("RESET ROLE")
                if after:
                    after()

        self._retrying(run)

    def _retrying(self, work: Callable[[], _T]) -> _T:
        """Run `work`, again after a lock_timeout, with the plan's backoff and attempts."""
        retries = self._settings.retries
        wait = retries.backoff.total_seconds()
        for attempt in range(1, retries.attempts + 1):
            try:
                return work()
            except pgerrors.LockNotAvailable:
                if attempt == retries.attempts:
                    raise
                self._notify(f"lock_timeout, retrying in {wait:.1f}s "
                             f"(attempt {attempt + 1}/{retries.attempts})")
                time.sleep(wait)
                wait = min(wait * 2, 30.0)
        raise AssertionError("unreachable")
