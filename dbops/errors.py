"""The dbops error tree. The CLI is the only place that turns these into text and exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class DbopsError(Exception):
    """Base of every error dbops raises on purpose; its message is one line a user can act on."""


@dataclass(frozen=True)
class Problem:
    """One problem in a plan file, located as precisely as the source allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlanError(DbopsError):
    """A plan file could not be loaded; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConnectionError(DbopsError):
    """The database could not be reached; the message is already masked."""


class LocalClusterError(DbopsError):
    """The embedded development cluster could not be started, stopped or found."""


class MigrationError(DbopsError):
    """A migration could not be parsed, validated, applied or rolled back."""


class StatementFailed(MigrationError):
    """A migration statement failed; names the file, line, statement and SQLSTATE."""

    def __init__(
        self, *, file: str, line: int, statement: str, sqlstate: str | None, reason: str
    ) -> None:
        self.file, self.line, self.statement = file, line, statement
        self.sqlstate, self.reason = sqlstate, reason
        super().__init__(f"{file}:{line}: {statement}: {reason} (SQLSTATE {sqlstate or 'unknown'})")


class LockTimeout(MigrationError):
    """Another runner holds the migration lock and did not release it in time."""


class StalePlan(DbopsError):
    """A ChangeSet (saved or just made) that no longer matches the live database or the files it
    was made from, or a saved plan file that differs from what the plan makes now."""


class PrivilegeMissing(DbopsError):
    """The connecting role lacks a privilege the plan needs; apply refused before changing
    anything (`dbops doctor` prints the statements that grant it)."""


class DestroyRefused(DbopsError):
    """The ChangeSet drops data or access and apply was not given --allow-destroy."""


class GateFailed(DbopsError):
    """A health gate failed during apply."""
