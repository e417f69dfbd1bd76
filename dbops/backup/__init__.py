"""Policy-driven pg_dump backups: create, list, verify, restore, prune, emergency rollback.

    from dbops.backup import BackupManager
    backups = BackupManager.from_plan("production")
    manifest = backups.create(reason="manual")
    backups.verify(manifest.id, restore_test=True)

The planner, drift and health read the catalog without a server: `read_manifests(directory)`,
`overdue(policy, manifests, now)`, `retention_effect(policy, manifests, now)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops.errors import AmbiguousBackup, BackupError, CorruptBackup, UnknownBackup
from dbops.lazy import exports

if TYPE_CHECKING:
    from dbops.backup.catalog import RetentionEffect, retention_effect
    from dbops.backup.manager import BackupManager, backup_before_migrate
    from dbops.backup.manifest import (
        Catalog,
        DamagedBackup,
        FileEntry,
        Manifest,
        Verification,
        read_catalog,
        read_manifests,
    )
    from dbops.backup.results import PruneResult, RestoreResult, VerifyResult
    from dbops.backup.schedule import overdue

# Loaded on first use: the planner and drift need the catalog helpers, not pg_dump's machinery.
_HOMES = {
    "RetentionEffect": "catalog", "retention_effect": "catalog",
    "BackupManager": "manager", "backup_before_migrate": "manager",
    "FileEntry": "manifest", "Manifest": "manifest", "Verification": "manifest",
    "read_manifests": "manifest", "read_catalog": "manifest", "Catalog": "manifest",
    "DamagedBackup": "manifest",
    "PruneResult": "results", "RestoreResult": "results", "VerifyResult": "results",
    "overdue": "schedule",
}

__all__ = [
    "AmbiguousBackup",
    "BackupError",
    "BackupManager",
    "Catalog",
    "CorruptBackup",
    "DamagedBackup",
    "FileEntry",
    "Manifest",
    "PruneResult",
    "RestoreResult",
    "RetentionEffect",
    "UnknownBackup",
    "Verification",
    "VerifyResult",
    "backup_before_migrate",
    "overdue",
    "read_catalog",
    "read_manifests",
    "retention_effect",
]

__getattr__ = exports(__name__, {name: f"{__name__}.{home}" for name, home in _HOMES.items()})
