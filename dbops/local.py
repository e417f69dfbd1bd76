"""The embedded development cluster: initdb, start, stop, status (its binaries are found by
dbops.pgbin; the test harness adds streaming replicas)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from dbops.errors import LocalClusterError
from dbops.pgbin import find_bindir

HOST = "127.0.0.1"
SUPERUSER = "postgres"
SERVER_OS_USER = "postgres"
"""The unprivileged OS account the server runs as when dbops itself runs as root."""

DEVELOPMENT_DATA_DIR = Path(".dbops") / "postgres"
"""Where `dbops local up` keeps the project's development cluster, relative to the project root."""

STATE_FILE = "dbops-local.json"
SETTINGS_FILE = "dbops.conf"
LOG_FILE = "server.log"

_BASE_SETTINGS: Mapping[str, str] = {
    "listen_addresses": HOST,
    "wal_level": "replica",
    "max_connections": "200",
    "max_wal_senders": "10",
}
_MAX_SOCKET_DIR_LENGTH = 90  # a Unix socket path must fit in 107 bytes, ".s.PGSQL.NNNNN" included
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_PG_CTL_TIMEOUT = 60
_CONNECT_TIMEOUT = 5
_START_ATTEMPTS = 3


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class ClusterStatus:
    """What a local cluster looks like right now."""

    data_dir: Path
    running: bool
    port: int | None
    pid: int | None
    version: str | None
    initialized: bool


class Cluster:
    """A PostgreSQL cluster in a local data directory, listening on 127.0.0.1 only.

    Keyword arguments:
        port: the TCP port to listen on; default the port of the previous start, else a free one.
        settings: extra postgresql.conf parameters, written into the data directory (so a
            replica made with pg_basebackup inherits them) on every start.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._port = port
        self._settings = dict(settings or {})
        for name, value in self._settings.items():
            if not _SETTING_NAME.match(name) or "\n" in value or "\r" in value:
                raise LocalClusterError(
                    f"invalid PostgreSQL setting {name}={value!r}: names are identifiers and "
                    "values are single-line"
                )
        self._bindir: Path | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        """The port the cluster listens on (or will, on the next up()); raises if never started."""
        port = self._port or self._pidfile_port() or self._remembered_port()
        if port is None:
            raise LocalClusterError(
                f"the local cluster in {self.data_dir} has no port yet: start it with up() first"
            )
        return port

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    def up(self) -> ClusterStatus:
        """Initialise the cluster if needed, start it if stopped, and wait until it accepts
        connections. Calling it on a running cluster changes nothing."""
        current = self.status()
        if current.running:
            if self._port is not None and current.port != self._port:
                raise LocalClusterError(
                    f"the local cluster in {self.data_dir} already runs on port {current.port}, "
                    f"not {self._port}: stop it with down() first"
                )
            return current
        self._prepare_data_dir()
        if not current.initialized:
            self._initdb()
        port = self._start()
        self._write_owned(self.data_dir / STATE_FILE, json.dumps({"port": port}) + "\n")
        self._wait_until_accepting(port)
        return self.status()

    def down(self) -> ClusterStatus:
        """Stop the cluster (fast shutdown); a stopped or never-initialised cluster is fine."""
        current = self.status()
        if not current.running:
            return current
        result = self._run_pg_ctl(["-m", "fast", "stop"])
        after = self.status()
        if result.returncode != 0 and after.running:
            reason = _last_meaningful_line(result.stderr + result.stdout)
            raise LocalClusterError(
                f"PostgreSQL in {self.data_dir} did not stop: {reason} (log: {self.log_file})"
            )
        socket_dir = self._socket_dir_path()
        if socket_dir != self.data_dir:
            with contextlib.suppress(OSError):
                socket_dir.rmdir()
        return after

    def status(self) -> ClusterStatus:
        """Read the cluster's state from its data directory; never raises for a missing one."""
        pg_version = _read_text(self.data_dir / "PG_VERSION")
        if pg_version is None:
            return ClusterStatus(
                self.data_dir, False, self._port or self._remembered_port(), None, None, False
            )
        major = pg_version.strip()
        pid, port = self._read_pidfile()
        running = pid is not None and self._run_pg_ctl(["status"]).returncode == 0
        if not running:
            pid, port = None, self._port or self._remembered_port()
        return ClusterStatus(self.data_dir, running, port, pid, self._version(major), True)

    def ensure_database(self, name: str) -> bool:
        """Create database `name` unless it exists; return True when it was created."""
        with self._connect() as conn:
            try:
                row = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if row is not None:
                    return False
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                return False
            except psycopg.Error as exc:
                raise LocalClusterError(
                    f"could not create database {name!r} on {HOST}:{self.port}: "
                    f"[{exc.sqlstate}] {_last_meaningful_line(str(exc))}"
                ) from exc
        return True

    def _initdb(self) -> None:
        result = self._run(
            [
                str(self._tool("initdb")),
                "--pgdata", str(self.data_dir),
                "--auth", "trust",
                "--username", SUPERUSER,
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",  # a throwaway development cluster; saves seconds per initdb
            ],
            what="initdb",
            timeout=300,
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalClusterError(
                f"initdb in {self.data_dir} failed: "
                f"{_last_meaningful_line(result.stderr + result.stdout)}"
            )
        conf = self.data_dir / "postgresql.conf"
        try:
            with conf.open("a", encoding="utf-8") as handle:
                handle.write(
                    f"\n# dbops: settings of the local cluster, rewritten on every start\n"
                    f"include '{SETTINGS_FILE}'\n"
                )
        except OSError as exc:
            raise LocalClusterError(f"cannot write {conf}: {exc.strerror or exc}") from exc

    def _start(self) -> int:
        """Start the server and return its port, retrying on another port when a port picked
        automatically was taken in the meantime."""
        attempts = 1 if self._port is not None else _START_ATTEMPTS
        port = self._choose_port()
        for attempt in range(1, attempts + 1):
            self._write_settings(port)
            log_offset = _file_size(self.log_file)
            result = self._run_pg_ctl(["--log", str(self.log_file), "start"])
            if result.returncode == 0:
                return port
            log_tail = _read_from(self.log_file, log_offset)
            port_taken = "could not bind" in log_tail
            if attempt < attempts and port_taken:
                port = free_port()
                continue
            if port_taken:
                reason = f"{HOST}:{port} is already in use by another program; choose another port"
            else:
                reason = _last_meaningful_line(log_tail or result.stderr + result.stdout)
            raise LocalClusterError(
                f"PostgreSQL in {self.data_dir} did not start on port {port}: {reason} "
                f"(log: {self.log_file})"
            )
        raise AssertionError("unreachable")

    def _choose_port(self) -> int:
        if self._port is not None:
            return self._port
        remembered = self._remembered_port()
        if remembered is not None and _port_is_free(remembered):
            return remembered
        return free_port()

    def _wait_until_accepting(self, port: int) -> None:
        deadline = time.monotonic() + _PG_CTL_TIMEOUT
        while True:
            try:
                with self._connect(port):
                    return
            except LocalClusterError as exc:
                if time.monotonic() > deadline:
                    raise LocalClusterError(
                        f"PostgreSQL in {self.data_dir} started but does not accept connections "
                        f"on {HOST}:{port}: {exc} (log: {self.log_file})"
                    ) from exc
                time.sleep(0.05)

    def _connect(self, port: int | None = None) -> psycopg.Connection[TupleRow]:
        port = port if port is not None else self.port
        try:
            return psycopg.connect(
                host=HOST,
                port=port,
                user=SUPERUSER,
                dbname="postgres",
                connect_timeout=_CONNECT_TIMEOUT,
                autocommit=True,
            )
        except psycopg.OperationalError as exc:
            raise LocalClusterError(
                f"cannot connect to the local cluster at {HOST}:{port}: "
                f"{_last_meaningful_line(str(exc))}; is it up?"
            ) from exc

    def _write_settings(self, port: int) -> None:
        settings = {
            **_BASE_SETTINGS,
            "unix_socket_directories": str(self._socket_dir()),
            **self._settings,
            "port": str(port),
        }
        lines = ["# Written by dbops.local on every start; edits are overwritten.\n"]
        lines += [f"{name} = {_quote(value)}\n" for name, value in settings.items()]
        self._write_owned(self.data_dir / SETTINGS_FILE, "".join(lines))

    def _socket_dir_path(self) -> Path:
        if len(str(self.data_dir)) <= _MAX_SOCKET_DIR_LENGTH:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"dbops-{digest}"

    def _socket_dir(self) -> Path:
        """The socket directory, created: the data directory unless its path is too long."""
        short = self._socket_dir_path()
        if short == self.data_dir:
            return short
        account = _server_account()
        owner = account.pw_uid if account is not None else os.geteuid()
        try:
            short.mkdir(mode=0o700, exist_ok=True)
            if account is not None:
                os.chown(short, account.pw_uid, account.pw_gid)
            if short.is_symlink() or short.stat().st_uid != owner:
                raise LocalClusterError(
                    f"socket directory {short} belongs to someone else: remove it"
                )
        except OSError as exc:
            raise LocalClusterError(f"cannot create socket directory {short}: {exc}") from exc
        return short

    def _prepare_data_dir(self) -> None:
        """Create the data directory (mode 0700, owned by the server's OS user) and its parents,
        and check that user can reach it."""
        account = _server_account()
        blocker = next(
            (p for p in [self.data_dir, *self.data_dir.parents] if p.exists() and not p.is_dir()),
            None,
        )
        if blocker is not None:
            raise LocalClusterError(
                f"cannot create data directory {self.data_dir}: {blocker} exists and is not a "
                "directory; choose another data directory"
            )
        missing = [p for p in [self.data_dir, *self.data_dir.parents] if not p.exists()]
        try:
            for path in reversed(missing):
                path.mkdir(mode=0o755)
                if account is not None:
                    os.chown(path, account.pw_uid, account.pw_gid)
            if not (self.data_dir / "PG_VERSION").exists():
                if account is not None:
                    os.chown(self.data_dir, account.pw_uid, account.pw_gid)
                self.data_dir.chmod(0o700)
        except OSError as exc:
            raise LocalClusterError(
                f"cannot create data directory {self.data_dir}: {exc.strerror or exc}"
            ) from exc
        if account is not None:
            _check_reachable(self.data_dir, account)

    def _read_pidfile(self) -> tuple[int | None, int | None]:
        text = _read_text(self.data_dir / "postmaster.pid")
        if text is None:
            return None, None
        lines = text.splitlines()
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            return None, None
        try:
            port = int(lines[3])
        except (IndexError, ValueError):
            port = None
        return pid, port

    def _pidfile_port(self) -> int | None:
        return self._read_pidfile()[1]

    def _remembered_port(self) -> int | None:
        text = _read_text(self.data_dir / STATE_FILE)
        try:
            port = json.loads(text)["port"] if text else None
        except (ValueError, KeyError, TypeError):
            return None
        return port if isinstance(port, int) else None

    def _version(self, major: str) -> str:
        try:
            binary = _binary_version(self._tool("postgres"))
        except LocalClusterError:
            return major
        return binary if binary is not None and binary.split(".")[0] == major else major

    def _tool(self, name: str) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir / name

    def _run_pg_ctl(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        action = args[-1]
        waiting = ["--wait", "--timeout", str(_PG_CTL_TIMEOUT)] if action != "status" else []
        command = [str(self._tool("pg_ctl")), "--pgdata", str(self.data_dir), *waiting, *args]
        return self._run(command, what=f"pg_ctl {action}", timeout=_PG_CTL_TIMEOUT + 30)

    def _run(
        self, command: Sequence[str], *, what: str, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run a server tool as the server's OS user; a failed exit status is the caller's."""
        account = _server_account()
        prefix = ["runuser", "-u", account.pw_name, "--"] if account is not None else []
        try:
            return subprocess.run(
                [*prefix, *command],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",  # the server's OS user may not be able to enter the caller's directory
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalClusterError(
                f"{what} in {self.data_dir} did not finish within {timeout:.0f}s "
                f"(log: {self.log_file})"
            ) from exc
        except OSError as exc:
            raise LocalClusterError(f"cannot run {what}: {exc}") from exc

    def _write_owned(self, path: Path, text: str) -> None:
        try:
            path.write_text(text, encoding="utf-8")
            account = _server_account()
            if account is not None:
                os.chown(path, account.pw_uid, account.pw_gid)
        except OSError as exc:
            raise LocalClusterError(f"cannot write {path}: {exc.strerror or exc}") from exc


def development_cluster(root: Path) -> Cluster:
    """The project's embedded development cluster (what `dbops local` and embedded plans use)."""
    return Cluster(root / DEVELOPMENT_DATA_DIR)


def _server_account() -> pwd.struct_passwd | None:
    """The OS account to run server tools as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise LocalClusterError(
            f"PostgreSQL refuses to run as root and the OS user '{SERVER_OS_USER}' does not exist: "
            f"create it (useradd --system {SERVER_OS_USER}) or install the 'postgresql' package"
        ) from None


def _check_reachable(data_dir: Path, account: pwd.struct_passwd) -> None:
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for directory in reversed(data_dir.parents):
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            searchable = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            searchable = info.st_mode & stat.S_IXGRP
        else:
            searchable = info.st_mode & stat.S_IXOTH
        if not searchable:
            raise LocalClusterError(
                f"the OS user '{account.pw_name}' cannot reach {data_dir}: {directory} "
                f"(mode {stat.S_IMODE(info.st_mode):04o}) is not searchable by it; "
                f"chmod o+x {directory} or choose a data directory elsewhere"
            )


@functools.lru_cache(maxsize=8)
def _binary_version(postgres: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s+(\d+(?:\.\d+)*)", result.stdout)
    return match.group(1) if match else None


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # PostgreSQL binds with SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


_NOISE = ("examine the log output", "waiting for server", "stopped waiting", "hint:", "detail:")
_SEVERE = re.compile(r"\b(FATAL|PANIC|ERROR|error|could not|failed|cannot)\b")


def _last_meaningful_line(text: str) -> str:
    """The line of a tool's output that says what went wrong, for a one-line error message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.lower().startswith(_NOISE)]
    severe = [line for line in lines if _SEVERE.search(line)]
    chosen = " ".join((severe or lines or ["no output"])[-1].split())
    return re.sub(r"^\S+ \S+ \S+ \[\d+\] ", "", chosen)  # drop the log line's timestamp and pid
