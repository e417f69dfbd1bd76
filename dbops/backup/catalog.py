"""The catalog's rules, pure (the manifests and `now` are given): which backups retention deletes
and how the earliest restorable point moves, finding a backup by id, the latest of a reason,
whether a restore test is due.

Retention: the newest `keep_last` usable backups (their latest verification not failed) are
kept; beyond them, a backup older than `max_age` is deleted. A failed backup never takes one of
the `keep_last` places, and a damaged one (its manifest unreadable) is not in the catalog's
backups at all. The floor is never crossed: the newest verified backup (its latest verification
passed) is kept whatever the policy says, and when no backup is verified, the newest usable one
is, so no policy can delete every usable backup. A failed backup is never the floor.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dbops.backup.manifest import Manifest
from dbops.config.model import BackupPolicy, Retention
from dbops.config.units import format_duration
from dbops.errors import AmbiguousBackup, UnknownBackup

_RESTORE_TEST_PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7),
                         "monthly": timedelta(days=31)}


@dataclass(frozen=True)
class RetentionEffect:
    """What pruning under a policy would do now: the ids deleted (with why), the ids kept, the
    floor, and the earliest restorable point (oldest usable backup's snapshot) before and after."""

    delete: tuple[str, ...]
    keep: tuple[str, ...]
    floor: str | None
    earliest_before: datetime | None
    earliest_after: datetime | None
    why: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.delete

    def lines(self) -> list[str]:
        if not self.delete:
            return [f"retention keeps all {len(self.keep)} backup(s)"]
        out = [f"retention deletes {len(self.delete)} backup(s), keeps {len(self.keep)}:"]
        out += [f"  - {backup_id}: {self.why[backup_id]}" for backup_id in self.delete]
        if self.earliest_before != self.earliest_after:
            out.append(f"  earliest restorable point moves from {_when(self.earliest_before)} "
                       f"to {_when(self.earliest_after)}")
        return out


def retention_effect(policy: BackupPolicy, manifests: Sequence[Manifest],
                     now: datetime) -> RetentionEffect:
    """Which backups a prune under `policy` would delete now, and how the earliest restorable
    point moves. Pure: `manifests` are the catalog's backups (any order), `now` is aware."""
    return select(policy.retention, manifests, now)


def select(retention: Retention, manifests: Sequence[Manifest], now: datetime) -> RetentionEffect:
    newest_first = sorted(manifests, key=lambda m: (m.started_at, m.id), reverse=True)
    floor = _floor(newest_first)
    delete: list[str] = []
    why: dict[str, str] = {}
    usable = 0
    for manifest in newest_first:
        age = now - manifest.started_at
        if not manifest.failed:
            usable += 1
            if usable <= retention.keep_last:
                continue
        if age <= retention.max_age:
            continue
        if floor is not None and manifest.id == floor.id:
            continue
        delete.append(manifest.id)
        why[manifest.id] = (f"{_days(age)} old, beyond max_age {format_duration(retention.max_age)}"
                            + (" (its verification FAILED)" if manifest.failed else
                               f" and keep_last {retention.keep_last}"))
    kept = [m for m in newest_first if m.id not in why]
    return RetentionEffect(
        delete=tuple(delete), keep=tuple(m.id for m in kept),
        floor=floor.id if floor else None,
        earliest_before=_earliest(newest_first), earliest_after=_earliest(kept), why=why)


def _floor(newest_first: Sequence[Manifest]) -> Manifest | None:
    for candidates in ([m for m in newest_first if m.verified],
                       [m for m in newest_first if not m.failed]):
        if candidates:
            return candidates[0]
    return None


def _earliest(manifests: Sequence[Manifest]) -> datetime | None:
    usable = [m.started_at for m in manifests if not m.failed]
    return min(usable) if usable else None


def resolve(wanted: str, manifests: Sequence[Manifest]) -> Manifest:
    """The backup with id `wanted` (or the one id it is a prefix of); AmbiguousBackup listing
    every match when more than one id starts with it, UnknownBackup listing the nearest ids
    otherwise."""
    by_id = {m.id: m for m in manifests}
    if wanted in by_id:
        return by_id[wanted]
    prefixed = [m for m in manifests if wanted and m.id.startswith(wanted)]
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise AmbiguousBackup(wanted, sorted(m.id for m in prefixed))
    ids = sorted(by_id)
    nearest = difflib.get_close_matches(wanted, ids, n=3, cutoff=0.4)
    raise UnknownBackup(wanted, nearest or ids[-3:])


def latest(manifests: Sequence[Manifest], reason: str | None = None) -> Manifest | None:
    """The newest usable backup (its verification not failed), of `reason` when given."""
    usable = [m for m in manifests if not m.failed and (reason is None or m.reason == reason)]
    return max(usable, key=lambda m: (m.started_at, m.id), default=None)


def restore_test_due(policy: BackupPolicy, manifests: Sequence[Manifest], now: datetime) -> bool:
    """Whether the policy's `verify.restore_test` wants a restore test after the next backup:
    `each` always, `daily`/`weekly`/`monthly` when no restore test passed within that period."""
    if policy.restore_test == "never":
        return False
    period = _RESTORE_TEST_PERIODS.get(policy.restore_test)
    if period is None:
        return True
    return not any(m.restore_test is not None and m.restore_test.ok
                   and now - m.restore_test.at < period for m in manifests)


def _days(age: timedelta) -> str:
    if age >= timedelta(days=2):
        return f"{age.days} days"
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours >= 2 else f"{age.total_seconds() / 60:.0f} minutes"


def _when(moment: datetime | None) -> str:
    return "nothing" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
