"""A live schema as the first migration: `pg_dump --schema-only`, cleaned of session commands,
proven by loading it into a scratch database whose fingerprint must equal the live one."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from dbops.backup.dump import environment, tool_path
from dbops.connect import Endpoint, mask, open_connection, with_database
from dbops.errors import MigrationError
from dbops.schema_facts import schema_fingerprint

# What pg_dump writes for its own session, not the schema: psql meta-commands (\restrict,
# \unrestrict, \connect) and the SET / set_config lines that would leak into the runner's session.
_SESSION_LINE = re.compile(r"^(\\\S+.*|SET \w+ = .*;|SELECT pg_catalog\.set_config\(.*\);)$")


def dump_schema(ep: Endpoint) -> str:
    """The schema of `ep`'s database as pg_dump writes it (no owners, no grants, no dbops schema)."""
    result = subprocess.run(
        [str(tool_path("pg_dump")), "--schema-only", "--no-owner", "--no-privileges",
         "--exclude-schema=dbops", "-h", ep.host, "-p", str(ep.port), "-U", ep.user, "-w",
         "-d", ep.dbname],
        env=environment(ep, "migrate-baseline"), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MigrationError(mask(f"pg_dump --schema-only failed: {_last_line(result.stderr)}"))
    return result.stdout


# pg_dump creates functions before the tables their bodies name; only this one of its session
# settings matters to the schema, and SET LOCAL keeps it inside the migration's transaction.
FUNCTION_BODIES = ("-- functions come before the tables their bodies name, as pg_dump orders them\n"
                   "SET LOCAL check_function_bodies = false;\n\n")


def clean(dump: str) -> str:
    """The dump without session lines (and the blank runs they leave), checking of function
    bodies put off to the end of the migration's transaction."""
    kept = [line for line in dump.splitlines() if not _SESSION_LINE.match(line)]
    return FUNCTION_BODIES + re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() + "\n"


def migration_text(schema: str, ep: Endpoint, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"-- baseline: the schema of {ep.dbname} as pg_dump --schema-only saw it at {stamp}\n"
            "-- dbops:baseline\n-- dbops:risk low\n\n-- migrate:up\n"
            f"{schema}\n-- migrate:down\n")


def verify(ep: Endpoint, schema: str) -> None:
    """Load `schema` into a scratch database beside `ep`'s and compare fingerprints; raise
    MigrationError naming the objects that differ. The scratch database is always dropped."""
    prefix = f"dbops_baseline_{ep.dbname}"[:40]
    scratch = f"{prefix}_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    with open_connection(ep, command="migrate-baseline", autocommit=True) as conn:
        live = schema_fingerprint(conn)
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(scratch)))
        try:
            copy = with_database(ep, scratch)
            load = subprocess.run(
                [str(tool_path("pg_dump").with_name("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                 "-1", "-h", ep.host, "-p", str(ep.port), "-U", ep.user, "-w", "-d", scratch],
                input=schema, env=environment(copy, "migrate-baseline"), capture_output=True,
                text=True, check=False)
            if load.returncode != 0:
                raise MigrationError(mask(f"the baseline does not load into an empty database: "
                                          f"{_first_error(load.stderr)}"))
            with open_connection(copy, command="migrate-baseline") as target:
                restored = schema_fingerprint(target)
        finally:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(scratch)))
    differing = sorted(k for k in live.keys() | restored.keys() if live.get(k) != restored.get(k))
    if differing:
        shown = ", ".join(differing[:5]) + (f" and {len(differing) - 5} more"
                                            if len(differing) > 5 else "")
        raise MigrationError(f"the baseline does not reproduce the live schema: {shown} differ")


def write(directory: Path, version: str, text: str) -> Path:
    path = directory / f"{version}_baseline.sql"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _first_error(output: str) -> str:
    """psql's first ERROR line (what failed), not the caret under the statement it quotes."""
    errors = [line.strip() for line in output.splitlines() if "ERROR:" in line]
    return errors[0] if errors else _last_line(output)


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
