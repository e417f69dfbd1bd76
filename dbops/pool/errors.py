"""Errors of the runtime pool: typed, each carrying what a caller needs to act, messages one line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dbops.errors import ConnectionError as DbopsConnectionError
from dbops.errors import DbopsError


@dataclass(frozen=True)
class Holder:
    """Who holds a checked-out connection: where it was checked out, by whom, for how long."""

    node: str
    file: str
    line: int
    function: str
    holder: str
    held_for: float

    @property
    def site(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"

    def __str__(self) -> str:
        return f"held {self.held_for:.2f}s by {self.holder} at {self.site}"


class PoolError(DbopsError):
    """Base of every error the runtime pool raises (SQL errors of a statement stay psycopg's)."""


class PoolConfigError(PoolError):
    """The pool cannot be built or called as asked: sizes outside the role's connection budget,
    an unknown intent or isolation level, and the like."""


class PoolUnavailable(PoolError, DbopsConnectionError):
    """A server could not be reached: no connection could be opened. Nothing was sent, so the
    call did not run; it is also a dbops ConnectionError."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(message)


class PoolClosed(PoolError):
    """The manager was not opened yet, or was shut down."""


class PoolTimeout(PoolError):
    """A checkout got no connection within its timeout; the call did not run."""


class PoolExhausted(PoolTimeout):
    """No connection became free within the acquire timeout; names the current holders.

    `waiting` counts the other callers still waiting, not the one that gave up.
    """

    def __init__(
        self,
        *,
        node: str,
        timeout: float,
        size: int,
        max_size: int,
        in_use: int,
        waiting: int,
        holders: Sequence[Holder],
    ) -> None:
        self.node, self.timeout = node, timeout
        self.size, self.max_size, self.in_use, self.waiting = size, max_size, in_use, waiting
        self.holders = tuple(sorted(holders, key=lambda h: h.held_for, reverse=True))
        listed = "; ".join(f"[{n}] {h}" for n, h in enumerate(self.holders[:10], 1))
        more = f"; and {len(self.holders) - 10} more" if len(self.holders) > 10 else ""
        super().__init__(
            f"no connection to {node} within {timeout:.2f}s: pool size {size} (max {max_size}), "
            f"{in_use} in use, {waiting} other caller{'' if waiting == 1 else 's'} waiting; "
            f"holders: {listed or 'none'}{more}"
        )


class ConnectionLost(PoolError):
    """The server went away during a call (restart, crash, terminated backend).

    `may_have_committed` is True when the statement (or COMMIT) had been sent: the server may
    have applied it before the loss, so the pool never sends it again; False when it cannot have
    been applied (nothing was committed). Later calls get fresh connections; retrying is the
    caller's decision.
    """

    def __init__(self, node: str, reason: str, *, may_have_committed: bool) -> None:
        self.node, self.reason, self.may_have_committed = node, reason, may_have_committed
        outcome = (
            "it may or may not have been applied"
            if may_have_committed
            else "it was not applied"
        )
        super().__init__(
            f"the connection to {node} was lost during the call ({reason}); {outcome}; "
            "later calls use new connections"
        )


# The server ended the session: admin_shutdown, crash_shutdown, cannot_connect_now,
# idle_session_timeout. A statement that got one of these back may still have run (and, in
# autocommit, committed) before the session was ended: the pool never sends it again.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03", "57P05"})


def connection_lost(exc: BaseException, conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether `exc` means the session is gone (as opposed to an error in the statement)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return conn.broken or conn.closed or exc.sqlstate in _SESSION_ENDED


def reason_of(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
