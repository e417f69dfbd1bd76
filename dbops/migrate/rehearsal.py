"""Pre- and post-validation around a migration run. The rehearsal applies the pending migrations to
a scratch database made from the target's schema (pg_dump --schema-only), so a syntax or reference
error is found before the target is touched; post-validation checks what the run left behind."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import psycopg
from psycopg import sql

from dbops import ledger
from dbops.connect import Endpoint, libpq_environment, mask, open_connection, with_database
from dbops.errors import MigrationError, StatementFailed
from dbops.migrate.runner import Execution, Notify, Runner, RunSettings
from dbops.pgbin import find_bindir
from dbops.schema_facts import has_objects


def _environment(ep: Endpoint) -> dict[str, str]:
    """The password reaches pg_dump and psql through the environment, never the command line;
    the plan's TLS settings too, and nothing else of dbops' environment."""
    return libpq_environment(ep, "migrate-rehearsal")


NOT_REHEARSED = "not rehearsed: the database has no objects yet, the run itself is the rehearsal"


def rehearse(ep: Endpoint, executions: tuple[Execution, ...], settings: RunSettings,
             notify: Notify, *, always: bool = False,
             session: psycopg.Connection[Any] | None = None) -> None:
    """Apply `executions` to a throwaway copy of the target's schema; raise MigrationError naming
    the failing statement, the target untouched. The copy is always dropped.

    A target with no objects yet (no table, view, sequence, function or type outside the system
    schemas and dbops') is not rehearsed unless `always`: its copy would be the same empty
    database, so the run itself is the rehearsal, and there are no rows or sessions a failure
    could hurt; a failing migration rolls back (or stops at a journaled step that the next run
    resumes), the ones before it stay applied, exactly what the copy would have shown.
    `session`, the caller's connection to the target, answers that question without a new one."""
    if not always and session is not None and not has_objects(session):
        notify(NOT_REHEARSED)
        return
    prefix = f"dbops_rehearsal_{ep.dbname}"[:40]
    scratch = f"{prefix}_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    with open_connection(ep, command="migrate-rehearsal", autocommit=True) as conn:
        if not always and not has_objects(conn):
            notify(NOT_REHEARSED)
            return
        # Copies left by a runner killed mid-rehearsal: under the runner lock, none is in use.
        for (stale,) in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                     (prefix + "_",)).fetchall():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(stale)))
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        except psycopg.errors.InsufficientPrivilege:
            raise MigrationError(f"the rehearsal needs CREATEDB for {ep.user}; grant it or set "
                                 "migrations.rehearse: never in the plan") from None
        try:
            _copy_schema(ep, scratch)
            copy = with_database(ep, scratch)
            with open_connection(copy, command="migrate-rehearsal", autocommit=True) as target:
                ledger.ensure_schema(target)
                runner = Runner(target, settings, lambda message: None)
                for execution in executions:
                    try:
                        runner.run(execution, {})
                    except StatementFailed as exc:
                        raise MigrationError(f"rehearsal on a copy of the schema failed, the "
                                             f"target was not touched: {exc}") from None
            notify(f"rehearsed {len(executions)} migration(s) on a copy of the schema")
        finally:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(scratch)))


def _copy_schema(ep: Endpoint, scratch: str) -> None:
    bindir = find_bindir()
    target = ["-h", ep.host, "-p", str(ep.port), "-U", ep.user]
    dump = subprocess.run([str(bindir / "pg_dump"), "--schema-only", "--no-owner",
                           "--no-privileges", "--exclude-schema=dbops", *target, "-d", ep.dbname],
                          env=_environment(ep), capture_output=True, check=False)
    if dump.returncode != 0:
        raise MigrationError(mask(f"pg_dump --schema-only failed: {_last_line(dump.stderr)}"))
    load = subprocess.run([str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *target,
                           "-d", scratch], input=dump.stdout, env=_environment(ep),
                          capture_output=True, check=False)
    if load.returncode != 0:
        raise MigrationError(mask(f"loading the schema copy failed: {_last_line(load.stderr)}"))


def _last_line(output: bytes) -> str:
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def post_validate(conn: psycopg.Connection[Any], notify: Notify) -> None:
    """No INVALID index may remain; a constraint left NOT VALID is reported."""
    invalid = conn.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " ORDER BY 1").fetchall()
    if invalid:
        names = ", ".join(row[0] for row in invalid)
        raise MigrationError(f"post-validation: INVALID index(es) left behind: {names} "
                             "(drop them and run again)")
    for name, table in conn.execute(
            "SELECT con.conname, con.conrelid::regclass::text FROM pg_constraint con"
            " JOIN pg_namespace n ON n.oid = con.connamespace"
            " WHERE NOT con.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1").fetchall():
        notify(f"post-validation: constraint {name} on {table} is NOT VALID "
               f"(run ALTER TABLE {table} VALIDATE CONSTRAINT {name})")
