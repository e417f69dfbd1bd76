"""The only place that turns a plan into connection parameters and the only place that sees passwords.

Every message that can carry a connection string passes through `mask` before a user sees it;
`mask` hides credentials where they are credentials, and is the one model for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from dbops.config.model import Plan, Replica, Secret
from dbops.errors import ConnectFailed

T = TypeVar("T")

MASK = "***"

# Credentials where they are credentials, and nowhere else: masking a known password wherever it
# appears as a substring would be an oracle (a password `127` turns `127.0.0.1` into `***.0.0.1`).
# Messages are built without secrets in the first place; these catch what a library echoes.
_CREDENTIALS = [
    # password=... and PGPASSWORD=... pairs (libpq keyword strings, environments), quoted or not;
    # unquoted, up to the next space (more rather than less in a URL's query)
    re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)",
               re.IGNORECASE),
    # "password": "..." in JSON
    re.compile(r'("password"\s*:\s*")((?:[^"\\]|\\.)*)(?=")', re.IGNORECASE),
    # the password of a URL's userinfo: scheme://user:PASSWORD@host
    re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s/@]*)(?=@)", re.IGNORECASE),
]


def mask(text: str) -> str:
    """`text` with every credential masked where it is one: `password=` pairs (DSN fields,
    PGPASSWORD), JSON `"password"` members and the password in a URL's userinfo."""
    for pattern in _CREDENTIALS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def reveal(secret: Secret) -> str:
    """A secret's value for the one call that needs it (a webhook URL carrying a token). The
    caller keeps it out of every message it writes."""
    return secret.reveal()


@dataclass(frozen=True)
class Endpoint:
    """Where one server of the plan lives, and how to log in. Its repr never shows the password.
    The TLS files (paths) are libpq's sslrootcert, sslcert and sslkey; None leaves libpq's
    defaults."""

    host: str
    port: int
    dbname: str
    user: str
    sslmode: str
    connect_timeout: timedelta
    password: str | None = None
    name: str = "primary"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None

    @property
    def tls_files(self) -> dict[str, str]:
        """The TLS files the plan names, by libpq keyword."""
        given = {"sslrootcert": self.sslrootcert, "sslcert": self.sslcert,
                 "sslkey": self.sslkey}
        return {key: value for key, value in given.items() if value is not None}

    def __repr__(self) -> str:
        return f"Endpoint({self.describe()})"

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def endpoint(plan: Plan, replica: Replica | None = None, *, dbname: str | None = None) -> Endpoint:
    """The primary's (or a replica's) endpoint; the embedded development cluster resolves its port here."""
    db = plan.database
    host, port = db.host, db.port
    if db.embedded:
        host, port = embedded_address(plan.root)
    if replica is not None:
        host, port = replica.host, replica.port
    password = db.password.reveal() if db.password is not None else None
    return Endpoint(
        host=host,
        port=port,
        dbname=dbname or db.name,
        user=db.user,
        sslmode=db.sslmode,
        connect_timeout=db.connect_timeout,
        password=password,
        name=replica.name if replica else "primary",
        sslrootcert=_path(db.sslrootcert),
        sslcert=_path(db.sslcert),
        sslkey=_path(db.sslkey),
    )


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


def embedded_address(root: Path) -> tuple[str, int]:
    # lazy: the development cluster (local.py) only for embedded plans, out of `import dbops.pool`
    from dbops.local import development_cluster

    status = development_cluster(root).status()
    if not status.running or status.port is None:
        raise ConnectFailed(
            "the embedded development database is not running: start it with `dbops local up`"
        )
    return "127.0.0.1", status.port


def params(
    ep: Endpoint,
    *,
    command: str,
    statement_timeout: timedelta | None = None,
    lock_timeout: timedelta | None = None,
) -> dict[str, Any]:
    """psycopg.connect keyword arguments for `ep`, tagged `application_name=dbops/<command>`."""
    options = []
    if statement_timeout is not None:
        options.append(f"-c statement_timeout={int(statement_timeout.total_seconds() * 1000)}")
    if lock_timeout is not None:
        options.append(f"-c lock_timeout={int(lock_timeout.total_seconds() * 1000)}")
    kwargs: dict[str, Any] = {
        "host": ep.host,
        "port": ep.port,
        "dbname": ep.dbname,
        "user": ep.user,
        "sslmode": ep.sslmode,
        "connect_timeout": max(1, int(ep.connect_timeout.total_seconds())),
        "application_name": f"dbops/{command}",
    }
    kwargs.update(ep.tls_files)
    if ep.password:
        kwargs["password"] = ep.password
    if options:
        kwargs["options"] = " ".join(options)
    return kwargs


def open_connection(
    ep: Endpoint,
    *,
    command: str,
    autocommit: bool = False,
    statement_timeout: timedelta | None = None,
    lock_timeout: timedelta | None = None,
) -> psycopg.Connection[Any]:
    """A connection to `ep`; failures raise dbops ConnectFailed with a masked one-line reason."""
    try:
        return psycopg.connect(
            autocommit=autocommit,
            **params(
                ep, command=command, statement_timeout=statement_timeout, lock_timeout=lock_timeout
            ),
        )
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConnectFailed(mask(f"cannot connect to {ep.describe()}: {reason}"
                                   f"{_tls_context(ep, reason)}")) from None


def _tls_context(ep: Endpoint, reason: str) -> str:
    """What the plan asked of TLS, when TLS is what failed (the reason names the cause)."""
    if not any(word in reason for word in ("certificate", "SSL", "ssl")):
        return ""
    files = ", ".join(f"{key} {value}" for key, value in ep.tls_files.items())
    return f" (sslmode {ep.sslmode}{', ' + files if files else ''})"


# What a child process of dbops gets of dbops' own environment: where programs and the home
# directory are (~/.pgpass), the language of messages, the time zone, the temporary directory.
_CHILD_BASICS = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ",
                 "TMPDIR", "PGPASSFILE")


def libpq_environment(ep: Endpoint, command: str) -> dict[str, str]:
    """The whole environment of a libpq client tool (pg_dump, pg_restore, psql) run for `ep`:
    a few basics from dbops' own environment and `ep`'s connection settings as libpq variables
    (TLS included, PGPASSWORD when the plan gives a password). Nothing else of dbops'
    environment: no DB_PASSWORD, no other PG* variable, no unrelated secret."""
    env = {name: value for name in _CHILD_BASICS if (value := os.environ.get(name)) is not None}
    env.update({
        "PGSSLMODE": ep.sslmode,
        "PGAPPNAME": f"dbops/{command}",
        "PGCONNECT_TIMEOUT": str(max(1, int(ep.connect_timeout.total_seconds()))),
    })
    names = {"sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}
    env.update({names[key]: value for key, value in ep.tls_files.items()})
    if ep.password:
        env["PGPASSWORD"] = ep.password
    return env


@contextmanager
def connection(
    plan: Plan,
    *,
    command: str,
    replica: Replica | None = None,
    dbname: str | None = None,
    autocommit: bool = False,
    statement_timeout: timedelta | None = None,
    lock_timeout: timedelta | None = None,
) -> Iterator[psycopg.Connection[Any]]:
    """Open, yield and always close a connection to the plan's primary (or one replica)."""
    ep = endpoint(plan, replica, dbname=dbname)
    conn = open_connection(
        ep,
        command=command,
        autocommit=autocommit,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
    )
    try:
        yield conn
    finally:
        conn.close()


class KeptSession:
    """One autocommit session a command uses again and again for its own bookkeeping (an
    apply's audit row, progress, error-rate baselines and final record: one session where each
    used to open its own, which a fleet rollout pays per target). Opened on first use; when the
    server dropped it (a restart the apply made), the next use opens a new one and runs once
    more. Close it with `close()`."""

    def __init__(self, ep: Endpoint, *, command: str) -> None:
        self._ep, self._command = ep, command
        self._conn: psycopg.Connection[Any] | None = None

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(conn)`; run again on a new session when the kept one turns out to be gone
        (`work` must be safe to repeat then: its transaction, if any, did not commit)."""
        conn = self._conn
        kept = conn is not None and not conn.closed and not conn.broken
        if conn is None or not kept:
            conn = self._open()
        try:
            return work(conn)
        except psycopg.OperationalError:
            if not kept or not conn.broken:
                raise
        return work(self._open())

    def _open(self) -> psycopg.Connection[Any]:
        self.close()
        self._conn = open_connection(self._ep, command=self._command, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def with_database(ep: Endpoint, dbname: str) -> Endpoint:
    return replace(ep, dbname=dbname)


def environment_endpoint(environ: Mapping[str, str], dsn: str | None = None) -> Endpoint:
    """The endpoint a plan does not name yet: a libpq connection string, or the DB_HOST,
    DB_PORT, DB_NAME, DB_USER, DB_PASSWORD and DB_SSL_MODE variables (`dbops import`)."""
    if dsn is not None:
        try:
            given = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
        except psycopg.ProgrammingError as exc:
            # libpq quotes the piece it could not parse, which may be part of the password
            reason = re.sub(r'"[^"]*"', '"..."', " ".join(str(exc).split()))
            raise ConnectFailed(mask(f"--dsn: {reason}")) from None
    else:
        names = {"host": "DB_HOST", "port": "DB_PORT", "dbname": "DB_NAME", "user": "DB_USER",
                 "password": "DB_PASSWORD", "sslmode": "DB_SSL_MODE"}
        given = {key: environ[name] for key, name in names.items() if environ.get(name)}
    if "dbname" not in given:
        raise ConnectFailed("no database named: set DB_NAME (and DB_HOST, DB_PORT, DB_USER, "
                              "DB_PASSWORD) or give --dsn")
    if not given.get("port", "5432").isdigit():
        raise ConnectFailed(f"port {given['port']!r} is not a number")
    password = given.get("password")
    return Endpoint(
        host=given.get("host", "127.0.0.1"),
        port=int(given.get("port", "5432")),
        dbname=given["dbname"],
        user=given.get("user", "postgres"),
        sslmode=given.get("sslmode", "prefer"),
        connect_timeout=timedelta(seconds=int(given.get("connect_timeout", "5").strip() or 5)
                                  if given.get("connect_timeout", "5").strip().isdigit() else 5),
        password=password,
    )
