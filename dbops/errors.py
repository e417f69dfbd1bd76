"""The dbops error tree: a class per failure a caller handles differently, each carrying what a
user needs (the file and line, the object, the SQLSTATE). The CLI is the only place that turns
them into text and exit codes (dbops.cli.exits).

    DbopsError
    ├── PlanError            a plan file could not be loaded (every problem, located)
    ├── UsageError           options or arguments that do not go together; nothing ran
    ├── ConnectFailed        the database could not be reached (alias: ConnectionError)
    ├── LocalClusterError    the development cluster or PostgreSQL's binaries
    ├── InventoryError       the inventory cannot serve the plan
    ├── InvalidChangeSet     a saved plan file that is not a ChangeSet dbops can read
    ├── StalePlan            a ChangeSet that no longer matches the database or the files
    ├── PrivilegeMissing     the role lacks a privilege the plan needs
    ├── DestroyRefused       drops data or access without --allow-destroy
    ├── GateFailed           a health gate found a critical check during apply
    ├── MigrationError       a migration could not be parsed, validated, applied or rolled back
    │   ├── StatementFailed  a statement failed (file, line, SQLSTATE)
    │   └── LockTimeout      another runner holds the migration lock
    └── BackupError          a backup could not be created, read, verified, restored or pruned
        ├── UnknownBackup    no backup has that id (nearest ids) ── AmbiguousBackup
        ├── CorruptBackup    files that do not match the manifest
        └── FailedRestoreTest

DbopsError itself is raised for a failure no caller handles differently from any other (a report
that cannot be written, a port already in use). The pool's own errors (dbops.pool.errors) derive
from these: PoolUnavailable is a ConnectFailed.
"""

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


class UsageError(DbopsError):
    """A command's options or arguments do not go together, or a value is out of range (or the
    user said no); nothing ran."""


class ConnectFailed(DbopsError):
    """The database could not be reached; the message is already masked."""


ConnectionError = ConnectFailed
"""The 0.1 name of ConnectFailed, kept for code that catches it; it shadows the builtin, so new
code imports ConnectFailed."""


class InventoryError(DbopsError):
    """The inventory cannot serve the plan: it does not load, names a server the plan does not,
    runs no primary, or a host lacks what a change needs (its restart command)."""


class InvalidChangeSet(DbopsError):
    """A saved plan file (`dbops plan --out`) that is not a ChangeSet this dbops can read."""


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
    """A health gate found a critical check during apply (apply rolls back); `gate` is the gate's
    label, `checks` the names of the checks that failed."""

    def __init__(self, message: str, *, gate: str = "", checks: tuple[str, ...] = ()) -> None:
        self.gate, self.checks = gate, checks
        super().__init__(message)


class BackupError(DbopsError):
    """A backup could not be created, read, verified, restored or pruned."""


class UnknownBackup(BackupError):
    """No backup has the id asked for; the message lists the nearest ids."""

    def __init__(self, wanted: str, nearest: list[str]) -> None:
        self.wanted, self.nearest = wanted, nearest
        hint = f"; nearest: {', '.join(nearest)}" if nearest else "; there are no backups yet"
        super().__init__(f"no backup {wanted!r}{hint}")


class AmbiguousBackup(UnknownBackup):
    """An id prefix that more than one backup starts with; `nearest` lists every match."""

    def __init__(self, wanted: str, matches: list[str]) -> None:
        self.wanted, self.nearest = wanted, matches
        BackupError.__init__(self, f"backup id {wanted!r} is ambiguous: {len(matches)} backups "
                                   f"start with it ({', '.join(matches)}); give more of the id")


class CorruptBackup(BackupError):
    """A backup's files do not match its manifest; `problems` name each file and both checksums."""

    def __init__(self, backup_id: str, problems: list[str]) -> None:
        self.backup_id, self.problems = backup_id, problems
        super().__init__(f"backup {backup_id} is corrupt, refusing to restore it: "
                         + "; ".join(problems))


class FailedRestoreTest(BackupError):
    """A backup was written but its restore test failed: it is kept (marked failed, counted by
    nothing) and `problems` name the cause."""

    def __init__(self, backup_id: str, problems: list[str]) -> None:
        self.backup_id, self.problems = backup_id, problems
        super().__init__(f"backup {backup_id} FAILED its restore test and is not usable (kept, "
                         "marked failed): " + "; ".join(problems))
