"""ChangeSet -> pyinfra operations in stages (settings, restart, roles, migrations), a health gate
after each, and a rollback batch that undoes what this run changed when a stage or a gate fails.

The only module that imports pyinfra, and only when an apply runs. SQL runs from the controller
over psycopg inside `python.call` operations, so passwords never reach operation arguments, the
hosts' process tables or pyinfra's logs; restarts run on the hosts as `server.shell` commands.
"""

from __future__ import annotations

import io
import logging
import pwd
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from dbops import progress
from dbops.backup import BackupManager
from dbops.backup.pgbackrest import stanza_command
from dbops.changes import Change, ChangeSet, Gate, MigrationRun
from dbops.config import inventory
from dbops.config.model import Plan
from dbops.config.source import display_path
from dbops.connect import KeptSession, endpoint, mask, open_connection
from dbops.errors import DbopsError, GateFailed, InventoryError, MigrationError
from dbops.health.checks import Counters, counters, gate_checks
from dbops.migrate.engine import MigrationEngine
from dbops.render import backup_results

Result = Literal["applied", "rolled back", "failed"]
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """One PostgreSQL server of the plan as a host of the inventory."""

    host: str  # the pyinfra host name
    server: str  # "primary" or the plan's replica name
    data: dict[str, Any]


@dataclass(frozen=True)
class FileSpec:
    """A file with `content` (a directory when None) that a pyinfra files operation puts on the
    host, owned by `user`."""

    path: str
    content: str | None
    user: str
    mode: str


@dataclass(frozen=True)
class Operation:
    """One pyinfra operation: `run` executes on the controller (python.call); `file` is put on the
    host (files.put / files.directory); otherwise `commands` run on the host (server.shell), as
    `su_user` when given. Dry runs print these."""

    name: str
    target: Target
    commands: tuple[str, ...]
    run: Callable[[], None] | None = None
    file: FileSpec | None = None
    su_user: str | None = None


@dataclass
class Applied:
    """What this run changed, in order, so a rollback can undo exactly that. ("Journal" in dbops
    means only the step journal of non-transactional migrations, dbops.migration_journal.)"""

    settings: list[tuple[Change, Target]] = field(default_factory=list)
    restarted: set[str] = field(default_factory=set)
    roles: list[Change] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)  # versions run, in order
    migration_direction: str = "up"
    backups: list[str] = field(default_factory=list)  # what the backup stages did (not undone)


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    ok: bool
    messages: tuple[str, ...]


@dataclass(frozen=True)
class ApplyReport:
    result: Result
    stages: tuple[StageOutcome, ...]
    applied: tuple[str, ...]
    rolled_back: tuple[str, ...]
    skipped: tuple[str, ...]
    reason: str = ""
    not_undone: tuple[str, ...] = ()  # done, then a failed rollback could not undo it


def load_targets(plan: Plan) -> list[Target]:
    """The inventory's hosts, each mapped to a server of the plan (`pg_name`, default: primary for
    the primary group); without an inventory, the primary on @local."""
    if plan.inventory is None:
        return [Target("@local", "primary", {})]
    hosts = inventory.read(plan.inventory)
    if plan.inventory_host is not None:  # a fleet target: its host alone, as the primary
        for host in hosts:
            if host.name == plan.inventory_host:
                return [Target(host.name, "primary", host.data)]
        raise InventoryError(f"{display_path(plan.inventory)}: no host {plan.inventory_host}")
    targets = []
    for host in hosts:
        server = host.data.get("pg_name", "primary" if host.group == "primary" else None)
        if server is None:
            raise InventoryError(f"{display_path(plan.inventory)}: host {host.name} in group "
                                 f"{host.group} needs pg_name: the plan's replica name it runs")
        targets.append(Target(host.name, server, host.data))
    known = {"primary", *(r.name for r in plan.database.replicas)}
    for target in targets:
        if target.server not in known:
            raise InventoryError(f"{display_path(plan.inventory)}: host {target.host} runs "
                             f"'{target.server}', which the plan does not name "
                             f"(known: {', '.join(sorted(known))})")
    if not any(t.server == "primary" for t in targets):
        raise InventoryError(f"{display_path(plan.inventory)}: no host runs the primary")
    return targets


class Executor:
    """Runs one ChangeSet's stages with gates, then records the result in schema dbops."""

    def __init__(self, plan: Plan, changeset: ChangeSet, *, allow_restart: bool,
                 notify: Notify | None = None, skip_backup: bool = False,
                 progress: Callable[[list[str]], None] | None = None,
                 halted: Callable[[], str] | None = None,
                 bookkeeping: KeptSession | None = None) -> None:
        self.plan, self.changeset = plan, changeset
        # The session the error-rate baselines are read on (the caller's, shared with its own
        # bookkeeping; else one of the executor's own).
        self._own_bookkeeping = bookkeeping is None
        self.bookkeeping = bookkeeping or KeptSession(endpoint(plan), command="apply")
        self.halted = halted or (lambda: "")  # a reason to stop before the next stage
        self.allow_restart = allow_restart
        self.skip_backup = skip_backup
        self.notify = notify or (lambda message: None)
        self.progress = progress or (lambda done: None)
        self.targets = load_targets(plan)
        self.applied = Applied()
        self.undone: list[str] = []
        self.outcomes: list[StageOutcome] = []
        self.baseline: Counters | None = None

    def target(self, server: str) -> Target:
        for target in self.targets:
            if target.server == server:
                return target
        raise InventoryError(f"no inventory host runs '{server}' ({display_path(self.plan.inventory or Path('.'))})")

    @property
    def skipped(self) -> list[Change]:
        return [c for c in self.changeset.of_kind("setting")
                if c.needs_restart and not self.allow_restart]

    def stages(self) -> list[tuple[str, list[Operation]]]:
        """The stages in order, gates included, as they would run: nothing but what the
        ChangeSet holds (its changes, its backup, its gates)."""
        work = [(name, ops) for name, ops in (
            ("backup first", self._backup_first_ops()),
            ("pgbackrest", self._pgbackrest_ops()),
            ("settings", self._settings_ops()), ("restart", self._restart_ops()),
            ("roles", self._role_ops()), ("migrations", self._migration_ops()),
            ("backups", self._backup_ops()), ("pgbackrest check", self._pgbackrest_check_ops()))
            if ops]
        gates = {gate.name: gate for gate in self.changeset.gates}
        stages: list[tuple[str, list[Operation]]] = []
        if "before apply" in gates:
            stages.append(("gate: before apply", [self._gate_op("before apply",
                                                                gates["before apply"])]))
        after = gates.get("after each stage")
        for number, (name, ops) in enumerate(work, start=1):
            stages.append((name, ops))
            last = number == len(work)
            gate = after or (gates.get("after apply") if last else None)
            if gate is not None:
                label = "after apply" if last else f"after {name}"
                stages.append((f"gate: {label}", [self._gate_op(label, gate)]))
        return stages

    def _backup_first_ops(self) -> list[Operation]:
        step = self.changeset.backup_first
        if step is None or self.skip_backup:
            return []
        return [Operation(f"take the before-migrate backup ({step.reason})", self.target("primary"),
                          (f"-- pg_dump into {step.directory}, manifest and checksums",),
                          self._take_backup_first)]

    def _take_backup_first(self) -> None:
        manifest = self._backups().before_migrate()
        if manifest is not None:
            self.applied.backups.append(f"backup {manifest.id} taken before the changes")

    def _settings_ops(self) -> list[Operation]:
        ops = []
        for change in self.changeset.of_kind("setting"):
            if change in self.skipped or not change.statements:
                continue
            for server in change.hosts:
                target = self.target(server)
                ops.append(Operation(f"{change.address} on {server}", target, change.statements,
                                     self._sql_runner(target, change, record=self.applied.settings)))
        return ops

    def _restart_ops(self) -> list[Operation]:
        servers = sorted({s for c in self.changeset.of_kind("setting")
                          if c.needs_restart and self.allow_restart for s in c.hosts})
        return [op for server in servers for op in self._restart(self.target(server))]

    def _restart(self, target: Target) -> list[Operation]:
        command = target.data.get("pg_restart_command")
        if not command:
            raise InventoryError(f"host {target.host} has no pg_restart_command in the inventory: "
                             "a setting that needs a restart cannot be applied there")
        return [Operation(f"restart PostgreSQL on {target.server}", target, (str(command),)),
                Operation(f"wait for {target.server} to accept connections", target,
                          ("-- wait until it answers SELECT 1",), lambda: self._wait_ready(target))]

    def _role_ops(self) -> list[Operation]:
        primary = self.target("primary")
        return [Operation(c.address, primary, c.statements,
                          self._sql_runner(primary, c, record=self.applied.roles))
                for c in self.changeset.of_kind("role")]

    def _migration_ops(self) -> list[Operation]:
        """Pre-validation of the up runs, one operation per planned migration run (exactly its
        steps), then post-validation."""
        changes = [c for c in self.changeset.of_kind("migration") if c.migration is not None]
        if not changes:
            return []
        primary = self.target("primary")
        runs = [c.migration for c in changes if c.migration is not None]
        ups = [r for r in runs if r.direction == "up"]
        ops = []
        if ups:
            ops.append(Operation("pre-validate the migrations (lint, rehearsal)", primary,
                                 tuple(f"-- migration.{r.version}" for r in ups),
                                 partial(self._engine().prevalidate_planned, ups)))
        for run in runs:
            summary = (f"migration.{run.version} {run.direction} ({run.mode}, "
                       f"{len(run.steps)} step(s))")
            ops.append(Operation(summary, primary, run.statements, partial(self._migrate, run)))
        ops.append(Operation("post-validate the migrations", primary,
                             ("-- no INVALID index left behind",),
                             lambda: self._engine().post_validate()))
        return ops

    def _backup_ops(self) -> list[Operation]:
        """A scheduled backup when one is overdue, then the retention prune (after migrations, so
        the new backup holds the new schema)."""
        ops = []
        primary = self.target("primary")
        for change in self.changeset.of_kind("backup"):
            if change.address == "backup.schedule":
                ops.append(Operation("take the scheduled backup", primary,
                                     ("-- pg_dump into a new backup, manifest and checksums",),
                                     self._take_backup))
            elif change.address == "backup.retention":
                ops.append(Operation("prune backups retention no longer keeps", primary,
                                     tuple(f"-- {line}" for line in change.detail),
                                     self._prune_backups))
        return ops

    def _pgbackrest_ops(self) -> list[Operation]:
        """The engine's configuration file and repository (pyinfra files operations on the
        primary's host) and its stanza (pgbackrest stanza-create there, as the server's OS
        user), before the archive settings point archive_command at them."""
        policy = self.plan.backup.pgbackrest if self.plan.backup else None
        changes = {c.address: c for c in self.changeset.of_kind("backup")}
        if policy is None or not ({"backup.pgbackrest.config", "backup.pgbackrest.stanza"}
                                  & set(changes)):
            return []
        target = self.target("primary")
        config = changes.get("backup.pgbackrest.config")
        user = _server_os_user(target, config.statements[0] if config else "")
        ops = [Operation(f"directory {folder}", target, (f"-- directory {folder} owned by {user}",),
                         file=FileSpec(str(folder), None, user, "750"))
               for folder in (policy.repository, policy.repository / "log")]
        if config is not None:
            ops.append(Operation(f"write {policy.config}", target,
                                 tuple(f"-- {line}" for line in config.detail),
                                 file=FileSpec(str(policy.config), config.statements[0], user,
                                               "640")))
        if "backup.pgbackrest.stanza" in changes:
            ops.append(Operation(f"pgbackrest stanza-create {policy.stanza}", target,
                                 (stanza_command(policy, "stanza-create"),), su_user=user))
        return ops

    def _pgbackrest_check_ops(self) -> list[Operation]:
        """pgbackrest check after the archive settings, unless archive_mode waits for a restart
        this apply may not do (then the check could only fail)."""
        policy = self.plan.backup.pgbackrest if self.plan.backup else None
        if policy is None or not any(c.address == "backup.pgbackrest.check"
                                     for c in self.changeset.of_kind("backup")):
            return []
        if any(c.address == "setting.archive_mode" for c in self.skipped):
            self.notify("pgbackrest check skipped: archive_mode waits for a restart "
                        "(--allow-restart)")
            return []
        target = self.target("primary")
        config = next((c for c in self.changeset.of_kind("backup")
                       if c.address == "backup.pgbackrest.config"), None)
        user = _server_os_user(target, config.statements[0] if config else "")
        return [Operation(f"pgbackrest check {policy.stanza}", target,
                          (stanza_command(policy, "check"),), su_user=user)]

    def _take_backup(self) -> None:
        manifest = self._backups().create(reason="scheduled")
        self.applied.backups.append(f"backup {manifest.id} taken")

    def _prune_backups(self) -> None:
        pruned = self._backups().prune()
        self.applied.backups += [line for line in backup_results.prune(pruned) if line]

    def _backups(self) -> BackupManager:
        return BackupManager.from_plan(self.plan, notify=self.notify)

    def _gate_op(self, label: str, gate: Gate) -> Operation:
        return Operation(f"health gate {label}", self.target("primary"),
                         tuple(f"-- {c}" for c in gate.checks), lambda: self._gate(label, gate))

    def _sql_runner(self, target: Target, change: Change, *, record: list[Any]) -> Callable[[], None]:
        def run() -> None:
            self._execute(target, change.statements)
            record.append((change, target) if record is self.applied.settings else change)
            if change.needs_restart:
                self.applied.restarted.add(target.server)
        return run

    def _execute(self, target: Target, statements: tuple[str, ...]) -> None:
        replica = next((r for r in self.plan.database.replicas if r.name == target.server), None)
        with open_connection(endpoint(self.plan, replica), command="apply", autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def _wait_ready(self, target: Target, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._execute(target, ("SELECT 1",))
                return
            except DbopsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _engine(self) -> MigrationEngine:
        return MigrationEngine(self.plan, notify=self.notify)

    def _migrate(self, run: MigrationRun) -> None:
        self._engine().run_planned(run)
        self.applied.migration_direction = run.direction
        self.applied.migrations.append(run.version)

    def _gate(self, label: str, gate: Gate) -> None:
        """The gate's checks, by name, judged by the plan's thresholds (the ChangeSet states them;
        a saved plan is applied only when they are still the plan's)."""
        if label != "before apply":
            time.sleep(self.plan.health.gates.settle.total_seconds())
        names = {check.name for check in gate.checks}
        results = [r for r in gate_checks(self.plan, since=self.baseline, command="apply-gate")
                   if r.kind in names]
        failed = [r for r in results if r.status == "critical"]
        for result in results:
            self.notify(f"  gate {label}: {result.status}: {result.message}")
        if failed:
            raise GateFailed("; ".join(f"{r.name}: {r.message}" for r in failed), gate=label,
                             checks=tuple(r.name for r in failed))

    def _mark_baseline(self) -> None:
        """Error rates are judged from here on: the application's rollbacks after a stage, not
        the ones dbops's own work causes (pg_dump, for one, ends its transaction by rolling back)."""
        self.baseline = self.bookkeeping.run(counters)

    def run(self) -> ApplyReport:
        try:
            return self._run()
        finally:
            if self._own_bookkeeping:
                self.bookkeeping.close()

    def _run(self) -> ApplyReport:
        self._mark_baseline()
        for skipped in self.skipped:
            self.notify(f"skipped {skipped.address}: needs a restart (--allow-restart)")
        for name, ops in self.stages():
            halt = self.halted()
            if halt:  # a fleet rollout stopped: undo what this target did, as on a failure
                return self._roll_back(f"halted before {name}: {halt}")
            self.notify(f"stage {name}: {len(ops)} operation(s)")
            failures = run_batch(self.targets, ops, self.plan)
            self.outcomes.append(StageOutcome(name, not failures, tuple(failures)))
            if not name.startswith("gate"):
                self.progress(list(self._done()))
            if failures:
                reason = f"{name} failed: {failures[0]}"
                return self._roll_back(reason)
            if not name.startswith("gate"):
                self._mark_baseline()
        return ApplyReport("applied", tuple(self.outcomes), self._done(), (),
                           tuple(c.address for c in self.skipped))

    def _done(self) -> tuple[str, ...]:
        return self._undoable() + tuple(self.applied.backups)

    def _undoable(self) -> tuple[str, ...]:
        """What this run changed that a rollback undoes (backups it took stay)."""
        done = [f"{c.address} on {t.server}" for c, t in self.applied.settings]
        done += [c.address for c in self.applied.roles]
        done += [f"migration.{v} {self.applied.migration_direction}"
                 for v in self.applied.migrations]
        return tuple(done)

    def rollback_ops(self) -> list[Operation]:
        """Operations undoing what this run did, newest first; each records what it undid."""
        ops: list[Operation] = []
        primary = self.target("primary")
        if self.applied.migrations:
            versions, direction = list(self.applied.migrations), self.applied.migration_direction
            items = [f"migration.{v} {direction}" for v in versions]
            ops.append(Operation(f"roll back the {len(versions)} migration(s) this run applied",
                                 primary, tuple(f"-- down section of migration.{v}"
                                                for v in reversed(versions)),
                                 self._undoing(items, partial(self._undo_migrations, versions,
                                                              direction))))
        for change in reversed(self.applied.roles):
            ops.append(Operation(f"undo {change.address}", primary, change.inverse,
                                 self._undoing([change.address],
                                               partial(self._execute, primary, change.inverse))))
        for change, target in reversed(self.applied.settings):
            item = f"{change.address} on {target.server}"
            ops.append(Operation(f"undo {item}", target, change.inverse,
                                 self._undoing([item], partial(self._execute, target,
                                                               change.inverse))))
        for server in sorted(self.applied.restarted):
            ops += self._restart(self.target(server))
        return ops

    def _undoing(self, items: list[str], undo: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            undo()
            self.undone += items
        return run

    def _undo_migrations(self, versions: list[str], direction: str) -> None:
        if direction != "up":
            raise MigrationError("migrations rolled back by this run cannot be re-applied automatically")
        self._engine().rollback_migrations(count=len(versions))

    def _roll_back(self, reason: str) -> ApplyReport:
        done = self._undoable()
        ops = self.rollback_ops()
        if not ops:
            return ApplyReport("failed", tuple(self.outcomes), (), (), (), reason,
                               not_undone=done)
        self.notify(f"rolling back: {len(ops)} operation(s)")
        failures = run_batch(self.targets, ops, self.plan)
        self.outcomes.append(StageOutcome("rollback", not failures, tuple(failures)))
        undone = tuple(item for item in done if item in self.undone)
        left = tuple(item for item in done if item not in self.undone)
        if failures or left:
            why = f"; rollback failed: {failures[0]}" if failures else ""
            return ApplyReport("failed", tuple(self.outcomes), (), undone, (), reason + why,
                               not_undone=left)
        return ApplyReport("rolled back", tuple(self.outcomes), (), undone, (), reason)


def run_batch(targets: list[Target], ops: list[Operation], plan: Plan) -> list[str]:
    """One pyinfra batch (a fresh Inventory and State, as pyinfra needs); returns failures."""
    # lazy: pyinfra loads only when an apply or dry run executes
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import State
    from pyinfra.operations import python, server

    _capture_pyinfra_logs(plan)
    inventory = Inventory(([(t.host, t.data) for t in targets], {}))  # type: ignore[no-untyped-call]
    state = State(inventory, Config(FAIL_PERCENT=0))  # type: ignore[no-untyped-call]
    failures: list[str] = []
    results = []
    try:
        connect_all(state)
        for op in ops:
            host = inventory.get_host(op.target.host)
            if op.file is not None:
                results.append((op, _file_op(state, op.file, op.name, host)))
            elif op.run is None:
                su = {"_su_user": op.su_user, "_su_shell": "/bin/sh"} if op.su_user else {}
                results.append((op, add_op(state, server.shell, name=op.name,
                                           commands=list(op.commands), host=host, **su)))
            else:
                results.append((op, add_op(state, python.call, name=op.name,
                                           function=_guarded(op, failures), host=host)))
        run_ops(state)
    except PyinfraError:
        pass  # failures are collected per operation below
    finally:
        disconnect_all(state)
    for op, metas in results:
        for meta in metas.values():
            if op.run is None and meta.is_complete() and not meta.did_succeed():
                detail = " ".join(meta.stderr_lines[-1:]) or "failed"
                failures.append(mask(f"{op.name} on {op.target.host}: {detail}"))
    if state.failed_hosts and not failures:
        failures.append("an operation failed (see .dbops/logs/pyinfra.log)")
    return failures


class _PerThread(threading.local):
    module: Any = None


def isolate_threads() -> None:
    """pyinfra keeps its current State and Inventory in module globals; a fleet rollout runs
    one apply (each batch its own State) per thread, so these become per thread. Called once,
    before the rollout's threads start."""
    from pyinfra.api import connectors, host, inventory
    from pyinfra.context import ctx_inventory, ctx_state

    for manager in (ctx_state, ctx_inventory):
        if not isinstance(manager.context._container, _PerThread):
            manager.context._container = _PerThread()
    # Every Inventory scans the installed packages' entry points for connectors three times
    # (a quarter of a second of CPU, under the GIL); a rollout makes a few per target, so the
    # scan is done once.
    found = connectors.get_all_connectors()  # type: ignore[no-untyped-call]
    execution = {name: module for name, module in found.items() if module.handles_execution}
    inventory.get_all_connectors = lambda: found  # type: ignore[attr-defined]
    inventory.get_execution_connectors = lambda: execution  # type: ignore[attr-defined]
    host.get_execution_connector = execution.__getitem__  # type: ignore[attr-defined]


def _file_op(state: Any, spec: FileSpec, name: str, host: Any) -> Any:
    from pyinfra.api.operation import add_op
    from pyinfra.operations import files

    if spec.content is None:
        return add_op(state, files.directory, name=name, path=spec.path, user=spec.user,
                      group=spec.user, mode=spec.mode, present=True, host=host)
    return add_op(state, files.put, name=name, src=io.StringIO(spec.content), dest=spec.path,
                  user=spec.user, group=spec.user, mode=spec.mode, create_remote_dir=True,
                  host=host)


def _server_os_user(target: Target, config: str) -> str:
    """The OS user pgBackRest runs as on the host: the inventory's `pg_os_user`; on @local the
    owner of the data directory the configuration names; else `postgres`."""
    if target.data.get("pg_os_user"):
        return str(target.data["pg_os_user"])
    if target.host == "@local":
        for line in config.splitlines():
            if line.startswith("pg1-path="):
                try:
                    return pwd.getpwuid(Path(line.partition("=")[2]).stat().st_uid).pw_name
                except (OSError, KeyError):
                    break
    return "postgres"


def _guarded(op: Operation, failures: list[str]) -> Callable[[Any, Any], bool]:
    def call(state: Any, host: Any) -> bool:
        assert op.run is not None
        try:
            with progress.step(op.name):
                op.run()
        except Exception as exc:  # the failure becomes the stage's reason; pyinfra would only log it
            message = " ".join(str(exc).split()) or type(exc).__name__
            failures.append(mask(f"{op.name}: {message}"))
            return False
        return True

    return call


class _MaskingHandler(logging.FileHandler):
    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = mask(record.getMessage()), ()
        super().emit(record)


def _capture_pyinfra_logs(plan: Plan) -> None:
    """pyinfra's log goes to .dbops/logs/pyinfra.log, masked; never to the terminal."""
    logger = logging.getLogger("pyinfra")
    if any(isinstance(h, _MaskingHandler) for h in logger.handlers):
        return
    folder = plan.root / ".dbops" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    handler = _MaskingHandler(folder / "pyinfra.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
