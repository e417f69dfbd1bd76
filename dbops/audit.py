"""The audit log: one record for every operation that changes something (apply writes its own,
with progress, in `ledger`; every other command goes through `audited`).

A record goes to the target database's `dbops.apply_audit` table. When that fails (the server is
down, the role may not write) or the operation replaces the database (a restore over it), it goes
to the project's append-only `.dbops/audit.jsonl` instead, so no operation goes unrecorded.
`read` merges both.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from dbops import __version__, ledger
from dbops.changes import plan_hash
from dbops.connect import connection, mask
from dbops.errors import DbopsError

if TYPE_CHECKING:
    from dbops.config.model import Plan

LOCAL_LOG = Path(".dbops") / "audit.jsonl"
MAX_DETAIL = 2000  # characters of a record's detail (an error's first line, a summary)
MAX_LOCAL_LINE = 64 * 1024  # a longer line in the local log is not one dbops wrote


@dataclass(frozen=True)
class Record:
    """One operation as the audit log keeps it."""

    record_id: str
    action: str  # "apply", "migrate up", "backup restore", ...
    environment: str
    at: datetime
    result: str  # done, failed; apply's own: applied, rolled back, interrupted, running
    detail: str
    plan_hash: str
    os_user: str
    host: str
    role: str  # the database role
    dbops_version: str
    stored: str = "database"  # or "local: <why not the database>"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


@dataclass
class Operation:
    """What a command tells its audit record while it runs."""

    detail: str = ""


@contextmanager
def audited(plan: Plan, action: str, *, replaces_database: bool = False) -> Iterator[Operation]:
    """Record `action` when the block ends: `done` with the operation's detail, or `failed`
    with the error's first line (the error still propagates).

    An operation that replaces the database (a restore over it) would take the audit rows
    written since its backup with it: they are copied to the local log first, and its own
    record goes there too. When it succeeds, the kept rows and its own record are written into
    the database that replaced it as well, so the audit log reads the same from any machine.
    """
    kept = _keep_locally(plan) if replaces_database else []
    operation = Operation()
    started = datetime.now(UTC)
    try:
        yield operation
    except BaseException as exc:
        detail = "; ".join(filter(None, (_reason(exc), operation.detail)))
        _record(plan, action, started, "failed", detail, replaces_database)
        raise
    own = _record(plan, action, started, "done", operation.detail, replaces_database)
    if replaces_database:
        _carry_over(plan, [*kept, own])


def record(plan: Plan, action: str, detail: str, result: str = "done") -> None:
    """One record of an operation that has ended (a health recovery step, an apply that could
    not reach the database to write its own)."""
    _record(plan, action, datetime.now(UTC), result, detail, replaces_database=False)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _record(plan: Plan, action: str, started: datetime, result: str, detail: str,
            replaces_database: bool) -> Record:
    record = Record(
        record_id=uuid.uuid4().hex, action=action, environment=plan.environment, at=started,
        result=result, detail=mask(detail)[:MAX_DETAIL], plan_hash=plan_hash(plan.document.data),
        os_user=ledger.os_user(), host=socket.gethostname(), role=plan.database.user,
        dbops_version=__version__)
    if replaces_database:
        _append_local(plan.root, record, "the operation replaces the database")
        return record
    try:
        with connection(plan, command="audit", autocommit=True) as conn:
            ledger.ensure_schema(conn)
            ledger.record_operation(conn, record_id=record.record_id, action=action,
                                    environment=record.environment, plan_hash=record.plan_hash,
                                    at=started, result=result, detail=record.detail)
    except (DbopsError, psycopg.Error) as exc:
        _append_local(plan.root, record, _reason(exc))
    return record


def _carry_over(plan: Plan, records: list[Record]) -> None:
    """Write `records` (kept before the database was replaced, and the replacing operation's
    own) into the database now in its place, each once (by record_id). When that fails they
    stay in the local log, which `read` merges: nothing is lost, it is only local."""
    try:
        with connection(plan, command="audit", autocommit=True) as conn:
            ledger.ensure_schema(conn)
            with conn.transaction():
                for r in records:
                    ledger.carry_operation(
                        conn, record_id=r.record_id, action=r.action, at=r.at,
                        os_user=r.os_user, host=r.host, role=r.role,
                        dbops_version=r.dbops_version, environment=r.environment,
                        plan_hash=r.plan_hash, result=r.result, detail=r.detail)
    except (DbopsError, psycopg.Error) as exc:
        print(f"warning: the audit records kept in {plan.root / LOCAL_LOG} could not be written "
              f"back into the restored database ({mask(_reason(exc))}); `dbops audit` on this "
              "machine still lists them", file=sys.stderr)


def _append_local(root: Path, record: Record, why: str) -> None:
    """One JSON line appended (O_APPEND, fsync'd) to the project's local log."""
    _append_lines(root, [{**record.to_json(), "stored": f"local: {mask(why)[:MAX_DETAIL]}"}],
                  record.action, why)


def _append_lines(root: Path, lines: list[dict[str, Any]], action: str, why: str) -> None:
    path = root / LOCAL_LOG
    text = "".join(json.dumps(line) + "\n" for line in lines)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # Nowhere left to write: say so rather than lose the record silently.
        print(f"warning: audit record of '{action}' not written to the database "
              f"({mask(why)}) nor to {path} ({exc.strerror})", file=sys.stderr)


def _keep_locally(plan: Plan) -> list[Record]:
    """Copy the database's audit rows of this environment into the local log (read merges the
    copies with the rows a restored database still has, each record once); returns them."""
    try:
        with connection(plan, command="audit", autocommit=True) as conn:
            rows = _database_records(conn, plan.environment, None)
    except (DbopsError, psycopg.Error):
        return []  # the database is not there to lose anything
    kept = {r.record_id for r in _local_records(plan.root / LOCAL_LOG, plan.environment, None)}
    lines = [{**r.to_json(), "stored": "local: kept before the database was replaced"}
             for r in rows if r.record_id not in kept]
    if lines:
        _append_lines(plan.root, lines, "audit", "the database is about to be replaced")
    return rows


def read(plan: Plan, since: datetime | None) -> tuple[list[Record], str | None]:
    """The environment's records, oldest first, from the database and the local log (a record
    in both is listed once); and a note when the database could not be read."""
    records: dict[str, Record] = {}
    note = None
    try:
        with connection(plan, command="audit", autocommit=True) as conn:
            for record in _database_records(conn, plan.environment, since):
                records[record.record_id] = record
    except (DbopsError, psycopg.Error) as exc:
        note = f"the database's audit log could not be read ({_reason(exc)}): local log only"
    for record in _local_records(plan.root / LOCAL_LOG, plan.environment, since):
        records.setdefault(record.record_id, record)
    return sorted(records.values(), key=lambda r: r.at), note


def _database_records(conn: psycopg.Connection[Any], environment: str,
                      since: datetime | None) -> list[Record]:
    row = conn.execute("SELECT to_regclass('dbops.meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    row = conn.execute("SELECT value::int FROM dbops.meta WHERE key = 'schema_version'").fetchone()
    if not row or int(row[0]) < 2:  # no audit table yet
        return []
    # Written by a dbops before every operation was audited: all its rows are applies.
    columns = ("record_id, action, os_user" if int(row[0]) >= 4
               else "'db-' || id, 'apply', ''")
    rows = conn.execute(
        f"SELECT {columns}, at, result, reason, jsonb_array_length(changes), plan_hash,"
        " client_host, who, dbops_version FROM dbops.apply_audit"
        " WHERE environment = %s AND at >= coalesce(%s, '-infinity'::timestamptz) ORDER BY id",
        (environment, since)).fetchall()
    return [Record(record_id=rid, action=action, environment=environment, at=at, result=result,
                   detail=reason or (f"{changes} change(s)" if action == "apply" else ""),
                   plan_hash=plan_hash, os_user=user, host=host, role=who,
                   dbops_version=version)
            for rid, action, user, at, result, reason, changes, plan_hash, host, who, version
            in rows]


def _local_records(path: Path, environment: str, since: datetime | None) -> Iterator[Record]:
    """Records of the local log, line by line; a damaged line is skipped, not fatal."""
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DbopsError(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        for raw in stream:
            if len(raw) > MAX_LOCAL_LINE:
                continue
            try:
                data = json.loads(raw)
                record = Record(**{**data, "at": datetime.fromisoformat(data["at"])})
            except (ValueError, TypeError, KeyError):
                continue
            if record.environment == environment and (since is None or record.at >= since):
                yield record
