"""Driving the pgBackRest command line for the pgbackrest engine: the configuration dbops renders,
the server facts it needs (data directory, port, socket), and the commands: stanza-create, check,
backup --type, info --output=json (parsed), verify, expire, and restore to a point in time into a
new data directory.

pgBackRest runs as the OS user that owns the server's data directory (root runs it through
runuser). It reaches the server through its Unix socket as `pg1-user`, so no password is ever on
its command line or in its environment: the child gets PATH, HOME and the locale, nothing else.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from dbops.backup.archiving import ArchiveStatus
from dbops.backup.archiving import read as read_archive
from dbops.config.model import PgBackRest
from dbops.errors import BackupError

BackupType = Literal["full", "diff", "incr"]
BINARY = "pgbackrest"
TIMEOUT = 6 * 3600.0  # a backup or restore of a large database takes hours, not days
_QUICK = 300.0  # check, info, stanza-create, expire
_CHILD_BASICS = ("PATH", "LANG", "LC_ALL", "TZ")
_LABEL = re.compile(r"^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$")


@dataclass(frozen=True)
class ServerFacts:
    """What pgBackRest's configuration needs from the running server."""

    data_directory: Path
    port: int
    socket_directory: str
    user: str
    version: str


def server_facts(conn: psycopg.Connection[Any]) -> ServerFacts:
    """Read from the server; BackupError when the role may not see data_directory (a superuser
    or a member of pg_read_all_settings may). Never aborts the caller's transaction."""
    rows = dict(conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('data_directory', 'port',"
        " 'unix_socket_directories', 'server_version_num')").fetchall())
    row = conn.execute("SELECT current_user").fetchone()
    if "data_directory" not in rows:
        raise BackupError("the role cannot read data_directory, which pgBackRest's configuration "
                          "needs: connect as a superuser or grant pg_read_all_settings")
    socket_dir = str(rows.get("unix_socket_directories", "")).split(",")[0].strip()
    if not socket_dir:
        raise BackupError("the server listens on no Unix socket (unix_socket_directories is "
                          "empty): pgBackRest reaches PostgreSQL through its socket")
    return ServerFacts(Path(rows["data_directory"]), int(rows["port"]), socket_dir,
                       str(row[0]) if row else "postgres",
                       str(int(rows["server_version_num"]) // 10000))


def render_config(policy: PgBackRest, facts: ServerFacts) -> str:
    """The whole pgbackrest.conf dbops owns for this stanza. Pure."""
    repo = policy.repository
    lines = [
        "# Written by dbops from the plan's backup.pgbackrest block; edits are overwritten.",
        "[global]",
        f"repo1-path={repo}",
        f"repo1-retention-full={policy.retention_full}",
    ]
    if policy.retention_diff is not None:
        lines.append(f"repo1-retention-diff={policy.retention_diff}")
    if policy.retention_archive is not None:
        lines.append(f"repo1-retention-archive={policy.retention_archive}")
    lines += [
        f"compress-type={policy.compress}",
        f"process-max={policy.process_max}",
        f"log-path={repo}/log",
        f"lock-path={repo}/lock",
        "log-level-console=warn",
        "log-level-file=info",
        "start-fast=y",
        "",
        f"[{policy.stanza}]",
        f"pg1-path={facts.data_directory}",
        f"pg1-port={facts.port}",
        f"pg1-socket-path={facts.socket_directory}",
        f"pg1-user={facts.user}",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class BackupSet:
    """One backup in the repository, as `pgbackrest info --output=json` reports it."""

    label: str
    type: BackupType
    started_at: datetime
    finished_at: datetime
    size: int
    repository_size: int
    prior: str | None
    wal_start: str | None
    wal_stop: str | None
    lsn_start: str | None
    lsn_stop: str | None
    error: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"engine": "pgbackrest", "id": self.label, "type": self.type,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat(), "size": self.size,
                "repository_size": self.repository_size, "prior": self.prior,
                "wal": [self.wal_start, self.wal_stop], "lsn": [self.lsn_start, self.lsn_stop],
                "error": self.error, "reason": self.reason}


@dataclass(frozen=True)
class RepositoryInfo:
    """The stanza in the repository: its backups (oldest first), the WAL archive's range and
    pgBackRest's own status."""

    stanza: str
    status_code: int
    status: str
    backups: tuple[BackupSet, ...]
    archive_min: str | None
    archive_max: str | None

    def newest(self, kind: BackupType | None = None) -> BackupSet | None:
        found = [b for b in self.backups if not b.error and (kind is None or b.type == kind)]
        return found[-1] if found else None


def parse_info(text: str, stanza: str) -> RepositoryInfo:
    """`pgbackrest info --output=json` for one stanza. Pure; BackupError on a shape it does not
    know."""
    try:
        stanzas = json.loads(text)
        entry = next(s for s in stanzas if s.get("name") == stanza)
        backups = tuple(
            BackupSet(
                label=b["label"], type=b["type"],
                started_at=datetime.fromtimestamp(b["timestamp"]["start"], UTC),
                finished_at=datetime.fromtimestamp(b["timestamp"]["stop"], UTC),
                size=int(b["info"]["size"]),
                repository_size=int(b["info"]["repository"]["size"]),
                prior=b.get("prior"),
                wal_start=(b.get("archive") or {}).get("start"),
                wal_stop=(b.get("archive") or {}).get("stop"),
                lsn_start=(b.get("lsn") or {}).get("start"),
                lsn_stop=(b.get("lsn") or {}).get("stop"),
                error=bool(b.get("error", False)),
                reason=str((b.get("annotation") or {}).get("dbops-reason", "")))
            for b in entry.get("backup", []))
        archives = entry.get("archive", [])
        return RepositoryInfo(
            stanza=stanza, status_code=int(entry["status"]["code"]),
            status=str(entry["status"]["message"]),
            backups=tuple(sorted(backups, key=lambda b: (b.started_at, b.label))),
            archive_min=min((a["min"] for a in archives if a.get("min")), default=None),
            archive_max=max((a["max"] for a in archives if a.get("max")), default=None))
    except StopIteration:
        raise BackupError(f"pgbackrest info does not know stanza {stanza!r}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"pgbackrest info --output=json: unexpected output ({exc})") from None


def os_account(data_directory: Path) -> pwd.struct_passwd:
    """The OS user pgBackRest must run as: the owner of the data directory."""
    try:
        return pwd.getpwuid(data_directory.stat().st_uid)
    except OSError as exc:
        raise BackupError(f"cannot read the data directory {data_directory} on this machine "
                          f"({exc.strerror or exc}): pgBackRest runs where the server runs") from None
    except KeyError:
        raise BackupError(f"{data_directory} belongs to no known OS user") from None


class Runner:
    """The pgbackrest command line for one stanza, run as the server's OS user."""

    def __init__(self, policy: PgBackRest, account: pwd.struct_passwd) -> None:
        self.policy = policy
        self.account = account

    def run(self, *args: str, timeout: float = _QUICK) -> str:
        """Run `pgbackrest --config=... --stanza=... ARGS`; its stdout, or BackupError with the
        last line pgBackRest wrote."""
        command = [*stanza_command(self.policy, "").split(), *args]
        return self._run(command, timeout=timeout)

    def _run(self, command: Sequence[str], *, timeout: float) -> str:
        prefix: list[str] = []
        if os.geteuid() != self.account.pw_uid:
            if os.geteuid() != 0:
                raise BackupError(f"pgBackRest must run as the server's OS user "
                                  f"{self.account.pw_name}: run dbops as that user (or root)")
            prefix = ["runuser", "-u", self.account.pw_name, "--"]
        env = child_environment(self.account)
        try:
            done = subprocess.run([*prefix, *command], capture_output=True, text=True,
                                  timeout=timeout, cwd="/", env=env, check=False)
        except FileNotFoundError:
            raise BackupError(f"{BINARY} is not installed on this machine (bin/bootstrap installs "
                              "it: apt-get install pgbackrest)") from None
        except subprocess.TimeoutExpired:
            raise BackupError(f"pgbackrest {command[-1]} did not finish within "
                              f"{timeout:.0f}s") from None
        if done.returncode != 0:
            lines = [line.strip() for line in (done.stderr + done.stdout).splitlines()
                     if line.strip() and "exclude special file" not in line]
            # pgBackRest's own ERROR line says why; its last line only that the command ended.
            errors = [line for line in lines if " ERROR: " in f" {line}"]
            detail = (errors or lines or [f"exit status {done.returncode}"])[-1]
            raise BackupError(f"pgbackrest {command[-1]} (stanza {self.policy.stanza}) failed: "
                              f"{detail}")
        return done.stdout

    def stanza_create(self) -> None:
        self.run("stanza-create")

    def check(self) -> None:
        """pgbackrest check: the configuration, the repository, and a WAL segment archived."""
        self.run("check")

    def retention(self) -> list[str]:
        """The plan's retention as options: what backup's own expire and `expire` apply, even
        when the configuration file was written under an older plan."""
        policy = self.policy
        options = [f"--repo1-retention-full={policy.retention_full}"]
        if policy.retention_diff is not None:
            options.append(f"--repo1-retention-diff={policy.retention_diff}")
        if policy.retention_archive is not None:
            options.append(f"--repo1-retention-archive={policy.retention_archive}")
        return options

    def backup(self, kind: BackupType, reason: str) -> None:
        """A backup of `kind`, annotated with dbops' reason (pgBackRest keeps it with the set)."""
        self.run(f"--type={kind}", f"--annotation=dbops-reason={reason}", *self.retention(),
                 f"--process-max={self.policy.process_max}",
                 f"--compress-type={self.policy.compress}", "backup", timeout=TIMEOUT)

    def info(self) -> RepositoryInfo:
        return parse_info(self.run("--output=json", "info"), self.policy.stanza)

    def verify(self, label: str | None = None) -> str:
        """pgbackrest verify (of one backup set when `label` is given); its report."""
        args = ["verify"] if label is None else [f"--set={label}", "verify"]
        return self.run(*args, timeout=TIMEOUT)

    def expire(self, *, dry_run: bool = False) -> str:
        return self.run(*(["--dry-run"] if dry_run else []), *self.retention(),
                        "--log-level-console=info", "expire")

    def restore(self, into: Path, *, target_time: datetime | None) -> str:
        """Restore into the empty directory `into` (never the server's own): to `target_time`
        when given, else to the end of the archived WAL; the copy promotes itself there."""
        args = [f"--pg1-path={into}", "--log-level-console=info"]
        if target_time is not None:
            args += ["--type=time", f"--target={target_time.isoformat(sep=' ')}",
                     "--target-action=promote"]
        return self.run(*args, "restore", timeout=TIMEOUT)


def child_environment(account: pwd.struct_passwd) -> dict[str, str]:
    """The whole environment of pgbackrest and of a restored server: PATH, the locale and the OS
    user's HOME; nothing of dbops' own (no PGPASSWORD, no DB_* variable, no other secret)."""
    env = {name: value for name in _CHILD_BASICS if (value := os.environ.get(name))}
    env["HOME"] = account.pw_dir
    return env


def valid_label(text: str) -> bool:
    return bool(_LABEL.match(text))


@dataclass(frozen=True)
class LiveSetup:
    """What inspection finds of the pgbackrest engine: the server's facts, the configuration
    file as it is on this machine (None: absent or unreadable here), whether the stanza exists
    in the repository (None: the repository cannot be read from here), and archiving now."""

    facts: ServerFacts | None
    config: str | None
    stanza_exists: bool | None
    archive: ArchiveStatus
    problem: str = ""  # why `facts` could not be read
    newest_full: datetime | None = None  # the newest good full backup the catalog records


def read_setup(conn: psycopg.Connection[Any], policy: PgBackRest) -> LiveSetup:
    """Read-only: the server's facts and pg_stat_archiver, the files where they are reachable."""
    try:
        facts: ServerFacts | None = server_facts(conn)
        problem = ""
    except BackupError as exc:
        facts, problem = None, str(exc)
    try:
        config: str | None = policy.config.read_text(encoding="utf-8")
    except OSError:
        config = None
    info = policy.repository / "backup" / policy.stanza / "backup.info"
    try:
        exists: bool | None = info.exists() if policy.repository.is_dir() else None
    except OSError:
        exists = None
    return LiveSetup(facts, config, exists, read_archive(conn), problem)


def stanza_command(policy: PgBackRest, action: str) -> str:
    """The shell command for `pgbackrest ACTION` on the database host (apply runs it there)."""
    return f"{BINARY} --config={policy.config} --stanza={policy.stanza} {action}"
