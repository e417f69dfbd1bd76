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


class CorruptBackup(BackupError):
    """A backup's files do not match its manifest; `problems` name each file and both checksums."""

    def __init__(self, backup_id: str, problems: list[str]) -> None:
        self.backup_id, self.problems = backup_id, problems
        super().__init__(f"backup {backup_id} is corrupt, refusing to restore it: "
                         + "; ".join(problems))
