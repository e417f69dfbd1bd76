"""ChangeSet -> pyinfra operations in stages (settings, restart, roles, migrations), a health gate
after each, and a rollback batch that undoes what this run changed when a stage or a gate fails.

The only module that imports pyinfra, and only when an apply runs. SQL runs from the controller
over psycopg inside `python.call` operations, so passwords never reach operation arguments, the
hosts' process tables or pyinfra's logs; restarts run on the hosts as `server.shell` commands.
"""

from __future__ import annotations

import logging
import runpy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dbops.changes import Change, ChangeSet
from dbops.config.model import Plan
from dbops.config.source import display_path
from dbops.connect import endpoint, mask, open_connection
from dbops.errors import DbopsError
from dbops.health.checks import Counters, counters, gate_checks

if TYPE_CHECKING:
    from dbops.backup import BackupManager

Result = Literal["applied", "rolled back", "failed"]
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """One PostgreSQL server of the plan as a host of the inventory."""

    host: str  # the pyinfra host name
    server: str  # "primary" or the plan's replica name
    data: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One pyinfra operation: `run` executes on the controller (python.call); `commands` run on the
    host (server.shell) when there is no `run`. Dry runs print these."""

    name: str
    target: Target
    commands: tuple[str, ...]
    run: Callable[[], None] | None = None


@dataclass
class Journal:
    """What this run changed, in order, so a rollback can undo exactly that."""

    settings: list[tuple[Change, Target]] = field(default_factory=list)
    restarted: set[str] = field(default_factory=set)
    roles: list[Change] = field(default_factory=list)
    migrations: int = 0
    migration_direction: str = "up"
    backups: list[str] = field(default_factory=list)  # what the backup stage did (not undone)


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


def load_targets(plan: Plan) -> list[Target]:
    """The inventory's hosts, each mapped to a server of the plan (`pg_name`, default: primary for
    the primary group); without an inventory, the primary on @local."""
    if plan.inventory is None:
        return [Target("@local", "primary", {})]
    try:
        namespace = runpy.run_path(str(plan.inventory))
    except (OSError, SyntaxError) as exc:
        raise DbopsError(f"{display_path(plan.inventory)}: cannot load inventory: {exc}") from None
    targets = []
    for group, members in namespace.items():
        if group.startswith("_") or not isinstance(members, list | tuple):
            continue
        for member in members:
            name, data = (member, {}) if isinstance(member, str) else member
            server = data.get("pg_name", "primary" if group == "primary" else None)
            if server is None:
                raise DbopsError(f"{display_path(plan.inventory)}: host {name} in group {group} "
                                 "needs pg_name: the plan's replica name it runs")
            targets.append(Target(name, server, dict(data)))
    known = {"primary", *(r.name for r in plan.database.replicas)}
    for target in targets:
        if target.server not in known:
            raise DbopsError(f"{display_path(plan.inventory)}: host {target.host} runs "
                             f"'{target.server}', which the plan does not name "
                             f"(known: {', '.join(sorted(known))})")
    if not any(t.server == "primary" for t in targets):
        raise DbopsError(f"{display_path(plan.inventory)}: no host runs the primary")
    return targets


class Executor:
    """Runs one ChangeSet's stages with gates, then records the result in schema dbops."""

    def __init__(self, plan: Plan, changeset: ChangeSet, *, allow_restart: bool,
                 notify: Notify | None = None, skip_backup: bool = False) -> None:
        self.plan, self.changeset = plan, changeset
        self.allow_restart = allow_restart
        self.skip_backup = skip_backup
        self.notify = notify or (lambda message: None)
        self.targets = load_targets(plan)
        self.journal = Journal()
        self.outcomes: list[StageOutcome] = []
        self.baseline: Counters | None = None

    def target(self, server: str) -> Target:
        for target in self.targets:
            if target.server == server:
                return target
        raise DbopsError(f"no inventory host runs '{server}' ({display_path(self.plan.inventory or Path('.'))})")

    @property
    def skipped(self) -> list[Change]:
        return [c for c in self.changeset.of_kind("setting")
                if c.needs_restart and not self.allow_restart]

    def stages(self) -> list[tuple[str, list[Operation]]]:
        """The stages in order, gates included, as they would run."""
        gates = self.plan.health.gates
        work = [(name, ops) for name, ops in (
            ("settings", self._settings_ops()), ("restart", self._restart_ops()),
            ("roles", self._role_ops()), ("migrations", self._migration_ops()),
            ("backups", self._backup_ops())) if ops]
        stages: list[tuple[str, list[Operation]]] = []
        if gates.before_apply and self.plan.health.enabled:
            stages.append(("gate: before apply", [self._gate_op("before apply")]))
        for number, (name, ops) in enumerate(work, start=1):
            stages.append((name, ops))
            last = number == len(work)
            if self.plan.health.enabled and (gates.after_each_stage or last):
                label = "after apply" if last else f"after {name}"
                stages.append((f"gate: {label}", [self._gate_op(label)]))
        return stages

    def _settings_ops(self) -> list[Operation]:
        ops = []
        for change in self.changeset.of_kind("setting"):
            if change in self.skipped or not change.statements:
                continue
            for server in change.hosts:
                target = self.target(server)
                ops.append(Operation(f"{change.address} on {server}", target, change.statements,
                                     self._sql_runner(target, change, record=self.journal.settings)))
        return ops

    def _restart_ops(self) -> list[Operation]:
        servers = sorted({s for c in self.changeset.of_kind("setting")
                          if c.needs_restart and self.allow_restart for s in c.hosts})
        return [op for server in servers for op in self._restart(self.target(server))]

    def _restart(self, target: Target) -> list[Operation]:
        command = target.data.get("pg_restart_command")
        if not command:
            raise DbopsError(f"host {target.host} has no pg_restart_command in the inventory: "
                             "a setting that needs a restart cannot be applied there")
        return [Operation(f"restart PostgreSQL on {target.server}", target, (str(command),)),
                Operation(f"wait for {target.server} to accept connections", target,
                          ("-- wait until it answers SELECT 1",), lambda: self._wait_ready(target))]

    def _role_ops(self) -> list[Operation]:
        primary = self.target("primary")
        return [Operation(c.address, primary, c.statements,
                          self._sql_runner(primary, c, record=self.journal.roles))
                for c in self.changeset.of_kind("role")]

    def _migration_ops(self) -> list[Operation]:
        changes = self.changeset.of_kind("migration")
        if not changes:
            return []
        versions = [c.address.removeprefix("migration.") for c in changes]
        up = changes[0].action == "+"
        summary = (f"migrate up to {max(versions)}" if up
                   else f"roll back {len(versions)} migration(s)")
        return [Operation(summary, self.target("primary"), tuple(f"-- {c.address} {c.after or c.before}"
                                                                  for c in changes),
                          lambda: self._migrate(versions, up))]

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

    def _take_backup(self) -> None:
        manifest = self._backups().create(reason="scheduled")
        self.journal.backups.append(f"backup {manifest.id} taken")

    def _prune_backups(self) -> None:
        pruned = self._backups().prune()
        self.journal.backups += [line for line in pruned.lines() if line]

    def _backups(self) -> BackupManager:
        from dbops.backup import BackupManager

        return BackupManager.from_plan(self.plan, notify=self.notify)

    def _gate_op(self, label: str) -> Operation:
        checks = self.changeset.gates[0].checks if self.changeset.gates else ()
        return Operation(f"health gate {label}", self.target("primary"),
                         tuple(f"-- {c}" for c in checks), lambda: self._gate(label))

    def _sql_runner(self, target: Target, change: Change, *, record: list[Any]) -> Callable[[], None]:
        def run() -> None:
            self._execute(target, change.statements)
            record.append((change, target) if record is self.journal.settings else change)
            if change.needs_restart:
                self.journal.restarted.add(target.server)
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

    def _migrate(self, versions: list[str], up: bool) -> None:
        from dbops.migrate.engine import MigrationEngine

        engine = MigrationEngine(self.plan, notify=self.notify)
        self.journal.migration_direction = "up" if up else "down"

        def count(done: int, total: int, migration: object, ms: float) -> None:
            self.journal.migrations = done

        if up:
            engine.run_migrations(target=max(versions), progress=count,
                                  skip_backup=self.skip_backup)
        else:
            engine.rollback_migrations(count=len(versions), progress=count)

    def _gate(self, label: str) -> None:
        if label != "before apply":
            time.sleep(self.plan.health.gates.settle.total_seconds())
        results = gate_checks(self.plan, since=self.baseline, command="apply-gate")
        failed = [r for r in results if r.status == "critical"]
        for result in results:
            self.notify(f"  gate {label}: {result.status}: {result.message}")
        if failed:
            raise DbopsError("; ".join(f"{r.name}: {r.message}" for r in failed))

    def _mark_baseline(self) -> None:
        """Error rates are judged from here on: the application's rollbacks after a stage, not
        the ones dbops's own work causes (pg_dump, for one, ends its transaction by rolling back)."""
        with open_connection(endpoint(self.plan), command="apply", autocommit=True) as conn:
            self.baseline = counters(conn)

    def run(self) -> ApplyReport:
        self._mark_baseline()
        for skipped in self.skipped:
            self.notify(f"skipped {skipped.address}: needs a restart (--allow-restart)")
        for name, ops in self.stages():
            self.notify(f"stage {name}: {len(ops)} operation(s)")
            failures = run_batch(self.targets, ops, self.plan)
            self.outcomes.append(StageOutcome(name, not failures, tuple(failures)))
            if failures:
                reason = f"{name} failed: {failures[0]}"
                return self._roll_back(reason)
            if not name.startswith("gate"):
                self._mark_baseline()
        return ApplyReport("applied", tuple(self.outcomes), self._done(), (),
                           tuple(c.address for c in self.skipped))

    def _done(self) -> tuple[str, ...]:
        done = [f"{c.address} on {t.server}" for c, t in self.journal.settings]
        done += [c.address for c in self.journal.roles]
        if self.journal.migrations:
            done.append(f"{self.journal.migrations} migration(s) {self.journal.migration_direction}")
        return tuple(done + self.journal.backups)

    def rollback_ops(self) -> list[Operation]:
        ops: list[Operation] = []
        if self.journal.migrations:
            count, direction = self.journal.migrations, self.journal.migration_direction
            ops.append(Operation(f"roll back the {count} migration(s) this run applied",
                                 self.target("primary"), (f"-- {count} down section(s)",),
                                 lambda: self._undo_migrations(count, direction)))
        for change in reversed(self.journal.roles):
            primary = self.target("primary")
            ops.append(Operation(f"undo {change.address}", primary, change.inverse,
                                 partial(self._execute, primary, change.inverse)))
        for change, target in reversed(self.journal.settings):
            ops.append(Operation(f"undo {change.address} on {target.server}", target, change.inverse,
                                 partial(self._execute, target, change.inverse)))
        for server in sorted(self.journal.restarted):
            ops += self._restart(self.target(server))
        return ops

    def _undo_migrations(self, count: int, direction: str) -> None:
        from dbops.migrate.engine import MigrationEngine

        engine = MigrationEngine(self.plan, notify=self.notify)
        if direction == "up":
            engine.rollback_migrations(count=count)
        else:
            raise DbopsError("migrations rolled back by this run cannot be re-applied automatically")

    def _roll_back(self, reason: str) -> ApplyReport:
        undone = self._done()
        ops = self.rollback_ops()
        if not ops:
            return ApplyReport("failed", tuple(self.outcomes), (), (), (), reason)
        self.notify(f"rolling back: {len(ops)} operation(s)")
        failures = run_batch(self.targets, ops, self.plan)
        self.outcomes.append(StageOutcome("rollback", not failures, tuple(failures)))
        if failures:
            return ApplyReport("failed", tuple(self.outcomes), undone, (), (),
                               f"{reason}; rollback failed: {failures[0]}")
        return ApplyReport("rolled back", tuple(self.outcomes), (), undone, (), reason)


def run_batch(targets: list[Target], ops: list[Operation], plan: Plan) -> list[str]:
    """One pyinfra batch (a fresh Inventory and State, as pyinfra needs); returns failures."""
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
            if op.run is None:
                results.append((op, add_op(state, server.shell, name=op.name,
                                           commands=list(op.commands), host=host)))
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


def _guarded(op: Operation, failures: list[str]) -> Callable[[Any, Any], bool]:
    def call(state: Any, host: Any) -> bool:
        assert op.run is not None
        try:
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
