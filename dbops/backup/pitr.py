"""The pgbackrest engine's backup commands (what BackupManager hands over to when the plan says
`engine: pgbackrest`): set up the stanza, create/list/verify/prune backups, and restore to a point
in time into a new data directory started on a free port. Backups are recorded in the same
catalog table (dbops.backup_catalog) as dump backups, located `host:repository`."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dbops import ledger
from dbops.backup import archiving
from dbops.backup.manifest import REASON
from dbops.backup.pgbackrest import (
    BackupSet,
    BackupType,
    RepositoryInfo,
    Runner,
    ServerFacts,
    child_environment,
    os_account,
    render_config,
    server_facts,
)
from dbops.config.model import PgBackRest, Plan
from dbops.connect import connection, endpoint, mask, open_connection
from dbops.errors import BackupError, DbopsError

Notify = Callable[[str], None]
KINDS: dict[str, BackupType] = {"full": "full", "diff": "diff", "differential": "diff",
                                "incr": "incr", "incremental": "incr"}
RECOVERY_TIMEOUT = 3600.0
_REDO = re.compile(r"redo starts at ([0-9A-F]+/[0-9A-F]+)")
_DONE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")
_SET = re.compile(r"restore backup set ([0-9]{8}-[0-9]{6}F[0-9DI_-]*)")
_MAX_SOCKET_DIR = 90
_RECOVERY_FAILED = ("recovery ended before", "aborting startup", "startup process")


@dataclass(frozen=True)
class PitrResult:
    """A point-in-time restore (or drill): where the copy runs and what it recovered."""

    stanza: str
    backup_set: str | None
    data_directory: Path
    port: int
    target: datetime | None
    recovered_to: datetime | None
    wal_bytes: int | None
    seconds: float
    running: bool
    rpo: timedelta | None = None


@dataclass(frozen=True)
class PitrVerification:
    """What `backup verify` found with engine pgbackrest: what it verified (a backup set, or
    the repository and its WAL archive), why it failed (None: it passed), and the restore drill
    when one ran."""

    what: str
    failure: str | None
    drill: PitrResult | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class PgBackRestBackups:
    """One plan's pgbackrest engine."""

    def __init__(self, plan: Plan, notify: Notify | None = None) -> None:
        if plan.backup is None or plan.backup.pgbackrest is None:
            raise BackupError(f"plan {plan.environment} declares no backup.pgbackrest block")
        self.plan = plan
        self.policy: PgBackRest = plan.backup.pgbackrest
        self._notify: Notify = notify or (lambda message: None)

    @contextmanager
    def _server(self, command: str) -> Iterator[tuple[psycopg.Connection[Any], ServerFacts]]:
        with connection(self.plan, command=command, autocommit=True) as conn:
            yield conn, server_facts(conn)

    def runner(self, facts: ServerFacts) -> Runner:
        return Runner(self.policy, os_account(facts.data_directory))

    def config_text(self) -> str:
        with self._server("pgbackrest-config") as (_, facts):
            return render_config(self.policy, facts)

    def setup(self) -> None:
        """Write the configuration and the repository directory (as the server's OS user) and
        create the stanza: what `dbops apply` does through pyinfra, for one local host."""
        with self._server("pgbackrest-setup") as (_, facts):
            account = os_account(facts.data_directory)
            write_owned(self.policy.config, render_config(self.policy, facts), account.pw_uid,
                        account.pw_gid)
            for folder in (self.policy.repository, self.policy.repository / "log"):
                prepare_repository(folder, account.pw_uid, account.pw_gid)
            self.runner(facts).stanza_create()

    def info(self) -> RepositoryInfo:
        with self._server("backup-list") as (_, facts):
            return self.runner(facts).info()

    def create(self, kind: str = "full", reason: str = "manual") -> BackupSet:
        """A pgBackRest backup of `kind` (full, diff, incr); the newest set it made."""
        backup_type = _kind(kind)
        if not REASON.match(reason):
            raise BackupError(f"reason {reason!r}: one line of at most 100 letters, digits, "
                              "spaces and punctuation")
        with self._server("backup-create") as (conn, facts):
            runner = self.runner(facts)
            before = {b.label for b in runner.info().backups}
            clock = time.monotonic()
            self._notify(f"pgbackrest {backup_type} backup of stanza {self.policy.stanza} "
                         f"({self.policy.process_max} process(es), {self.policy.compress})")
            runner.backup(backup_type, reason)
            info = runner.info()
            made = [b for b in info.backups if b.label not in before]
            if not made:
                raise BackupError(f"pgbackrest backup finished but stanza {self.policy.stanza} "
                                  "lists no new backup set")
            self._record(conn, info)
            self._notify(f"backup {made[-1].label} complete in {time.monotonic() - clock:.1f}s")
            return made[-1]

    def verify(self, label: str | None, restore_test: bool = False) -> PitrVerification:
        """pgbackrest verify (of set `label`, or the whole repository); with `restore_test`, a
        restore drill too."""
        with self._server("backup-verify") as (conn, facts):
            runner = self.runner(facts)
            info = runner.info()
            if label is not None and label not in {b.label for b in info.backups}:
                raise BackupError(f"no backup set {label!r} in stanza {self.policy.stanza}; "
                                  f"sets: {', '.join(b.label for b in info.backups) or 'none'}")
            what = (f"backup set {label}" if label else
                    f"the repository ({len(info.backups)} backup set(s), WAL archive "
                    f"{info.archive_min or '-'} .. {info.archive_max or '-'})")
            try:
                runner.verify(label)
            except BackupError as exc:
                found = PitrVerification(what, str(exc))
            else:
                found = PitrVerification(what, None)
            tested_at: datetime | None = None
            if found.ok and restore_test:
                found = replace(found, drill=self.restore(None, None, drill=True))
                tested_at = datetime.now(UTC)
            self._record(conn, info, verified=(label, found.ok), restore_tested_at=tested_at)
            return found

    def prune(self, dry_run: bool = False) -> list[str]:
        """pgbackrest expire under the plan's retention; what it expired (or would)."""
        with self._server("backup-prune") as (conn, facts):
            runner = self.runner(facts)
            before = runner.info()
            output = runner.expire(dry_run=dry_run)
            after = runner.info() if not dry_run else before
            gone = [b.label for b in before.backups if b.label not in
                    {a.label for a in after.backups}]
            if not dry_run:
                self._record(conn, after)
                lines = ([f"expired backup set(s): {', '.join(gone)}"] if gone else
                         ["retention keeps every backup set"])
            else:
                lines = [line.split("P00   INFO: ", 1)[-1] for line in output.splitlines()
                         if "expire" in line.lower() and "INFO" in line] or [
                             "retention keeps every backup set"]
            lines.append(f"kept: {', '.join(b.label for b in after.backups) or 'none'} "
                         f"(retention full={self.policy.retention_full})")
            return lines

    def restore(self, to_time: datetime | None, into: Path | None, *,
                drill: bool = False) -> PitrResult:
        """Restore into the new data directory `into` (refused when it exists and is not empty,
        or is the live server's), to `to_time` or the end of the archive, start it on a free
        port, wait until recovery has promoted it. A drill restores into a scratch directory,
        measures, then stops and removes the copy."""
        with self._server("backup-restore") as (conn, facts):
            started = datetime.now(UTC)
            archive = archiving.read(conn)
            account = os_account(facts.data_directory)
            if to_time is not None:  # before anything is made on disk
                _check_a_backup_precedes(self.runner(facts).info(), to_time)
            if drill:
                into = Path(tempfile.mkdtemp(prefix="dbops-drill-",
                                             dir=self.policy.repository.parent))
            assert into is not None
            into = _new_data_directory(into, facts.data_directory)
            prepare_repository(into, account.pw_uid, account.pw_gid, mode=0o700)
            clock = time.monotonic()
            port = _free_port()
            try:
                output = self.runner(facts).restore(into, target_time=to_time)
                self._notify(f"restored into {into}; starting it on port {port} for recovery")
                log = into / "dbops-restore.log"
                socket_dir = _socket_dir(into, account.pw_uid, account.pw_gid)
                _pg_ctl(account.pw_name, into, ["-l", str(log), "-o",
                        f"-c port={port} -c listen_addresses=127.0.0.1 "
                        f"-c unix_socket_directories={socket_dir} -c archive_mode=off",
                        "start"])
                ep = replace(endpoint(self.plan), host="127.0.0.1", port=port)
                recovered, wal = _wait_promoted(ep, log)
                seconds = time.monotonic() - clock
                found = _SET.search(output)
                rpo = (started - archive.last_archived_time
                       if drill and archive.last_archived_time else None)
                result = PitrResult(self.policy.stanza, found.group(1) if found else None,
                                    into, port, to_time, recovered, wal, seconds,
                                    running=not drill, rpo=rpo)
            except BaseException:
                _stop(account.pw_name, into)
                if drill:
                    shutil.rmtree(into, ignore_errors=True)
                raise
            if drill:
                _stop(account.pw_name, into)
                shutil.rmtree(into, ignore_errors=True)
            return result

    def archive_status(self) -> archiving.ArchiveStatus:
        with connection(self.plan, command="archive-status", autocommit=True) as conn:
            return archiving.read(conn)

    def _record(self, conn: psycopg.Connection[Any], info: RepositoryInfo, *,
                verified: tuple[str | None, bool] | None = None,
                restore_tested_at: datetime | None = None) -> None:
        """Make the catalog rows of this repository equal to `info`'s backup sets, keeping
        verification outcomes; a failure is said, not fatal (the repository is the truth)."""
        where = f"{socket.gethostname()}:{self.policy.repository}"
        rows = [(b.label, self.plan.environment, where, b.started_at, b.reason or "manual",
                 b.repository_size, Jsonb(b.to_dict())) for b in info.backups]
        try:
            ledger.ensure_schema(conn)
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO dbops.backup_catalog (id, environment, location, started_at,"
                    " reason, size, manifest) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET size = excluded.size,"
                    " manifest = excluded.manifest, recorded_at = now()", rows)
                conn.execute("DELETE FROM dbops.backup_catalog WHERE environment = %s AND"
                             " location = %s AND NOT id = ANY(%s)",
                             (self.plan.environment, where, [b.label for b in info.backups]))
                if verified is not None:
                    label, ok = verified
                    conn.execute("UPDATE dbops.backup_catalog SET verified = %s WHERE"
                                 " location = %s AND (%s::text IS NULL OR id = %s)",
                                 (ok, where, label, label))
                if restore_tested_at is not None:
                    conn.execute("UPDATE dbops.backup_catalog SET restore_tested_at = %s"
                                 " WHERE location = %s", (restore_tested_at, where))
        except (DbopsError, psycopg.Error) as exc:
            self._notify("warning: the backup catalog could not be recorded in the database "
                         f"(dbops.backup_catalog): {mask(str(exc).strip().splitlines()[0])}")


def recorded(conn: psycopg.Connection[Any], environment: str) -> list[dict[str, Any]]:
    """The environment's pgbackrest backup sets as recorded in dbops.backup_catalog, oldest
    first (for health and drift where the repository cannot be read)."""
    row = conn.execute("SELECT to_regclass('dbops.backup_catalog') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    rows = conn.execute("SELECT manifest, verified FROM dbops.backup_catalog WHERE"
                        " environment = %s AND manifest->>'engine' = 'pgbackrest'"
                        " ORDER BY started_at, id", (environment,)).fetchall()
    return [{**manifest, "verified": verified} for manifest, verified in rows]


def newest_full(sets: list[dict[str, Any]]) -> datetime | None:
    """When the newest good full backup of `recorded` sets started (None: there is none)."""
    return max((datetime.fromisoformat(m["started_at"]) for m in sets
                if m.get("type") == "full" and not m.get("error")), default=None)


def write_owned(path: Path, text: str, uid: int, gid: int, mode: int = 0o640) -> None:
    """Write `text` to `path` (parents created), owned by uid:gid, atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.chmod(mode)
        _chown(temporary, uid, gid)
        temporary.replace(path)
    except OSError as exc:
        raise BackupError(f"cannot write {path}: {exc.strerror or exc}") from None


def prepare_repository(path: Path, uid: int, gid: int, mode: int = 0o750) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        _chown(path, uid, gid)
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror or exc}") from None


def _chown(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def _kind(kind: str) -> BackupType:
    if kind not in KINDS:
        raise BackupError(f"backup type {kind!r}: one of full, diff (differential), incr "
                          "(incremental)")
    return KINDS[kind]


def _new_data_directory(into: Path, live: Path) -> Path:
    into = into.absolute()
    resolved, live = into.resolve(), live.resolve()
    if resolved == live or resolved.is_relative_to(live) or live.is_relative_to(resolved):
        raise BackupError(f"{into} is (or holds) the live server's data directory {live}: a "
                          "point-in-time restore goes into a new directory")
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise BackupError(f"{into} exists and is not empty: restore into a new or empty "
                          "directory")
    return into


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _socket_dir(into: Path, uid: int, gid: int) -> Path:
    if len(str(into)) <= _MAX_SOCKET_DIR:
        return into
    short = Path(tempfile.mkdtemp(prefix="dbops-pitr-"))
    _chown(short, uid, gid)
    return short


def _pg_ctl(user: str, data: Path, args: list[str]) -> None:
    from dbops.pgbin import find_bindir

    prefix = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    command = [*prefix, str(find_bindir() / "pg_ctl"), "-D", str(data), "-w", "-t", "600", *args]
    # The restored server inherits this environment: nothing of dbops' own goes into it.
    done = subprocess.run(command, capture_output=True, text=True, cwd="/", check=False,
                          timeout=660, env=child_environment(pwd.getpwnam(user)))
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise BackupError(f"pg_ctl {args[-1]} of the restored copy in {data} failed: "
                          f"{lines[-1] if lines else done.returncode} "
                          f"(log: {data / 'dbops-restore.log'})")


def _stop(user: str, data: Path) -> None:
    if (data / "postmaster.pid").exists():
        # The caller is already failing or cleaning up; its message matters more.
        with contextlib.suppress(BackupError, subprocess.TimeoutExpired):
            _pg_ctl(user, data, ["-m", "fast", "stop"])


def _wait_promoted(ep: Any, log: Path) -> tuple[datetime | None, int | None]:
    """Wait until the restored copy has left recovery; the last replayed transaction's commit
    time and the bytes of WAL replayed (from the server log's redo lines)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        try:
            with open_connection(ep, command="backup-restore", autocommit=True) as conn:
                while True:
                    row = conn.execute("SELECT pg_is_in_recovery(),"
                                       " pg_last_xact_replay_timestamp()").fetchone()
                    assert row is not None
                    if not row[0]:
                        return row[1], _wal_replayed(conn, log)
                    if time.monotonic() > deadline:
                        raise BackupError(f"the restored copy was still recovering after "
                                          f"{RECOVERY_TIMEOUT:.0f}s (log: {log})")
                    time.sleep(0.1)
        except DbopsError as exc:
            if isinstance(exc, BackupError) or time.monotonic() > deadline:
                raise
            if any(sign in _read(log) for sign in _RECOVERY_FAILED):
                raise BackupError(f"recovery of the restored copy failed: "
                                  f"{_fatal(_read(log))} (log: {log})") from None
            time.sleep(0.2)


def _wal_replayed(conn: psycopg.Connection[Any], log: Path) -> int | None:
    text = _read(log)
    start, done = _REDO.search(text), _DONE.search(text)
    if start is None or done is None:
        return None
    row = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint",
                       (done.group(1), start.group(1))).fetchone()
    return int(row[0]) if row else None


def _read(log: Path) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _fatal(text: str) -> str:
    lines = [line for line in text.splitlines() if "FATAL" in line]
    return lines[-1].split("FATAL:", 1)[-1].strip() if lines else "see the log"


def _check_a_backup_precedes(info: RepositoryInfo, to_time: datetime) -> None:
    """pgBackRest restores a point in time from the newest backup that ended before it, and
    records when a backup ended to the second: refuse, saying so, when none did."""
    ended = [b.finished_at for b in info.backups if not b.error]
    if not any(int(end.timestamp()) < int(to_time.timestamp()) for end in ended):
        first = f"the first backup ended at {min(ended):%Y-%m-%d %H:%M:%S %Z}" if ended \
            else "the repository has no backup"
        raise BackupError(f"no backup ended before {to_time:%Y-%m-%d %H:%M:%S.%f %Z}: {first} "
                          "(pgBackRest records it to the second); choose a later --to-time")
