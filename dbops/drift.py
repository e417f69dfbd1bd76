"""(Plan, LiveState, ChangeSet) -> DriftReport. Pure. Out-of-band drift: the live database differs
from what dbops last applied, what the plan does not manage included (ALTER SYSTEM entries, powerful
roles), or an applied migration's file was edited. Pending configuration: the plan differs from what
dbops last applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

from dbops.changes import ChangeSet, Scalar
from dbops.config.model import DriftIgnore, Plan
from dbops.inspect import ROLE_ATTRIBUTES, LiveState
from dbops.ledger import Snapshot, advance
from dbops.migrate import pending
from dbops.migrate.files import MigrationSet
from dbops.migration_history import AppliedMigration
from dbops.setting_values import SettingSpec, same, spelled_like

Kind = Literal["out-of-band", "pending"]
Verdict = Literal["in sync", "out-of-band", "pending only"]


@dataclass(frozen=True)
class DriftItem:
    kind: Kind
    address: str
    last_applied: Scalar
    live: Scalar
    planned: Scalar
    ignored: str = ""  # why, and until when, when an ignore in the plan silences it
    detail: str = ""  # what happened, in words, when the values alone do not say it


@dataclass(frozen=True)
class DriftReport:
    environment: str
    database: str
    baseline: str | None  # when dbops last applied, or None: never
    items: tuple[DriftItem, ...]
    backup_source: str = ""  # where the backups were judged from (none: no backup policy)

    def active(self, kind: Kind) -> list[DriftItem]:
        return [i for i in self.items if i.kind == kind and not i.ignored]

    @property
    def verdict(self) -> Verdict:
        """Out-of-band drift outranks pending configuration; ignored items count for neither."""
        if self.active("out-of-band"):
            return "out-of-band"
        return "pending only" if self.active("pending") else "in sync"


def describe(item: DriftItem) -> str:
    """One drift item in words: its address and what happened."""
    if item.detail:
        text = f"{item.address}: {item.detail}"
    elif item.kind == "out-of-band" and not item.address.startswith(("setting.", "role.")):
        text = f"{item.address}: {item.live}"
    elif item.kind == "out-of-band":
        text = (f"{item.address}: dbops applied {_said(item.last_applied)}, "
                f"live is {_said(item.live)}")
    else:
        text = f"{item.address}: applied {_said(item.last_applied)}, plan says {_said(item.planned)}"
    return f"{text} (ignored: {item.ignored})" if item.ignored else text


def _said(value: Scalar) -> str:
    """A value in a drift line: quoted as written, or `nothing` (never Python's None)."""
    return "nothing" if value is None else repr(value)


def detect(plan: Plan, live: LiveState, changeset: ChangeSet, *, today: date,
           migrations: MigrationSet | None = None, stale_sum: str = "") -> DriftReport:
    """`migrations` are the files as they are (edited applied ones are drift); `stale_sum` is why
    dbops.sum does not match them, if it does not. Plan the ChangeSet with `as_applied` files."""
    items: list[DriftItem] = []
    snapshot = live.snapshot
    if snapshot is None:
        items = [DriftItem("pending", c.address, None, c.before, c.after)
                 for c in changeset.changes]
    else:
        items += _settings(plan, live, snapshot.settings)
        items += _roles(plan, live, snapshot.roles)
        if plan.drift_unmanaged == "report":
            items += _unmanaged_settings(plan, live, snapshot)
            items += _unmanaged_roles(plan, live, snapshot)
        credited, runs = _migration_run(snapshot.schema_fingerprint, live)
        items += runs
        items += _schema(credited, live.schema)
        items += [DriftItem("pending", c.address, c.before, c.before, c.after)
                  for c in changeset.of_kind("migration")]
    if migrations is not None:
        items += _edited(migrations, live.applied)
    items += _unfinished(live)
    if stale_sum:
        items.append(DriftItem("out-of-band", "dbops.sum", None, stale_sum, None))
    late = _overdue(plan, live)
    if late is not None:  # out-of-band in effect: the backups the plan promises are not there
        items.append(DriftItem("out-of-band", "backup.schedule", None, late,
                               plan.backup.schedule if plan.backup else None,
                               detail=f"{late} (judged from {live.backup_source})"))
    items += _pgbackrest(plan, live, changeset, snapshot is None)
    silenced = tuple(_ignore(i, plan.drift_ignores, today) for i in items)
    return DriftReport(plan.environment, live.database,
                       snapshot.applied_at.isoformat(timespec="seconds") if snapshot else None,
                       silenced, live.backup_source)


def _pgbackrest(plan: Plan, live: LiveState, changeset: ChangeSet,
                listed: bool) -> list[DriftItem]:
    """The pgbackrest engine: its configuration or stanza not as planned (pending: apply writes
    them), and archiving that fails or lags behind recovery_objective (out-of-band: the
    recovery point the plan promises is not there)."""
    policy = plan.backup.pgbackrest if plan.backup else None
    if policy is None or live.pgbackrest is None:
        return []
    # lazy: the backup rules only when the plan has a pgBackRest policy
    from dbops.backup.archiving import judge
    from dbops.backup.schedule import overdue_since

    items = [] if listed else [
        DriftItem("pending", c.address, None, c.before, c.after)
        for c in changeset.of_kind("backup") if c.address.startswith("backup.pgbackrest.")
        and not c.address.endswith(".check")]
    verdict = judge(live.pgbackrest.archive, policy.recovery_objective)
    if verdict.verdict != "ok":
        items.append(DriftItem("out-of-band", "backup.archiving", None, verdict.verdict,
                               "ok", detail=verdict.message))
    late = (overdue_since(policy.full, live.pgbackrest.newest_full, datetime.now(UTC))
            if policy.full else None)
    if late is not None:  # the full backups the plan's schedule promises are not there
        items.append(DriftItem("out-of-band", "backup.pgbackrest.full", None, late, policy.full,
                               detail=late))
    return items


def _unfinished(live: LiveState) -> list[DriftItem]:
    """What an apply that died or failed half-way left behind is out-of-band: no snapshot
    records it, until the next apply does."""
    return [DriftItem("out-of-band", f"apply.{u.id}", None, ", ".join(u.left), None,
                      detail=str(u)) for u in live.unfinished]


def _settings(plan: Plan, live: LiveState, applied: dict[str, str]) -> list[DriftItem]:
    items = []
    for name in sorted(set(applied) | set(plan.settings)):
        setting = live.primary.settings.get(name)
        if setting is None:
            continue
        spec, before, wanted = setting.spec, applied.get(name), plan.settings.get(name)
        # ALTER SYSTEM's entry when there is one; otherwise the server's value (a setting the
        # configuration file already gave the plan's value was never written by apply).
        current = (setting.written if live.primary.auto_conf_readable and setting.written
                   is not None else setting.server_value)
        address = f"setting.{name}"
        unit = wanted or before  # live values are shown in the unit the plan writes
        if before is not None and (current is None or not same(spec, current, before)):
            items.append(DriftItem("out-of-band", address, before, spelled_like(
                spec, current if current is not None else setting.server_value, unit), wanted))
        if not _same(spec, before, wanted):
            items.append(DriftItem("pending", address, before,
                                   spelled_like(spec, setting.server_value, unit), wanted))
    return items


def _same(spec: SettingSpec | None, a: str | None, b: str | None) -> bool:
    if a is None or b is None or spec is None:
        return a == b
    return same(spec, a, b)


def _roles(plan: Plan, live: LiveState, applied: dict[str, dict[str, Any]]) -> list[DriftItem]:
    items = []
    for name in sorted(set(applied) | set(plan.roles)):
        before = applied.get(name)
        role = live.roles.get(name)
        now = None if role is None else role.snapshot()
        planned = plan.roles.get(name)
        wanted = None if planned is None else planned.snapshot()
        items += _compare_role(name, before, now, wanted, live)
        if before is not None and now is not None and plan.drift_unmanaged == "report":
            items += _attributes(name, before, now, unmanaged=False)
    return items


def _compare_role(name: str, before: dict[str, Any] | None, now: dict[str, Any] | None,
                  wanted: dict[str, Any] | None, live: LiveState) -> list[DriftItem]:
    if before is None:
        return [] if wanted is None else [DriftItem("pending", f"role.{name}", None, None, name)]
    if now is None:
        return [DriftItem("out-of-band", f"role.{name}", name, None, name if wanted else None)]
    items = []
    for key in ("login", "connection_limit"):
        if now[key] != before[key]:
            items.append(DriftItem("out-of-band", f"role.{name}.{key}", before[key], now[key],
                                   wanted[key] if wanted else None))
        if wanted is not None and wanted[key] != before[key]:
            items.append(DriftItem("pending", f"role.{name}.{key}", before[key], now[key],
                                   wanted[key]))
    settings = live.primary.settings
    for key in sorted(set(before["settings"]) | set(now["settings"])
                      | set(wanted["settings"] if wanted else ())):
        spec = settings[key].spec if key in settings else None
        was, has = before["settings"].get(key), now["settings"].get(key)
        should = wanted["settings"].get(key) if wanted else None
        if not _same(spec, was, has):
            items.append(DriftItem("out-of-band", f"role.{name}.settings.{key}", was, has, should))
        if wanted is not None and not _same(spec, was, should):
            items.append(DriftItem("pending", f"role.{name}.settings.{key}", was, has, should))
    return items


def _attributes(name: str, before: dict[str, Any], now: dict[str, Any], *,
                unmanaged: bool) -> list[DriftItem]:
    """A role's SUPERUSER, CREATEDB, ... (LOGIN too when the plan does not declare the role) that
    changed since the last apply; a snapshot older than this comparison has none to compare."""
    keys = [k for k in ROLE_ATTRIBUTES if k in before and (unmanaged or k != "login")]
    return [DriftItem("out-of-band", f"role.{name}.{key}", before[key], now[key], None,
                      detail="granted outside dbops" if now[key] else "revoked outside dbops")
            for key in keys if bool(now[key]) != bool(before[key])]


def _unmanaged_settings(plan: Plan, live: LiveState, snapshot: Snapshot) -> list[DriftItem]:
    """ALTER SYSTEM entries the plan does not manage, new, changed or gone since the last apply."""
    if "settings" not in snapshot.unmanaged or not live.primary.auto_conf_readable:
        return []
    managed = set(plan.settings) | set(snapshot.settings)
    before: dict[str, str] = snapshot.unmanaged["settings"]
    now = _written(live, managed)
    items = []
    for name in sorted((set(before) | set(now)) - managed):
        was, has = before.get(name), now.get(name)
        setting = live.primary.settings.get(name)
        if _same(setting.spec if setting else None, was, has):
            continue
        if was is None:
            detail = f"set by ALTER SYSTEM outside the plan: {has}"
        elif has is None:
            detail = f"ALTER SYSTEM entry removed outside dbops (was {was} when dbops last applied)"
        else:
            detail = (f"changed by ALTER SYSTEM outside the plan: {has} "
                      f"(was {was} when dbops last applied)")
        items.append(DriftItem("out-of-band", f"setting.{name}", was, has, None, detail=detail))
    return items


def _unmanaged_roles(plan: Plan, live: LiveState, snapshot: Snapshot) -> list[DriftItem]:
    """Roles the plan does not declare that can log in or hold a privilege attribute, new, dropped
    or changed since the last apply."""
    if "roles" not in snapshot.unmanaged:
        return []
    declared = set(plan.roles) | set(snapshot.roles)
    before: dict[str, dict[str, bool]] = snapshot.unmanaged["roles"]
    now = _powerful(live, declared)
    items = []
    for name in sorted((set(before) | set(now)) - declared):
        was, has = before.get(name), now.get(name)
        if was is None and has is not None:
            items.append(DriftItem("out-of-band", f"role.{name}", None, _held(has), None,
                                   detail=f"created outside dbops ({_held(has)})"))
        elif was is not None and name not in live.roles:
            items.append(DriftItem("out-of-band", f"role.{name}", _held(was), None, None,
                                   detail=f"dropped outside dbops (it had {_held(was)})"))
        elif was is not None:
            items += _attributes(name, was, live.roles[name].attributes, unmanaged=True)
    return items


def _held(attributes: dict[str, bool]) -> str:
    return ", ".join(k for k in ROLE_ATTRIBUTES if attributes.get(k))


def _written(live: LiveState, managed: set[str]) -> dict[str, str]:
    """The primary's ALTER SYSTEM entries (a replica's primary_conninfo is its own business)."""
    return {name: s.written for name, s in live.primary.settings.items()
            if s.written is not None and name not in managed}


def _powerful(live: LiveState, declared: set[str]) -> dict[str, dict[str, bool]]:
    return {name: role.attributes for name, role in live.roles.items()
            if name not in declared and any(role.attributes.values())}


def adopted_by_apply(plan: Plan, live: LiveState) -> list[DriftItem]:
    """What changed outside the plan since the last apply and the next apply takes as its new
    baseline (plan shows it, so nothing is accepted unseen): unmanaged settings and roles, and
    the privilege attributes of declared roles."""
    snapshot = live.snapshot
    if snapshot is None or plan.drift_unmanaged != "report":
        return []
    items = _unmanaged_settings(plan, live, snapshot) + _unmanaged_roles(plan, live, snapshot)
    for name, before in sorted(snapshot.roles.items()):
        role = live.roles.get(name)
        if role is not None:
            items += _attributes(name, before, role.attributes, unmanaged=False)
    return items


def unmanaged_baseline(plan: Plan, live: LiveState) -> dict[str, Any]:
    """What an apply records of what the plan does not manage, from the LiveState it planned with:
    the primary's ALTER SYSTEM entries outside the plan (and outside the last snapshot: apply
    resets those or keeps managing them) and the roles outside the plan with LOGIN or a privilege
    attribute. Drift reports what differs from it, so what existed then is not noise."""
    baseline: dict[str, Any] = {"roles": _powerful(live, set(plan.roles))}
    if live.primary.auto_conf_readable:
        managed = set(plan.settings) | set(live.snapshot.settings if live.snapshot else ())
        managed |= {name for unfinished in live.unfinished for name in unfinished.settings}
        baseline["settings"] = _written(live, managed)
    return baseline


def declared_roles(roles: dict[str, dict[str, Any]], live: LiveState) -> dict[str, dict[str, Any]]:
    """The snapshot's declared roles with the attributes the plan does not set (SUPERUSER,
    CREATEDB, ...) as apply leaves them: a role it creates has none of them."""
    return {name: {**{k: bool(getattr(live.roles[name], k)) if name in live.roles else False
                      for k in ROLE_ATTRIBUTES if k != "login"}, **role}
            for name, role in roles.items()}


def _edited(migrations: MigrationSet, applied: Sequence[AppliedMigration]) -> list[DriftItem]:
    """Applied migrations whose file changed since (a baseline row records no file to compare)."""
    recorded = {a.version: a for a in applied if a.execution_mode != "baseline"}
    return [DriftItem("out-of-band", f"migration.{row.version}", recorded[row.version].checksum,
                      row.detail, None)
            for row in pending.status(migrations, list(applied), [])
            if row.state == "modified" and row.version in recorded]


def as_applied(migrations: MigrationSet, applied: Sequence[AppliedMigration]) -> MigrationSet:
    """The files with each edited applied migration's checksum put back to the history's, so the
    planner still lists what is pending instead of refusing; `detect` reports the edits."""
    recorded = {a.version: a.checksum for a in applied}
    return MigrationSet(migrations.directory, tuple(
        replace(m, checksum=recorded[m.version]) if recorded.get(m.version, m.checksum)
        != m.checksum else m for m in migrations))


def _migration_run(applied: dict[str, str], live: LiveState) -> tuple[dict[str, str],
                                                                        list[DriftItem]]:
    """What a migration run not yet credited (dead, or still going) changed is no hand's work: the
    snapshot as its credit will leave it and, for a dead run, one item naming it instead of its
    objects (a run still going shows as its pending migrations)."""
    credit = live.open_credit
    if credit is None:
        return applied, []
    credited = advance(applied, credit.before, live.schema)
    if live.runner_busy:
        return credited, []
    since = credit.started_at.isoformat(timespec="seconds")
    return credited, [DriftItem("out-of-band", "migration.run", None,
                                f"a migration run died (started {since}); finish it "
                                "(`dbops migrate up`, or the rollback that died)", None)]


def _schema(applied: dict[str, str], live: dict[str, str]) -> list[DriftItem]:
    items = []
    for address in sorted(set(applied) | set(live)):
        was, now = applied.get(address), live.get(address)
        if was == now:
            continue
        state = "created by hand" if was is None else "dropped by hand" if now is None \
            else "changed by hand"
        items.append(DriftItem("out-of-band", address, "present" if was else None,
                               state, None))
    return items


def _ignore(item: DriftItem, ignores: tuple[DriftIgnore, ...], today: date) -> DriftItem:
    for rule in ignores:
        path = _address(rule.path)
        if (item.address == path or item.address.startswith(path + ".")) and today <= rule.until:
            return replace(item, ignored=f"{rule.reason}, until {rule.until.isoformat()}")
    return item


def _address(path: str) -> str:
    """Plan paths (settings.x, roles.y) name the same things as change addresses (setting.x)."""
    for plural, singular in (("settings.", "setting."), ("roles.", "role."),
                             ("migrations.", "migration.")):
        if path.startswith(plural):
            return singular + path.removeprefix(plural)
    return path


def _overdue(plan: Plan, live: LiveState) -> str | None:
    """What the backup schedule misses, if the plan has one."""
    if plan.backup is None:
        return None
    # lazy: the backup rules only for a plan with a backup policy (`dbops plan` stays light)
    from dbops.backup.schedule import overdue

    return overdue(plan.backup, live.backups, datetime.now(UTC))
