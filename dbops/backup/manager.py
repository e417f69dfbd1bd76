"""BackupManager: the backup commands as a Python API (what the CLI, the migration engine and
applications call). Wires the plan's policy, the server (database, dump) and the catalog on disk
(storage, manifest) together; the rules themselves live in catalog and schedule."""

from __future__ import annotations

import builtins
import contextlib
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from dbops import __version__, ledger, progress
from dbops.backup import catalog, database, dump, record, schedule, storage
from dbops.backup import manifest as manifests
from dbops.backup.catalog import RetentionEffect
from dbops.backup.dump import OnStart
from dbops.backup.manifest import MANIFEST, REASON, Catalog, FileEntry, Manifest, Verification
from dbops.backup.results import PruneResult, RestoreResult, VerifyResult, size
from dbops.config.load import load_plan
from dbops.config.model import BackupPolicy, Plan
from dbops.connect import connection, endpoint, mask, with_database
from dbops.errors import BackupError, CorruptBackup, DbopsError, FailedRestoreTest

if TYPE_CHECKING:
    from dbops.backup.pitr import PgBackRestBackups

Notify = Callable[[str], None]

_SAFETY = "before-restore"
_TIME_CRITICAL = ("before-migrate", _SAFETY)  # no restore test may delay these


class BackupManager:
    """Create, list, verify, restore and prune one plan's backups (its `backup` policy)."""

    def __init__(self, plan: Plan, *, notify: Notify | None = None,
                 on_start: OnStart | None = None) -> None:
        self.plan = plan
        self._notify: Notify = notify or (lambda message: None)
        self.on_start = on_start
        """Called with each pg_dump/pg_dumpall/pg_restore process as it starts (pid, path)."""

    @classmethod
    def from_plan(cls, plan: Plan | str, *, root: Path | None = None,
                  notify: Notify | None = None) -> BackupManager:
        """From a Plan, or an environment name / plan path resolved like the CLI does."""
        return cls(plan if isinstance(plan, Plan) else load_plan(plan, root=root), notify=notify)

    @property
    def policy(self) -> BackupPolicy:
        if self.plan.backup is None:
            raise BackupError(f"plan {self.plan.environment} has no backup section: add one "
                              "(backup: {directory: ...}) to use backups")
        return self.plan.backup

    @property
    def pgbackrest(self) -> PgBackRestBackups | None:
        """The pgbackrest engine's commands when the plan's policy chooses it, else None."""
        if self.policy.engine != "pgbackrest":
            return None
        from dbops.backup.pitr import PgBackRestBackups

        return PgBackRestBackups(self.plan, notify=self._notify)

    @property
    def directory(self) -> Path:
        return self.policy.directory

    def list_backups(self) -> builtins.list[Manifest]:
        """Every complete backup, oldest first (`list()` is the same, kept from 0.1)."""
        return manifests.read_manifests(self.directory)

    def catalog(self) -> Catalog:
        """Every complete backup, oldest first, and every damaged one (listed as CORRUPT)."""
        return manifests.read_catalog(self.directory)

    def get(self, backup_id: str) -> Manifest:
        """The backup with this id (or unique id prefix); UnknownBackup names the nearest ids,
        BackupError says why a damaged one cannot be used."""
        found = self.catalog()
        for damaged in found.damaged:
            if damaged.id == backup_id:
                raise BackupError(f"backup {damaged.id} is CORRUPT: {damaged.reason}")
        return catalog.resolve(backup_id, found.backups)

    def latest(self, reason: str | None = None) -> Manifest | None:
        """The newest usable backup (verification not failed), of `reason` when given."""
        return catalog.latest(self.list_backups(), reason)

    def overdue(self, now: datetime | None = None) -> str | None:
        return schedule.overdue(self.policy, self.list_backups(), now or datetime.now(UTC))

    def retention_effect(self, now: datetime | None = None) -> RetentionEffect:
        return catalog.retention_effect(self.policy, self.list_backups(), now or datetime.now(UTC))

    def create(self, reason: str = "manual") -> Manifest:
        """Dump the database into a new backup and return its manifest.

        pg_dump runs in a snapshot exported from a REPEATABLE READ transaction that stays open
        for the dump, and the same transaction counts every table's rows meanwhile: the counts
        are exactly the dump's. Before the dump, the backup directory must have room for the
        database's data (see `space_needed`). The backup is written into `.tmp-<id>`, fsynced,
        checked (pg_restore --list, and the restore test when one is due), given its manifest
        last and renamed into place; a dump that fails, is killed or finds the disk full leaves
        nothing behind and touches no other backup.
        """
        if not REASON.match(reason):
            raise BackupError(f"reason {reason!r}: one line of at most 100 letters, digits, "
                              "spaces and punctuation")
        policy = self.policy
        before = self.list_backups()
        storage.ensure_directory(self.directory)
        try:
            return self._create(policy, reason, before)
        except OSError as exc:  # the storage layer names its own failures; this is the backstop
            raise storage.failure("write the backup into", exc.filename or self.directory,
                                  exc) from None

    def _create(self, policy: BackupPolicy, reason: str,
                before: builtins.list[Manifest]) -> Manifest:
        ep = endpoint(self.plan)
        clock = time.monotonic()
        archive_name = (manifests.CUSTOM_ARCHIVE if policy.format == "custom"
                        else manifests.DIRECTORY_ARCHIVE)
        with contextlib.ExitStack() as stack:
            conn, facts = stack.enter_context(database.exported_snapshot(ep))
            _check_space(self.directory, facts.data_size)
            started_at = datetime.now(UTC)  # the snapshot's moment, to the millisecond
            backup_id = f"{started_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
            folder = stack.enter_context(storage.TempFolder(self.directory, backup_id))
            self._notify(f"backup {backup_id}: dumping {ep.describe()} ({policy.format} format"
                         f"{f', {policy.jobs} jobs' if policy.format == 'directory' else ''})")
            with progress.step(f"backup {backup_id}: pg_dump of {ep.dbname}",
                               watch=folder.path / archive_name):
                run = dump.start_dump(ep, folder.path / archive_name, snapshot=facts.snapshot,
                                      fmt=policy.format, jobs=policy.jobs,
                                      on_start=self.on_start)
                try:
                    counts = database.count_rows(conn, facts.tables)
                except BaseException:
                    run.stop()
                    raise
                run.wait()
            conn.close()  # pg_dump is done with the snapshot: end the transaction now
            if policy.globals:
                dump.dump_globals(ep, folder.path / manifests.GLOBALS, self.on_start)
            digests = storage.seal(folder.path)
            _check_toc(folder.path / archive_name, counts, self.on_start)
            # The hashes were read back from the files as fsynced and pg_restore read the
            # archive: that is the policy's check after each backup (an immediate second read
            # would come from the same page cache and could find nothing more).
            checked = (Verification(datetime.now(UTC), True) if policy.verify_checksums
                       else None)
            manifest = Manifest(
                id=backup_id, environment=self.plan.environment, database=ep.dbname,
                server=f"{ep.host}:{ep.port}", server_version=facts.server_version,
                pg_dump_version=dump.pg_dump_version(), dbops_version=__version__,
                migration_version=facts.migration_version, reason=reason,
                started_at=started_at, finished_at=datetime.now(UTC),
                duration_s=time.monotonic() - clock, size=sum(d.size for d in digests),
                format=policy.format, jobs=policy.jobs, globals=policy.globals,
                encoding=facts.encoding, lc_collate=facts.lc_collate, lc_ctype=facts.lc_ctype,
                files=tuple(FileEntry(d.path, d.size, d.sha256) for d in digests),
                row_counts=counts, archive_check=checked, folder=folder.path)
            if reason not in _TIME_CRITICAL and catalog.restore_test_due(policy, before,
                                                                          started_at):
                # Before publication, so its outcome goes into the one manifest write.
                seconds, tables, failures = self._restore_test(manifest)
                # Name the folder the backup will be kept in, not the one it is written in.
                failures = [f.replace(str(folder.path), str(folder.final)) for f in failures]
                manifest = manifest.with_check(Verification(
                    datetime.now(UTC), not failures, tuple(failures), seconds, tables),
                    restore=True)
            manifests.write(manifest, folder.path)
            final = folder.publish()
        manifest = replace(manifest, folder=final)
        self._record_catalog()
        if manifest.restore_test is not None and not manifest.restore_test.ok:
            raise FailedRestoreTest(backup_id, list(manifest.restore_test.problems))
        self._notify(f"backup {backup_id} complete: {manifest.size} bytes, {len(counts)} tables, "
                     f"migration {manifest.migration_version or 'none'}, "
                     f"{manifest.duration_s:.1f}s")
        return manifest

    def verify(self, backup_id: str, restore_test: bool = False) -> VerifyResult:
        """Check every file's SHA-256 against the manifest and read the archive's table of
        contents (pg_restore --list); with `restore_test`, also restore it into a scratch
        database, compare every table's rows with the numbers recorded at backup time, record
        the restore's duration and drop the scratch database. The outcome is recorded in the
        manifest (a failed backup stops counting as verified)."""
        backup = self.get(backup_id)
        problems = _file_problems(backup)
        entries: list[str] = []
        if not problems:
            try:
                entries = dump.list_archive(backup.archive, self.on_start)
            except BackupError as exc:
                problems.append(str(exc))
        updated = backup.with_check(
            Verification(datetime.now(UTC), not problems, tuple(problems)), restore=False)
        seconds: float | None = None
        tables: int | None = None
        if restore_test and not problems:
            seconds, tables, failures = self._restore_test(backup)
            updated = updated.with_check(Verification(
                datetime.now(UTC), not failures, tuple(failures), seconds, tables), restore=True)
            problems += failures
        try:
            manifests.write(updated, backup.folder)
        except BackupError as exc:
            outcome = "FAILED verification" if problems else "verified"
            raise BackupError(f"backup {backup.id} {outcome}, but the outcome could not be "
                              f"recorded: {exc}") from None
        self._record_catalog()
        return VerifyResult(id=backup.id, ok=not problems, problems=tuple(problems),
                            files=len(backup.files), toc_entries=len(entries),
                            restore_seconds=seconds, tables_compared=tables)

    def restore(self, backup_id: str, into: str | None = None, over_live: bool = False,
                dry_run: bool = False) -> RestoreResult:
        """Restore a backup into a new database (`into`, default `<db>_restore_<id>`), or with
        `over_live` in place of the live database: a safety backup first, then the restore into
        a new database, its row counts checked, then swapped in (sessions ended, both renamed in
        one transaction) and the replaced database dropped. The migration history comes back
        with the schema. A backup whose checksums do not match is refused."""
        backup = self.get(backup_id)
        ep = endpoint(self.plan)
        if over_live and into not in (None, ep.dbname):
            raise BackupError("restore either into a new database (--into) or over the live one")
        token = secrets.token_hex(3)
        target = ep.dbname if over_live else (
            into or database.derived_name(ep.dbname, f"restore_{_short(backup.id)}"))
        if not over_live and target == ep.dbname:
            raise BackupError(f"{target} is the live database: restoring over it needs "
                              "over_live=True (--replace on the command line)")
        with database.admin_connection(ep, "backup-restore") as admin:
            live_exists = database.exists(admin, ep.dbname)
            if not over_live and database.exists(admin, target):
                raise BackupError(f"database {target} already exists; restore creates a new "
                                  "database (choose another --into)")
        live_history = (database.read_history(ep, "backup-restore")
                        if over_live and live_exists else [])
        staging = database.derived_name(ep.dbname, f"restoring_{token}") if over_live else target
        displaced = database.derived_name(ep.dbname, f"replaced_{token}")
        steps = _restore_steps(backup, ep.dbname, staging, displaced, over_live, live_exists,
                               self.policy.jobs, [m.version for m in live_history])
        if dry_run:
            return RestoreResult(
                backup=backup, database=target, over_live=over_live, dry_run=True,
                migration_version=backup.migration_version,
                previous_migration_version=live_history[-1].version if live_history else None,
                undone=tuple(_newer_versions([m.version for m in live_history],
                                             backup.migration_version)),
                safety_backup=None, seconds=0.0, tables=len(backup.row_counts),
                steps=tuple(steps))
        problems = _file_problems(backup)
        if problems:
            raise CorruptBackup(backup.id, problems)
        safety = self.create(reason=_SAFETY).id if over_live and live_exists else None
        self._notify(f"restoring backup {backup.id} into {staging}")
        clock = time.monotonic()
        with database.admin_connection(ep, "backup-restore") as admin:
            swapped = False
            database.create(admin, staging, encoding=backup.encoding,
                            lc_collate=backup.lc_collate, lc_ctype=backup.lc_ctype)
            try:
                dump.restore(with_database(ep, staging), backup.archive, jobs=self.policy.jobs,
                             on_start=self.on_start)
                seconds = time.monotonic() - clock
                mismatches = database.compare_counts(
                    dict(backup.row_counts),
                    database.read_counts(with_database(ep, staging), "backup-restore"))
                if mismatches:
                    raise BackupError(f"restored {backup.id} does not match its row counts "
                                      f"(the copy was dropped, {ep.dbname} not touched): "
                                      + "; ".join(mismatches))
                restored = database.read_history(with_database(ep, staging), "backup-restore")
                if over_live:
                    if live_exists:
                        database.carry_properties(admin, ep.dbname, staging)
                        database.swap(admin, ep.dbname, staging, displaced)
                        swapped = True
                        try:
                            database.drop(admin, displaced)
                        except psycopg.Error as exc:  # the restore itself succeeded
                            self._notify(f"could not drop the replaced database {displaced}: "
                                         f"{exc.diag.message_primary or exc}; drop it by hand")
                    else:
                        database.rename(admin, staging, ep.dbname)
                        swapped = True
            except BaseException:
                if not swapped:
                    database.drop(admin, staging)
                raise
        if over_live:  # the restored database holds the catalog as it was at backup time
            self._record_catalog()
        versions = {m.version for m in restored}
        return RestoreResult(
            backup=backup, database=target, over_live=over_live, dry_run=False,
            migration_version=restored[-1].version if restored else None,
            previous_migration_version=live_history[-1].version if live_history else None,
            undone=tuple(m.version for m in live_history if m.version not in versions),
            safety_backup=safety, seconds=seconds, tables=len(backup.row_counts),
            steps=tuple(steps))

    def prune(self, dry_run: bool = False) -> PruneResult:
        """Delete what retention no longer keeps (never the floor: the newest verified backup),
        and folders left by interrupted runs. Damaged backups (CORRUPT) are left alone and
        named: whether one can be repaired is for a person to judge."""
        found = self.catalog()
        backups = {m.id: m for m in found.backups}
        effect = catalog.retention_effect(self.policy, list(backups.values()), datetime.now(UTC))
        left_over = storage.abandoned(self.directory)
        if not dry_run:
            for backup_id in effect.delete:
                storage.remove(backups[backup_id].folder)
                self._notify(f"deleted backup {backup_id}: {effect.why[backup_id]}")
            for folder in left_over:
                shutil.rmtree(folder, ignore_errors=True)
            self._record_catalog()
        return PruneResult(deleted=effect.delete, kept=effect.keep, floor=effect.floor,
                           abandoned=tuple(f.name for f in left_over), dry_run=dry_run,
                           effect=effect, corrupt=found.damaged)

    def emergency_rollback(self, dry_run: bool = False) -> RestoreResult:
        """Restore the latest before-migrate backup over the live database (after a safety
        backup), for when down migrations cannot help. The result says the state the database
        is in: the migration version restored, what was undone, the safety backup's id."""
        backup = self.latest("before-migrate")
        if backup is None:
            raise BackupError(f"no before-migrate backup in {self.directory}: nothing to roll "
                              "back to (`dbops rollback ENV` runs down migrations)")
        return self.restore(backup.id, over_live=True, dry_run=dry_run)

    def before_migrate(self, *, skip: bool = False) -> Manifest | None:
        """The before-migrate backup the policy asks for (None when it asks for none or `skip`).
        A failure raises BackupError: the caller must not migrate."""
        policy = self.plan.backup
        if policy is None or not policy.before_migrate:
            return None
        if skip:
            self._notify("before-migrate backup skipped (--skip-backup)")
            return None
        try:
            return self.create(reason="before-migrate")
        except BackupError as exc:
            raise BackupError(f"refusing to migrate: the before-migrate backup failed: {exc} "
                              "(--skip-backup migrates without one)") from None

    def _record_catalog(self) -> None:
        """Copy the directory's catalog into the database (dbops.backup_catalog), for plan and
        drift where the directory cannot be reached. A failure is said, not fatal: the backups
        themselves are fine, and the next command that changes them records them again."""
        try:
            with connection(self.plan, command="backup-catalog", autocommit=True) as conn:
                ledger.ensure_schema(conn)
                record.sync(conn, self.plan.environment, self.directory, self.list_backups())
        except (DbopsError, psycopg.Error) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._notify(f"warning: the backup catalog could not be recorded in the database "
                         f"(dbops.backup_catalog): {mask(reason)}")

    def _restore_test(self, backup: Manifest) -> tuple[float, int, builtins.list[str]]:
        ep = endpoint(self.plan)
        scratch = database.derived_name(f"dbops_restoretest_{ep.dbname}",
                                        f"{_short(backup.id)}_{secrets.token_hex(2)}")
        self._notify(f"restore test of {backup.id} into {scratch}")
        with database.admin_connection(ep, "backup-verify") as admin:
            clock = time.monotonic()
            database.create(admin, scratch, encoding=backup.encoding,
                            lc_collate=backup.lc_collate, lc_ctype=backup.lc_ctype)
            try:
                try:
                    dump.restore(with_database(ep, scratch), backup.archive,
                                 jobs=self.policy.jobs, on_start=self.on_start, scratch=True)
                except BackupError as exc:
                    seconds = time.monotonic() - clock
                    return seconds, 0, [f"restore test: {self._cause(admin, scratch, backup, exc)}"]
                seconds = time.monotonic() - clock
                restored = database.read_counts(with_database(ep, scratch), "backup-verify")
            finally:
                database.drop(admin, scratch)
        failures = [f"restore test: {p}" for p in
                    database.compare_counts(dict(backup.row_counts), restored)]
        return seconds, len(backup.row_counts), failures

    def _cause(self, admin: psycopg.Connection[Any], scratch: str, backup: Manifest,
               failure: BackupError) -> str:
        """The failed restore's message, with the server's error for it: when parallel workers
        only said that one of them died, the restore runs again in one job into a fresh scratch
        database, stopping at the first error, whose message names the cause."""
        message = str(failure)
        if "ERROR:" in message or self.policy.jobs == 1:
            return message
        ep = endpoint(self.plan)
        database.drop(admin, scratch)
        database.create(admin, scratch, encoding=backup.encoding,
                        lc_collate=backup.lc_collate, lc_ctype=backup.lc_ctype)
        try:
            dump.restore(with_database(ep, scratch), backup.archive, jobs=1,
                         on_start=self.on_start)
        except BackupError as again:
            first = str(again).rpartition(": pg_restore: ")[2]
            return f"{message}; in one job: pg_restore: {first}"
        return f"{message} (in one job the restore succeeded)"

    list = list_backups
    """The 0.1 name of `list_backups` (it shadowed the builtin inside the class)."""


def backup_before_migrate(plan: Plan, *, skip: bool = False,
                          notify: Notify | None = None) -> Manifest | None:
    """The hook `migrate up` and `apply` call before the first migration runs: the policy's
    before-migrate backup, or None. BackupError when it fails (refuse to migrate then)."""
    return BackupManager(plan, notify=notify).before_migrate(skip=skip)


def _file_problems(backup: Manifest) -> list[str]:
    """Every file that is missing, changed or unexpected, naming the file and both checksums."""
    problems = []
    listed = {f.path for f in backup.files}
    for entry in backup.files:
        path = backup.folder / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing (manifest sha256 {entry.sha256})")
            continue
        size, sha256 = storage.digest(path)
        if sha256 != entry.sha256 or size != entry.size:
            problems.append(f"{entry.path}: SHA-256 mismatch: manifest {entry.sha256} "
                            f"({entry.size} bytes), file {sha256} ({size} bytes)")
    for extra in storage.files_under(backup.folder):
        if extra not in listed and not extra.endswith((MANIFEST, f"{MANIFEST}.tmp")):
            problems.append(f"{extra}: not in the manifest")
    return problems


SPACE_MARGIN = 0.10
SPACE_RESERVE = 1024 * 1024


def space_needed(data_size: int) -> int:
    """Free bytes a backup of a database holding `data_size` bytes asks for: its tables, TOAST
    and indexes (an upper bound for a dump, which leaves index data out and compresses) plus
    10% and 1 MiB for the manifest, the globals and the file system's own needs."""
    return data_size + int(data_size * SPACE_MARGIN) + SPACE_RESERVE


def _check_space(directory: Path, data_size: int) -> None:
    needed, free = space_needed(data_size), storage.free_space(directory)
    if free < needed:
        raise BackupError(
            f"not enough space in {directory}: {size(free)} free, a backup needs about "
            f"{size(needed)} (the database's {size(data_size)} of data plus "
            f"{SPACE_MARGIN:.0%} and {size(SPACE_RESERVE)}); free space or prune old backups")


def _check_toc(archive: Path, counts: dict[str, int], on_start: OnStart | None) -> None:
    """Before a backup is published, pg_restore must read its table of contents, and it must
    hold the data of every table counted."""
    entries = dump.list_archive(archive, on_start)
    data = sum(1 for line in entries if " TABLE DATA " in line)
    if data < len(counts):
        raise BackupError(f"{archive.name}: pg_restore lists data for {data} tables, "
                          f"{len(counts)} were dumped")


def _short(backup_id: str) -> str:
    return backup_id.lower().replace("-", "_")


def _restore_steps(backup: Manifest, live: str, staging: str, displaced: str, over_live: bool,
                   live_exists: bool, jobs: int, live_versions: builtins.list[str]) -> list[str]:
    steps = [f"check the SHA-256 of {len(backup.files)} file(s) against the manifest"]
    if over_live and live_exists:
        steps.append(f"take a safety backup of {live} (reason {_SAFETY})")
    steps.append(f"create database {staging} and pg_restore the backup into it "
                 f"({jobs} job(s))")
    steps.append(f"compare the row counts of {len(backup.row_counts)} table(s) with the backup's")
    if over_live and live_exists:
        steps.append(f"give {staging} the owner, settings and privileges of {live}; refuse new "
                     f"connections to {live}, end its sessions, rename {live} -> {displaced} and "
                     f"{staging} -> {live} in one transaction, drop {displaced}")
    elif over_live:
        steps.append(f"rename {staging} -> {live} ({live} does not exist)")
    version = backup.migration_version or "none"
    steps.append(f"{staging if not over_live else live} will be at migration {version}")
    if over_live:
        undone = _newer_versions(live_versions, backup.migration_version)
        if undone:
            steps.append(f"migration(s) {', '.join(undone)} will be undone (pending again)")
        steps.append(f"data written after {backup.started_at:%Y-%m-%d %H:%M:%S} UTC is lost "
                     "(the safety backup keeps it)")
    return steps


def _newer_versions(versions: builtins.list[str], version: str | None) -> builtins.list[str]:
    if version is None:
        return versions
    if version in versions:
        return versions[versions.index(version) + 1:]
    return [v for v in versions if v > version]
