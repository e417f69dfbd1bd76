"""Executes one migration in one direction: a single transaction, or journaled steps outside one
for statements PostgreSQL refuses inside a transaction block, resumed after a crash at the first
unfinished step. Retries statements that hit lock_timeout; cleans up invalid concurrent indexes."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus

from dbops import migration_history as history
from dbops.config.model import Retries
from dbops.errors import MigrationError, StatementFailed
from dbops.locks import LockHolder
from dbops.migrate.files import Migration, Section
from dbops.migrate.sql import Statement, split, table_key
from dbops.migration_history import Direction, Mode

if TYPE_CHECKING:
    from dbops.changes import MigrationRun
    from dbops.migrate.runstate import RunState

# Online index operations: their locks never block writes, so lock_timeout does not apply.
MAX_PAUSE = 2.0  # seconds between two attempts at most, however long the backoff has grown
# Migrations that share one message at most (run_together): progress is still reported often.
MAX_TOGETHER = 50
# Statements that only change the catalog, or tables the run made (which hold little): quick, so
# migrations made of them may share a message. A killed runner's server finishes the message it
# was sent; data statements (and anything else) run one migration a message, so it stops soon.
_SHAREABLE = frozenset({
    "CreateStmt", "AlterTableStmt", "IndexStmt", "DropStmt", "RenameStmt", "CommentStmt",
    "CreateFunctionStmt", "CreateTrigStmt", "ViewStmt", "CreateSeqStmt", "AlterSeqStmt",
    "CreateEnumStmt", "AlterEnumStmt", "CompositeTypeStmt", "CreateDomainStmt", "DefineStmt",
    "CreateExtensionStmt", "CreateSchemaStmt", "GrantStmt", "AlterOwnerStmt", "CreatePolicyStmt",
})

_CONCURRENT_KINDS = frozenset({"IndexStmt", "DropStmt", "ReindexStmt"})

# When re-running a started non-transactional step, these mean it had completed before the crash.
_ALREADY_DONE = (
    pgerrors.DuplicateTable,
    pgerrors.DuplicateObject,
    pgerrors.UndefinedObject,
    pgerrors.UndefinedTable,
    pgerrors.DuplicateDatabase,
    pgerrors.InvalidCatalogName,
)


@dataclass(frozen=True)
class Step:
    number: int
    statements: tuple[Statement, ...]
    transactional: bool
    note: str = ""  # why an online rewrite made this step

    def describe(self) -> str:
        where = "in a transaction" if self.transactional else "outside a transaction"
        return f"step {self.number} ({where}{': ' + self.note if self.note else ''})"


@dataclass(frozen=True)
class Execution:
    """What running one migration in one direction will do, statement by statement."""

    migration: Migration
    direction: Direction
    steps: tuple[Step, ...]
    # Relations made earlier in the same run (RunState.new): no session older than the run can
    # hold a lock on them, so nobody is waited for there.
    new: frozenset[str] = frozenset()

    @property
    def mode(self) -> Mode:
        return "transaction" if len(self.steps) == 1 and self.steps[0].transactional else "steps"


# Statement kinds an online rewrite may change; a migration without them runs as written.
_REWRITABLE = frozenset({"IndexStmt", "DropStmt", "ReindexStmt", "AlterTableStmt", "RenameStmt",
                         "VacuumStmt", "ClusterStmt"})


def prepare(migration: Migration, direction: Direction, *, zero_downtime: bool = False,
            state: RunState | None = None) -> Execution:
    """Split a migration's section into steps (rewritten into online steps when zero_downtime,
    judged against the run's `state`: what earlier pending migrations create needs no rewrite);
    parse errors name the file and line."""
    section: Section | None = migration.up if direction == "up" else migration.down
    assert section is not None, "callers check for a down section first"
    statements = section.statements(migration.path)
    new = state.new if state is not None and direction == "up" else frozenset()
    if zero_downtime and any(s.kind in _REWRITABLE for s in statements):
        # A rollback runs online too: a plain DROP INDEX in a down section would block the table.
        # lazy: the online-rewrite planner (analyze, strategy) only for zero-downtime runs
        from dbops.migrate.strategy import online_steps

        online = online_steps(migration, state, direction)
        if len(online) > 1 or not online[0].transactional:
            return Execution(migration, direction, tuple(
                Step(n, step.statements, step.transactional, step.note)
                for n, step in enumerate(online, start=1)), new)
    if migration.transaction and all(s.transactional for s in statements):
        return Execution(migration, direction, (Step(1, tuple(statements), True),), new)
    steps: list[Step] = []
    for statement in statements:
        joinable = (
            migration.transaction and statement.transactional and steps and steps[-1].transactional
        )
        if joinable:
            last = steps[-1]
            steps[-1] = Step(last.number, (*last.statements, statement), True)
        else:
            steps.append(Step(len(steps) + 1, (statement,), statement.transactional))
    return Execution(migration, direction, tuple(steps), new)


def from_run(run: MigrationRun, migration: Migration) -> Execution:
    """The Execution of a planned MigrationRun: exactly its steps and statements (each re-read by
    the parser for its kind and the tables it locks), for the file the plan was made from."""
    if migration.checksum != run.checksum:
        raise MigrationError(f"{migration.file} changed since the plan was made: plan again")
    steps = []
    for step in run.steps:
        statements = []
        for text, line in zip(step.statements, step.lines, strict=True):
            parsed = split(text, line)
            if len(parsed) != 1:
                raise MigrationError(f"{migration.file}:{line}: a planned step must hold one "
                                     f"statement per entry, found {len(parsed)}")
            statements.append(parsed[0])
        steps.append(Step(step.number, tuple(statements), step.transactional, step.note))
    return Execution(migration, run.direction, tuple(steps))


@dataclass(frozen=True)
class RunSettings:
    lock_timeout: timedelta
    statement_timeout: timedelta
    retries: Retries
    role: str | None = None  # the plan's migrations.role: SET ROLE for the migrations' statements


Notify = Callable[[str], None]


class Runner:
    """Runs Executions on one autocommit connection, recording each in the history."""

    def __init__(
        self, conn: psycopg.Connection[Any], settings: RunSettings, notify: Notify | None = None
    ) -> None:
        self._conn = conn
        self._settings = settings
        self._notify = notify or (lambda message: None)
        # Tables this runner created: no session older than the run can hold a lock on them.
        self._created: set[str] = set()
        self._configure_session()

    def _configure_session(self) -> None:
        s = self._settings
        self._conn.execute(
            "SELECT set_config('lock_timeout', %s, false),"
            " set_config('statement_timeout', %s, false)",
            (_ms(s.lock_timeout), _ms(s.statement_timeout)),
        )
        if self._conn.info.server_version >= 140000:
            # A killed runner's backend stops a long statement (say an index build) within a second.
            self._conn.execute("SET client_connection_check_interval = '1s'")

    def run(self, execution: Execution, journal: dict[int, str]) -> float:
        """Apply (or revert) one migration; returns its duration in milliseconds."""
        started = time.perf_counter()
        if execution.mode == "transaction":
            self._retrying(execution, lambda: self._in_transaction(execution, started),
                           execution.steps[0].statements)
        else:
            for step in execution.steps:
                if journal.get(step.number) == "done":
                    self._notify(f"{execution.migration}: {step.describe()} already done, skipped")
                    continue
                if step.transactional:
                    self._retrying(execution, partial(self._transactional_step, execution, step),
                                   step.statements)
                else:
                    resumed = journal.get(step.number) == "started"
                    self._retrying(
                        execution, partial(self._outside_step, execution, step, resumed=resumed),
                        step.statements,
                    )
            self._finish_steps(execution, started)
        return (time.perf_counter() - started) * 1000

    def together(self, executions: Sequence[Execution]) -> int:
        """How many of the leading `executions` can share one message (run_together): up
        migrations that run as one transaction of shareable statements (_SHAREABLE) and wait
        for nobody (every table they lock is new to the run or made by them), at most
        MAX_TOGETHER."""
        made: set[str] = set()
        count = 0
        for execution in executions[:MAX_TOGETHER]:
            if (execution.direction != "up" or execution.mode != "transaction"
                    or execution.migration.expand is not None):
                break
            statements = execution.steps[0].statements
            if (any(s.kind not in _SHAREABLE for s in statements)
                    or self._waited_for(execution, statements, made)):
                break
            made |= _made(statements)
            count += 1
        return count

    def run_together(self, executions: Sequence[Execution]) -> list[float]:
        """Run `executions` (as `together` allows) in one message, each still in its own
        transaction with its history row, as psql -v ON_ERROR_STOP=1 runs a file: a failing one
        is rolled back and the ones after it are not run. Returns the durations (ms) of those
        that committed, in order: fewer than given when one failed, which the caller then runs
        alone, to retry it or to name its failing statement. A long history applies to a new
        database in a few round trips instead of one a migration."""
        durations: list[float] = []
        try:
            cursor = self._send(";\n".join(self._one_message(e) for e in executions))
            while True:  # each history row's RETURNING, in order (the DDL returns no rows)
                if cursor.description and cursor.description[0].name == history.RECORDED:
                    durations += [float(row[0]) for row in cursor.fetchall()]
                if not cursor.nextset():
                    break
        except psycopg.Error:
            recorded = dict(self._conn.execute(
                "SELECT version, duration_ms FROM dbops.migration_history WHERE version = ANY(%s)",
                ([e.migration.version for e in executions],)).fetchall())
            durations = [float(recorded[e.migration.version]) for e in
                         itertools.takewhile(lambda e: e.migration.version in recorded,
                                             executions)]
        for execution in executions[:len(durations)]:
            self._created |= _made(execution.steps[0].statements)
        return durations

    def _in_transaction(self, execution: Execution, started: float) -> None:
        """The whole migration and its history row in one message (one round trip); on any
        error, rolled back and run again statement by statement to name the failing one."""
        try:
            self._send(self._one_message(execution))
        except psycopg.Error:
            self._statement_by_statement(execution, started)

    def _one_message(self, execution: Execution) -> str:
        migration = execution.migration
        bookkeeping = (
            history.record_query(version=migration.version, name=migration.name,
                                 checksum=migration.checksum, duration_ms=None, mode="transaction")
            if execution.direction == "up" else history.forget_query(migration.version))
        body = "".join(f"{s.terminated}\n" for s in execution.steps[0].statements)
        role = self._settings.role
        if role is not None:  # the bookkeeping after RESET ROLE: see _as_owner
            owner = pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role))
            body = f"{owner.as_string(self._conn)};\n{body}RESET ROLE;\n"
        start = f"{history.MARK_START};\n" if execution.direction == "up" else ""
        return f"BEGIN;\n{start}{body}{bookkeeping.as_string(self._conn)};\nCOMMIT"

    def _statement_by_statement(self, execution: Execution, started: float) -> None:
        with self._conn.transaction():
            for statement in execution.steps[0].statements:
                self._execute(execution, statement)
            self._finish(execution, started)

    def _finish(self, execution: Execution, started: float) -> None:
        migration = execution.migration
        if execution.direction == "up":
            history.record(
                self._conn,
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
                mode=execution.mode,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        else:
            history.forget(self._conn, migration.version)

    def _finish_steps(self, execution: Execution, started: float) -> None:
        """The history row and the journal's end, in one transaction sent as one message."""
        migration = execution.migration
        row = (history.record_query(version=migration.version, name=migration.name,
                                    checksum=migration.checksum, mode="steps",
                                    duration_ms=(time.perf_counter() - started) * 1000)
               if execution.direction == "up" else history.forget_query(migration.version))
        clear = history.journal_clear_query(migration.version)
        self._send(f"BEGIN;\n{row.as_string(self._conn)};\n{clear.as_string(self._conn)};\nCOMMIT")

    def _send(self, message: str) -> psycopg.Cursor[Any]:
        """Send a message of explicit transactions; on an error, the one it left open is rolled
        back before the error is raised."""
        try:
            return self._conn.execute(message, prepare=False)
        except psycopg.Error:
            if self._conn.info.transaction_status != TransactionStatus.IDLE:
                self._conn.execute("ROLLBACK")
            raise

    def _transactional_step(self, execution: Execution, step: Step) -> None:
        version = execution.migration.version
        with self._conn.transaction():
            history.journal_start(
                self._conn, version, execution.direction, step.number, step.statements[0].summary
            )
            for statement in step.statements:
                self._execute(execution, statement)
            history.journal_done(self._conn, version, execution.direction, step.number)

    def _outside_step(self, execution: Execution, step: Step, *, resumed: bool) -> None:
        version, statement = execution.migration.version, step.statements[0]
        with self._concurrent(statement):
            if self._index_already_built(execution, statement) and resumed:
                self._notify(f"{execution.migration}: {step.describe()} had completed before "
                             "the interruption")
            else:
                history.journal_start(
                    self._conn, version, execution.direction, step.number, statement.summary
                )
                try:
                    self._execute(execution, statement)
                except StatementFailed as failure:
                    if not (resumed and isinstance(failure.__cause__, _ALREADY_DONE)):
                        self._drop_invalid_index(execution, statement)
                        raise
                    self._notify(f"{execution.migration}: {step.describe()} had completed before "
                                 "the interruption")
        history.journal_done(self._conn, version, execution.direction, step.number)

    @contextmanager
    def _concurrent(self, statement: Statement) -> Iterator[None]:
        """A CONCURRENTLY build or drop never blocks the application's writes (its lock does not
        conflict with them), but waits for older transactions' snapshots: lock_timeout would only
        make it fail, so it runs without one (statement_timeout still bounds it)."""
        online = statement.kind in _CONCURRENT_KINDS and not statement.transactional
        if online:
            self._conn.execute("SET lock_timeout = 0")
        try:
            yield
        finally:
            if online:
                self._conn.execute("SELECT set_config('lock_timeout', %s, false)",
                                   (_ms(self._settings.lock_timeout),))

    def _index_already_built(self, execution: Execution, statement: Statement) -> bool:
        """For an online index build: True when a valid index exists; an INVALID one, left by an
        interrupted or failed build, is dropped first (IF NOT EXISTS would keep it)."""
        if statement.index is None:
            return False
        row = self._conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (_qualified(statement.index),),
        ).fetchone()
        if row is None:
            return False
        if row[0]:
            return True
        self._drop_invalid_index(execution, statement)
        return False

    def _drop_invalid_index(self, execution: Execution, statement: Statement) -> None:
        if statement.index is None:
            return
        name = _qualified(statement.index)
        row = self._conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
        ).fetchone()
        if row is not None and not row[0]:
            self._notify(f"dropping INVALID index {name} left by a failed concurrent build")
            schema, index = statement.index
            target = pgsql.Identifier(schema, index) if schema else pgsql.Identifier(index)
            drop = pgsql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(target)
            self._execute(execution, Statement(drop.as_string(None), statement.line, "DropStmt",
                                               False))

    @contextmanager
    def _as_owner(self) -> Iterator[None]:
        """The migration's own statements run as the plan's migrations.role, so what they create
        belongs to the application's owner role. The bookkeeping (history, journal, credit) runs
        after RESET ROLE, as the connecting role that owns schema dbops: the owner role needs no
        rights there, and the application's role cannot rewrite the migration history."""
        role = self._settings.role
        if role is None:
            yield
            return
        self._conn.execute(pgsql.SQL("SET ROLE {}").format(pgsql.Identifier(role)))
        try:
            yield
        finally:
            # In a failed transaction the ROLLBACK that follows undoes the SET ROLE itself.
            if self._conn.info.transaction_status != TransactionStatus.INERROR:
                self._conn.execute("RESET ROLE")

    def _execute(self, execution: Execution, statement: Statement) -> None:
        try:
            with self._as_owner():
                self._conn.execute(statement.text, prepare=False)
        except psycopg.Error as exc:
            raise StatementFailed(
                file=execution.migration.file,
                line=statement.line,
                statement=statement.summary,
                sqlstate=exc.sqlstate,
                reason=_first_line(exc),
            ) from exc

    def _retrying(self, execution: Execution, action: Callable[[], None],
                  statements: tuple[Statement, ...]) -> None:
        """Run `action`, waiting out lock blockers: a long transaction already holding a lock on
        the tables is waited for before the DDL asks for its lock (so the DDL never sits in the
        lock queue in front of the application's writes); a lock_timeout is retried with
        exponential backoff and jitter; when the attempts run out, the blockers are named."""
        retries = self._settings.retries
        delay = retries.backoff.total_seconds()
        tables = self._waited_for(execution, statements)
        first = statements[0] if statements else None
        for attempt in range(1, retries.attempts + 1):
            blockers = self._blockers(tables)
            try:
                if blockers:
                    raise StatementFailed(
                        file=execution.migration.file, line=first.line if first else 0,
                        statement=first.summary if first else "", sqlstate="55P03",
                        reason=f"waiting for {blockers[0]}")
                action()
                self._created |= _made(statements)
                return
            except StatementFailed as failure:
                lock_wait = bool(blockers) or isinstance(failure.__cause__, pgerrors.LockNotAvailable)
                if not lock_wait:
                    raise
                if attempt == retries.attempts:
                    named = blockers or self._blockers(tables, any_age=True)
                    who = f"; blocked by {named[0]}" if named else ""
                    raise StatementFailed(
                        file=failure.file, line=failure.line, statement=failure.statement,
                        sqlstate="55P03",
                        reason=f"no lock after {attempt} attempts (lock_timeout "
                               f"{_ms(self._settings.lock_timeout)}){who}") from failure.__cause__
                # Jitter, so runners do not retry in step; a cap, so a released blocker is noticed.
                pause = min(delay, MAX_PAUSE) * random.uniform(1.0, 1.25)
                self._notify(f"{execution.migration}: {failure.reason} at {failure.file}:"
                             f"{failure.line}, retry {attempt}/{retries.attempts - 1} in {pause:.1f}s")
                time.sleep(pause)
                delay *= 2

    def _waited_for(self, execution: Execution, statements: tuple[Statement, ...],
                    made: set[str] | frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The tables these statements lock that a session older than the run may hold: not
        those the run made (`made`: by migrations about to run before them), nor those the
        statements create themselves (CREATE TABLE, then its index: nobody else's yet)."""
        known = self._created | execution.new | made | _made(statements)
        return tuple(dict.fromkeys(r for s in statements for r in _locked_tables(s)
                                   if table_key(r) not in known))

    def _blockers(self, tables: tuple[str, ...], *, any_age: bool = False) -> list[str]:
        """Sessions holding a lock on these tables inside a transaction older than lock_timeout,
        as a waiting step names them (LockHolder.blocking)."""
        if not tables:
            return []
        age = "0" if any_age else _ms(self._settings.lock_timeout)
        rows = self._conn.execute(
            "SELECT DISTINCT a.pid, a.application_name, a.xact_start, a.usename::text,"
            " a.client_addr::text, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60),"
            " a.query_start"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.granted AND l.relation IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t)"
            " AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL"
            " AND now() - a.xact_start > %s::interval ORDER BY a.xact_start",
            (list(tables), age)).fetchall()
        return [LockHolder(*row).blocking() for row in rows]


def _locked_tables(statement: Statement) -> tuple[str, ...]:
    """Existing tables a statement locks and may queue behind: none for an online index step
    (it queues nobody) and, for CREATE TABLE, only the tables it references."""
    if statement.kind in _CONCURRENT_KINDS and not statement.transactional:
        return ()
    if statement.kind == "CreateStmt":
        return statement.relations[1:]
    return statement.relations


def _made(statements: tuple[Statement, ...]) -> set[str]:
    """The tables these statements create (a CREATE TABLE IF NOT EXISTS may find an old one)."""
    return {table_key(s.creates) for s in statements if s.creates}


def _first_line(exc: psycopg.Error) -> str:
    """The server's message, with its detail when it names the rows (a duplicated key)."""
    text = exc.diag.message_primary or str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    detail = exc.diag.message_detail
    return f"{first}: {detail.splitlines()[0]}" if detail else first


def _qualified(index: tuple[str | None, str]) -> str:
    schema, name = index
    quoted = pgsql.Identifier(name).as_string(None)
    return f"{pgsql.Identifier(schema).as_string(None)}.{quoted}" if schema else quoted


def _ms(value: timedelta) -> str:
    return f"{int(value.total_seconds() * 1000)}ms"
