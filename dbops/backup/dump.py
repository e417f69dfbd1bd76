"""pg_dump, pg_dumpall and pg_restore runs.

The password reaches the tools through the environment (PGPASSWORD), never the command line, and
`-w` stops them from ever prompting. Their environment is given whole (connect.libpq_environment):
the plan's connection and TLS settings and a few basics, never the rest of dbops' environment.
The database name travels as a conninfo (`dbname=...`), so a name containing `=` is not taken
for a connection string. Every tool runs with umask 077; its stderr goes to a private temporary
file (a pipe could fill while the dump runs) and its last line, masked, is the error message.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal

from psycopg.conninfo import make_conninfo

from dbops import progress
from dbops.connect import Endpoint, libpq_environment, mask
from dbops.errors import BackupError, LocalClusterError
from dbops.pgbin import find_bindir

Tool = Literal["pg_dump", "pg_dumpall", "pg_restore"]


@dataclass(frozen=True)
class Started:
    """A tool process that just started: what it is, its pid, and what it writes or reads."""

    tool: Tool
    pid: int
    path: Path
    argv: tuple[str, ...]
    env: Mapping[str, str]  # its whole environment, exactly as it was given


OnStart = Callable[[Started], None]


@functools.cache
def tool_path(name: Tool) -> Path:
    """The newest installed client tool (a newer pg_dump reads older servers, not the reverse)."""
    try:
        candidate = find_bindir() / name
        if candidate.is_file():
            return candidate
    except LocalClusterError:
        pass  # a client-only machine: no initdb, but pg_dump on PATH will do
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools "
                          "(apt-get install -y postgresql-client) or put them on PATH")
    return Path(found)


@functools.cache
def pg_dump_version() -> str:
    out = subprocess.run([str(tool_path("pg_dump")), "--version"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() or "unknown"


def environment(ep: Endpoint, command: str) -> dict[str, str]:
    """The environment of a tool that connects to `ep`."""
    return libpq_environment(ep, command)


def offline_environment() -> dict[str, str]:
    """The environment of a tool that reads files only (pg_restore --list)."""
    return {name: value for name in ("PATH", "HOME", "LANG", "LC_ALL", "LC_MESSAGES", "TZ",
                                     "TMPDIR") if (value := os.environ.get(name)) is not None}


def _server(ep: Endpoint) -> list[str]:
    return ["-h", ep.host, "-p", str(ep.port), "-U", ep.user, "-w"]


class Run:
    """One started tool. `wait()` returns when it succeeded and raises BackupError otherwise."""

    def __init__(self, tool: Tool, args: Sequence[str], *, env: dict[str, str], path: Path,
                 on_start: OnStart | None, capture: bool = False) -> None:
        self.tool = tool
        self.path = path
        argv = (str(tool_path(tool)), *args)
        # Lives as long as the process, closed by wait() or stop().
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=self._stderr,
                umask=0o077)
        except OSError as exc:
            self._stderr.close()
            raise BackupError(f"cannot start {tool}: {exc.strerror}") from None
        if on_start is not None:
            on_start(Started(tool, self.process.pid, path, argv, MappingProxyType(dict(env))))

    def wait(self) -> str:
        """Wait for the tool; its stdout (when captured) on success."""
        try:
            out, _ = self.process.communicate()
            code = self.process.returncode
            if code < 0:
                raise BackupError(f"{self.tool} was killed by {signal.Signals(-code).name}")
            if code != 0:
                doing = "reading" if self.tool == "pg_restore" else "writing"
                raise BackupError(mask(f"{self.tool} failed (exit {code}) {doing} {self.path}: "
                                       f"{self._cause()}"))
            return out.decode(errors="replace") if out else ""
        finally:
            self._stderr.close()

    def stop(self) -> None:
        """Kill the tool (when dbops itself failed while it ran) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stderr.close()

    def _cause(self) -> str:
        """The first error the tool printed, with the server's context for it (`CONTEXT:`,
        `Command was:`): with parallel jobs the last line only says a worker died."""
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines()
                 if ln.strip()]
        if not lines:
            return "no output"
        first = next((n for n, ln in enumerate(lines) if f"{self.tool}: error:" in ln),
                     len(lines) - 1)
        cause = [lines[first]]
        for line in lines[first + 1:]:
            if line.startswith(f"{self.tool}:"):
                break
            if line.startswith(("CONTEXT:", "Command was:", "DETAIL:", "HINT:")):
                cause.append(line if len(line) <= 200 else line[:197] + "...")
        return " ".join("; ".join(cause).split())


def start_dump(ep: Endpoint, output: Path, *, snapshot: str, fmt: str, jobs: int,
               on_start: OnStart | None) -> Run:
    """Start pg_dump of `ep` in the exported `snapshot` (the caller keeps it open meanwhile)."""
    args = [*_server(ep), "-d", make_conninfo(dbname=ep.dbname), f"--snapshot={snapshot}",
            "-F", "c" if fmt == "custom" else "d", "-f", str(output)]
    if fmt == "directory" and jobs > 1:
        args += ["-j", str(jobs)]
    return Run("pg_dump", args, env=environment(ep, "backup-create"), path=output,
               on_start=on_start)


def dump_globals(ep: Endpoint, output: Path, on_start: OnStart | None) -> None:
    """Roles and tablespaces; role passwords (SCRAM verifiers, secrets) are left out."""
    args = [*_server(ep), "-l", ep.dbname, "--globals-only", "--no-role-passwords",
            "-f", str(output)]
    Run("pg_dumpall", args, env=environment(ep, "backup-create"), path=output,
        on_start=on_start).wait()


def list_archive(archive: Path, on_start: OnStart | None = None) -> list[str]:
    """The archive's table of contents (pg_restore --list), comment lines left out."""
    out = Run("pg_restore", ["--list", str(archive)], env=offline_environment(), path=archive,
              on_start=on_start, capture=True).wait()
    return [line for line in out.splitlines() if line.strip() and not line.startswith(";")]


def restore(ep: Endpoint, archive: Path, *, jobs: int, on_start: OnStart | None,
            scratch: bool = False) -> None:
    """Restore `archive` into the (new, empty) database `ep` names; stops at the first error.
    One transaction when it runs in one job, so a failure leaves the database empty.

    A `scratch` restore (a restore test) leaves out owners and privileges (--no-owner
    --no-acl): it proves the schema and the rows come back. The privileges name cluster roles
    and, for dbops' own grant of pg_reload_conf(), a catalog function only a superuser may
    grant on, so a least-privilege role could never restore them into a database of its own."""
    args = [*_server(ep), "-d", make_conninfo(dbname=ep.dbname), "--exit-on-error"]
    if scratch:
        args += ["--no-owner", "--no-acl"]
    args += ["-j", str(jobs)] if jobs > 1 else ["--single-transaction"]
    with progress.step(f"pg_restore of {archive.parent.name} into {ep.dbname}"):
        Run("pg_restore", [*args, str(archive)], env=environment(ep, "backup-restore"),
            path=archive, on_start=on_start).wait()
