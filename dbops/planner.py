"""(Plan, LiveState, migration files) -> ChangeSet. Pure: no I/O. Every difference becomes a Change
with the SQL that makes it and the SQL that undoes it; what cannot be applied is a PlanError."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from dbops import settings_catalog
from dbops.changes import (
    Action,
    BackupStep,
    Change,
    ChangeSet,
    Direction,
    MigrationRun,
    MigrationStep,
    Risk,
    Scalar,
    plan_hash,
)
from dbops.config.budget import connection_budget, server_capacity
from dbops.config.model import Plan, Role
from dbops.config.source import display_path
from dbops.errors import MigrationError, PlanError, Problem
from dbops.health.gates import plan_gates
from dbops.inspect import LiveRole, LiveSetting, LiveState
from dbops.migrate import pending
from dbops.migrate.files import Migration, MigrationSet
from dbops.schema_facts import TableStats
from dbops.setting_values import check, same, spelled_like

if TYPE_CHECKING:
    from dbops.migrate.runstate import RunState

RELOAD = "SELECT pg_reload_conf()"
_TAKES_EFFECT = {
    "postmaster": "restart",
    "sighup": "reload",
    "superuser-backend": "new sessions",
    "backend": "new sessions",
    "superuser": "reload",
    "user": "reload",
}


def _sql(query: sql.Composable) -> str:
    return query.as_string(None)


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Findings:
    changes: list[Change]
    problems: list[Problem]
    notes: list[str]


def make_changeset(
    plan: Plan,
    live: LiveState,
    migrations: MigrationSet | None,
    *,
    analysis: dict[str, tuple[str, ...]] | None = None,
    stats: Mapping[str, TableStats] | None = None,
    now: datetime | None = None,
) -> ChangeSet:
    """Everything apply would do to make the live database match the plan, in stage order.
    `analysis` adds, per pending migration version, what it will do to the live tables; `stats`
    (the live statistics of the tables they touch) judges each pending migration against the
    state the earlier ones leave behind, as `migrate up` does."""
    found = _Findings([], [], [])
    _settings(plan, live, found)
    _roles(plan, live, found)
    _budget(plan, live, found)
    if migrations is not None:
        _migrations(plan, live, migrations, found, analysis or {}, stats)
    _backups(plan, live, found, now or datetime.now(UTC))
    if plan.backup is not None and plan.backup.pgbackrest is not None \
            and live.pgbackrest is not None:
        from dbops.backup import stanza

        setup, notes = stanza.changes(plan.backup.pgbackrest, live.pgbackrest)
        found.changes += setup
        found.notes += notes
    found.notes += [f"{unfinished}; the changes above bring the database back to the plan and "
                    "apply records the result" for unfinished in live.unfinished]
    if found.problems:
        raise PlanError(found.problems)
    return ChangeSet(
        environment=plan.environment,
        database=live.database,
        plan_hash=plan_hash(plan.document.data),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        changes=tuple(found.changes),
        gates=plan_gates(plan.health),
        notes=tuple(found.notes),
        backup_first=_backup_first(plan, found.changes),
    )


def _settings(plan: Plan, live: LiveState, found: _Findings) -> None:
    doc = plan.document
    for name, wanted in plan.settings.items():
        current = live.primary.settings.get(name)
        if current is None:
            near = difflib.get_close_matches(name, list(live.primary.settings), n=1, cutoff=0.75)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            found.problems.append(doc.problem(("settings", name), f"unknown setting{hint}",
                                              at_key=True))
            continue
        if current.context == "internal":
            found.problems.append(
                doc.problem(("settings", name), "is read-only (internal) and cannot be set")
            )
            continue
        try:
            check(current.spec, wanted)
        except ValueError as exc:
            found.problems.append(doc.problem(("settings", name), str(exc).split(": ", 1)[1]))
            continue
        change = _setting_change(name, wanted, live)
        if change:
            found.changes.append(change)
    managed = set(live.snapshot.settings) if live.snapshot else set()
    for unfinished in live.unfinished:  # what a dead or failed apply left is dbops's to undo
        managed |= unfinished.settings
    for name in sorted(managed - set(plan.settings)):
        current = live.primary.settings.get(name)
        if current is not None and current.written is not None:
            found.changes.append(_setting_removal(name, current))


def _setting_change(name: str, wanted: str, live: LiveState) -> Change | None:
    primary = live.primary.settings[name]
    differing, waiting = [], []
    for server in live.servers.values():
        current = server.settings[name]
        if same(current.spec, current.server_value, wanted):
            continue
        if (
            current.pending_restart
            and current.written
            and same(current.spec, current.written, wanted)
        ):
            waiting.append(server.name)
        else:
            differing.append(server.name)
    if not differing and not waiting:
        return None
    takes_effect = _TAKES_EFFECT.get(primary.context, "reload")
    catalog, fallback = settings_catalog.for_version(live.server_version // 10000)
    listed = catalog.settings.get(name)
    if listed is not None and listed.needs_restart:
        takes_effect = "restart"
    restart = takes_effect == "restart"
    why = (f" ({name} is a postmaster setting in the PostgreSQL {catalog.major} catalog"
           f"{'; ' + fallback if fallback else ''})" if listed is not None and restart else "")
    statements = (
        (
            _sql(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(*name.split(".")), sql.Literal(wanted)
                )
            ),
            RELOAD,
        )
        if differing
        else ()
    )
    reason = (
        f"takes effect after a restart{why}"
        f"{': already written, waiting for one' if not differing else ''}"
        if restart
        else f"takes effect on {takes_effect}"
    )
    return Change(
        kind="setting",
        address=f"setting.{name}",
        action="~!" if restart else "~",
        before=spelled_like(primary.spec, primary.server_value, wanted),
        after=wanted,
        risk="high" if restart else "low",
        reason=reason,
        reversible=True,
        statements=statements,
        inverse=_restore(name, primary),
        hosts=tuple(differing or waiting),
        takes_effect=takes_effect,
        fingerprint=_fingerprint(primary.server_value, primary.written),
    )


def _restore(name: str, before: LiveSetting) -> tuple[str, ...]:
    target = sql.Identifier(*name.split("."))
    if before.written is None:
        return (_sql(sql.SQL("ALTER SYSTEM RESET {}").format(target)), RELOAD)
    return (
        _sql(sql.SQL("ALTER SYSTEM SET {} = {}").format(target, sql.Literal(before.written))),
        RELOAD,
    )


def _setting_removal(name: str, current: LiveSetting) -> Change:
    target = sql.Identifier(*name.split("."))
    return Change(
        kind="setting",
        address=f"setting.{name}",
        action="-",
        before=current.written,
        after=None,
        risk="low",
        reason="no longer in the plan: back to the server's configuration file",
        reversible=True,
        statements=(_sql(sql.SQL("ALTER SYSTEM RESET {}").format(target)), RELOAD),
        inverse=_restore(name, current),
        takes_effect=_TAKES_EFFECT.get(current.context, "reload"),
        fingerprint=_fingerprint(current.server_value, current.written),
    )


def _roles(plan: Plan, live: LiveState, found: _Findings) -> None:
    for name, role in plan.roles.items():
        bad = [k for k in role.settings if k not in live.primary.settings]
        for key in bad:
            found.problems.append(
                plan.document.problem(
                    ("roles", name, "settings", key), "unknown setting", at_key=True
                )
            )
        if bad:
            continue
        current = live.roles.get(name)
        if current is None:
            found.changes.append(_role_creation(role))
        else:
            found.changes += _role_alterations(role, current, live)


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _role_creation(role: Role) -> Change:
    statements = [
        _sql(
            sql.SQL("CREATE ROLE {} {} CONNECTION LIMIT {}").format(
                _ident(role.name),
                sql.SQL("LOGIN" if role.login else "NOLOGIN"),
                sql.Literal(role.connection_limit),
            )
        )
    ]
    statements += [
        _sql(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                _ident(role.name), sql.Identifier(*k.split(".")), sql.Literal(v)
            )
        )
        for k, v in role.settings.items()
    ]
    detail = [f"connection_limit {role.connection_limit}", "login" if role.login else "nologin"]
    detail += [f"{k} = {v}" for k, v in role.settings.items()]
    return Change(
        kind="role",
        address=f"role.{role.name}",
        action="+",
        before=None,
        after=role.name,
        risk="low",
        reason="a new role (its password is set outside dbops)",
        reversible=True,
        statements=tuple(statements),
        inverse=(_sql(sql.SQL("DROP ROLE {}").format(_ident(role.name))),),
        fingerprint=_fingerprint(None),
        detail=tuple(detail),
    )


def _role_alterations(role: Role, current: LiveRole, live: LiveState) -> list[Change]:
    name, who = role.name, _ident(role.name)
    changes: list[Change] = []
    fingerprint = _fingerprint(current.login, current.connection_limit, current.settings)

    def alter(
        attribute: str,
        before: Scalar,
        after: Scalar,
        make: sql.Composable,
        undo: sql.Composable,
        action: Action = "~",
        risk: Risk = "low",
        reason: str = "",
        destructive: bool = False,
    ) -> None:
        changes.append(
            Change(
                kind="role",
                address=f"role.{name}.{attribute}",
                action=action,
                before=before,
                after=after,
                risk=risk,
                reason=reason or "takes effect on new sessions",
                reversible=True,
                statements=(_sql(make),),
                inverse=(_sql(undo),),
                takes_effect="new sessions",
                fingerprint=fingerprint,
                destructive=destructive,
            )
        )

    if current.login != role.login:
        flag = sql.SQL("LOGIN" if role.login else "NOLOGIN")
        old = sql.SQL("LOGIN" if current.login else "NOLOGIN")
        alter(
            "login",
            current.login,
            role.login,
            sql.SQL("ALTER ROLE {} {}").format(who, flag),
            sql.SQL("ALTER ROLE {} {}").format(who, old),
            risk="medium",
            reason="" if role.login else "the role can no longer log in",
            destructive=not role.login,
        )
    if current.connection_limit != role.connection_limit:
        limit = sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}")
        alter(
            "connection_limit",
            current.connection_limit,
            role.connection_limit,
            limit.format(who, sql.Literal(role.connection_limit)),
            limit.format(who, sql.Literal(current.connection_limit)),
            reason="takes effect on new connections",
        )
    set_, reset = sql.SQL("ALTER ROLE {} SET {} = {}"), sql.SQL("ALTER ROLE {} RESET {}")
    for key in sorted(set(role.settings) | set(current.settings)):
        target = sql.Identifier(*key.split("."))
        wanted, have = role.settings.get(key), current.settings.get(key)
        spec = live.primary.settings[key].spec if key in live.primary.settings else None
        if wanted is not None and have is not None and spec and same(spec, have, wanted):
            continue
        if wanted is not None and have is None:
            alter(
                f"settings.{key}",
                None,
                wanted,
                set_.format(who, target, sql.Literal(wanted)),
                reset.format(who, target),
                action="+",
            )
        elif wanted is not None:
            alter(
                f"settings.{key}",
                have,
                wanted,
                set_.format(who, target, sql.Literal(wanted)),
                set_.format(who, target, sql.Literal(have)),
            )
        else:
            alter(
                f"settings.{key}",
                have,
                None,
                reset.format(who, target),
                set_.format(who, target, sql.Literal(have)),
                action="-",
            )
    return changes


def _budget(plan: Plan, live: LiveState, found: _Findings) -> None:
    """The pools must fit the role's limit, and the role's limit the server's connections;
    what the plan leaves unset is taken from the live server."""
    pool, doc = plan.pool, plan.document

    def live_int(name: str) -> int:
        setting = live.primary.settings.get(name)
        return int(setting.setting) if setting else 0

    def planned_int(name: str) -> int:
        return (
            int(plan.settings[name])
            if name in plan.settings and plan.settings[name].isdigit()
            else live_int(name)
        )

    max_connections, reserved = server_capacity(planned_int)
    role = pool.role
    if role in plan.roles:
        limit: int | None = plan.roles[role].connection_limit
    elif role in live.roles:
        limit = live.roles[role].connection_limit
    else:
        limit = None
    budget = connection_budget(
        pool.instances,
        pool.max_size,
        pool.reserve,
        role=role,
        role_limit=limit,
        max_connections=max_connections,
        reserved=reserved,
    )
    problems = budget.problems()
    found.problems.extend(doc.problem(path, message) for path, message in problems)
    if not problems:
        found.notes.append(budget.note())


def _migrations(
    plan: Plan,
    live: LiveState,
    migrations: MigrationSet,
    found: _Findings,
    analysis: dict[str, tuple[str, ...]],
    stats: Mapping[str, TableStats] | None,
) -> None:
    settings = plan.migrations
    applied = list(live.applied)
    target = settings.target
    problem = target_problem(plan, migrations)
    if problem is not None:
        found.problems.append(problem)
        return
    try:
        newer = [a for a in applied if target != "latest" and a.version > target]
        if newer:
            for migration in pending.to_revert(migrations, applied, count=len(newer), to=None):
                found.changes.append(
                    Change(
                        kind="migration",
                        address=f"migration.{migration.version}",
                        action="-",
                        before=migration.name,
                        after=None,
                        risk="high",
                        reason=f"rolls back to the target {target}: runs its down section",
                        reversible=False,
                        fingerprint=migration.checksum[:16],
                        detail=(migration.description,),
                        destructive=True,
                        migration=_run(plan, migration, "down"),
                    )
                )
            return
        waiting = pending.to_apply(
            migrations, applied, target=target, allow_out_of_order=settings.allow_out_of_order
        )
        if waiting:  # pglast's AST is loaded only when something is pending
            # lazy: pglast only when migrations are pending
            from dbops.migrate.analyze import data_loss
            from dbops.migrate.runstate import run_states
        for migration, state in zip(waiting, run_states(waiting, stats) if waiting else [],
                                    strict=True):
            loses = data_loss(migration, new=state.new)
            if migration.expand is not None and plan.migrations.complete == "auto":
                loses += migration.expand.losses()  # completes, so drops, in this apply
            found.changes.append(
                Change(
                    kind="migration",
                    address=f"migration.{migration.version}",
                    action="+",
                    before=None,
                    after=migration.name,
                    risk="high" if loses else migration.risk,  # type: ignore[arg-type]
                    reason="; ".join(filter(None, [migration.description, *loses])),
                    reversible=migration.down is not None,
                    fingerprint=migration.checksum[:16],
                    detail=(_in_project(plan, migration.path),)
                    + (
                        (f"estimated {migration.estimated_duration}",)
                        if migration.estimated_duration
                        else ()
                    )
                    + analysis.get(migration.version, ()),
                    destructive=bool(loses),
                    migration=_run(plan, migration, "up", state),
                )
            )
    except MigrationError as exc:
        found.problems.append(plan.document.problem(("migrations",), str(exc)))


def target_problem(plan: Plan, migrations: MigrationSet) -> Problem | None:
    """A target that names no migration file is an error, never "roll back everything newer"."""
    target = plan.migrations.target
    if target == "latest" or migrations.get(target) is not None:
        return None
    return plan.document.problem(
        ("migrations", "target"),
        f"names no migration: there is no file for version {target} in "
        f"{display_path(migrations.directory)}")


def _run(plan: Plan, migration: Migration, direction: Direction,
         state: RunState | None = None) -> MigrationRun:
    """The exact steps apply will run for this migration (online rewrites included)."""
    # lazy: pglast only when migrations are pending
    from dbops.migrate.runner import prepare

    online = plan.migrations.zero_downtime or migration.zero_downtime
    execution = prepare(migration, direction, zero_downtime=online, state=state)
    return MigrationRun(
        version=migration.version, name=migration.name, file=migration.path.name,
        checksum=migration.checksum, direction=direction,
        mode="transaction" if execution.mode == "transaction" else "steps",
        steps=tuple(MigrationStep(step.number, step.transactional,
                                  tuple(s.text for s in step.statements),
                                  tuple(s.line for s in step.statements), step.note)
                    for step in execution.steps))


def _backups(plan: Plan, live: LiveState, found: _Findings, now: datetime) -> None:
    """A backup the schedule wants (take one), and the backups retention would delete."""
    policy = plan.backup
    if policy is None:
        return
    # lazy: the backup rules only for a plan with a backup policy (`dbops plan` stays light)
    from dbops.backup.catalog import retention_effect
    from dbops.backup.schedule import overdue

    late = overdue(policy, live.backups, now)
    source = f" (judged from {live.backup_source})" if live.backup_source else ""
    if late is not None:
        newest = live.backups[-1].id if live.backups else None
        found.changes.append(Change(
            kind="backup", address="backup.schedule", action="+", before=newest,
            after="a scheduled backup", risk="low", reason=late + source, reversible=True,
            fingerprint=_fingerprint([b.id for b in live.backups])))
    if live.backup_source.startswith("the catalog recorded"):
        found.notes.append(f"backups judged from {live.backup_source}: {len(live.backups)} "
                           "backup(s); retention is judged where the directory is")
        return
    effect = retention_effect(policy, live.backups, now)
    if effect.delete:
        found.changes.append(Change(
            kind="backup", address="backup.retention", action="-", before=len(live.backups),
            after=len(effect.keep), risk="medium", reversible=False,
            reason=f"retention deletes {len(effect.delete)} backup(s): "
                   f"{', '.join(effect.delete)}",
            detail=tuple(effect.lines()), fingerprint=_fingerprint(effect.delete),
            destructive=True))


def _backup_first(plan: Plan, changes: list[Change]) -> BackupStep | None:
    """The policy's before-migrate backup, when this apply migrates (either way) or destroys."""
    policy = plan.backup
    if policy is None or not policy.before_migrate:
        return None
    migrating = any(c.kind == "migration" for c in changes)
    destroying = [c.address for c in changes if c.destructive and c.kind != "backup"]
    if not migrating and not destroying:
        return None
    why = "before migrating" if migrating else f"before destroying {', '.join(destroying)}"
    return BackupStep(reason=f"backup.before_migrate: {why}",
                      directory=_in_project(plan, policy.directory))


def _in_project(plan: Plan, path: Path) -> str:
    """A path as a ChangeSet shows it: relative to the project root, so the plan reads (and a
    saved plan compares) the same from whichever directory it is made or applied."""
    return str(path.relative_to(plan.root) if path.is_relative_to(plan.root) else path)
