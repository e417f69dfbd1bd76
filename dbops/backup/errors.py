"""The backup errors: one line a user can act on, naming the backup, the file or the directory."""

from __future__ import annotations

from dbops.errors import DbopsError


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
