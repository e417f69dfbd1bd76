"""(Plan, LiveState, ChangeSet) -> DriftReport. Pure. Out-of-band drift: the live database differs
from what dbops last applied. Pending configuration: the plan differs from what dbops last applied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from dbops.backup.schedule import overdue
from dbops.changes import ChangeSet, Scalar
from dbops.config.model import DriftIgnore, Plan
from dbops.inspect import LiveState
from dbops.ledger import advance
from dbops.setting_values import SettingSpec, same

Kind = Literal["out-of-band", "pending"]
IN_SYNC, OUT_OF_BAND, PENDING_ONLY = 0, 2, 3


@dataclass(frozen=True)
class DriftItem:
    kind: Kind
    address: str
    last_applied: Scalar
    live: Scalar
    planned: Scalar
    ignored: str = ""  # why, and until when, when an ignore in the plan silences it


@dataclass(frozen=True)
class DriftReport:
    environment: str
    database: str
    baseline: str | None  # when dbops last applied, or None: never
    items: tuple[DriftItem, ...]

    def active(self, kind: Kind) -> list[DriftItem]:
        return [i for i in self.items if i.kind == kind and not i.ignored]

    @property
    def exit_code(self) -> int:
        if self.active("out-of-band"):
            return OUT_OF_BAND
        return PENDING_ONLY if self.active("pending") else IN_SYNC

    def to_json(self) -> str:
        return json.dumps({"format_version": 1, "exit_code": self.exit_code, **asdict(self)},
                          indent=2, default=str)

    def lines(self) -> list[str]:
        head = f"drift for {self.environment} ({self.database})"
        since = f"last applied {self.baseline}" if self.baseline else "dbops never applied here"
        out = [f"{head}, {since}"]
        for kind, title in (("out-of-band", "Out-of-band drift (the live database changed)"),
                            ("pending", "Pending configuration (the plan changed)")):
            items = [i for i in self.items if i.kind == kind]
            if items:
                out.append(f"{title}:")
                out += [_line(i) for i in items]
        verdict = {IN_SYNC: "In sync.", OUT_OF_BAND: "Out-of-band drift found.",
                   PENDING_ONLY: "Pending configuration only."}[self.exit_code]
        out.append(verdict)
        return out


def _line(item: DriftItem) -> str:
    if item.kind == "out-of-band" and not item.address.startswith(("setting.", "role.")):
        text = f"  {item.address}: {item.live}"
    elif item.kind == "out-of-band":
        text = f"  {item.address}: dbops applied {item.last_applied!r}, live is {item.live!r}"
    else:
        text = f"  {item.address}: applied {item.last_applied!r}, plan says {item.planned!r}"
    return f"{text} (ignored: {item.ignored})" if item.ignored else text


def detect(plan: Plan, live: LiveState, changeset: ChangeSet, *, today: date) -> DriftReport:
    items: list[DriftItem] = []
    snapshot = live.snapshot
    if snapshot is None:
        items = [DriftItem("pending", c.address, None, c.before, c.after)
                 for c in changeset.changes]
    else:
        items += _settings(plan, live, snapshot.settings)
        items += _roles(plan, live, snapshot.roles)
        credited, runs = _migration_run(snapshot.schema_fingerprint, live)
        items += runs
        items += _schema(credited, live.schema)
        items += [DriftItem("pending", c.address, c.before, c.before, c.after)
                  for c in changeset.of_kind("migration")]
    late = overdue(plan.backup, live.backups, datetime.now(UTC))
    if late is not None:  # out-of-band in effect: the backups the plan promises are not there
        items.append(DriftItem("out-of-band", "backup.schedule", None, late,
                               plan.backup.schedule if plan.backup else None))
    silenced = tuple(_ignore(i, plan.drift_ignores, today) for i in items)
    return DriftReport(plan.environment, live.database,
                       snapshot.applied_at.isoformat(timespec="seconds") if snapshot else None,
                       silenced)


def _settings(plan: Plan, live: LiveState, applied: dict[str, str]) -> list[DriftItem]:
    items = []
    for name in sorted(set(applied) | set(plan.settings)):
        setting = live.primary.settings.get(name)
        if setting is None:
            continue
        spec, before, wanted = setting.spec, applied.get(name), plan.settings.get(name)
        current = setting.written if live.primary.auto_conf_readable else setting.server_value
        address = f"setting.{name}"
        if before is not None and (current is None or not same(spec, current, before)):
            items.append(DriftItem("out-of-band", address, before,
                                   current if current is not None else setting.shown, wanted))
        if not _same(spec, before, wanted):
            items.append(DriftItem("pending", address, before, setting.shown, wanted))
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
        now = None if role is None else {"login": role.login,
                                         "connection_limit": role.connection_limit,
                                         "settings": role.settings}
        planned = plan.roles.get(name)
        wanted = None if planned is None else {"login": planned.login,
                                               "connection_limit": planned.connection_limit,
                                               "settings": planned.settings}
        items += _compare_role(name, before, now, wanted, live)
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
            return DriftItem(item.kind, item.address, item.last_applied, item.live, item.planned,
                             f"{rule.reason}, until {rule.until.isoformat()}")
    return item


def _address(path: str) -> str:
    """Plan paths (settings.x, roles.y) name the same things as change addresses (setting.x)."""
    for plural, singular in (("settings.", "setting."), ("roles.", "role."),
                             ("migrations.", "migration.")):
        if path.startswith(plural):
            return singular + path.removeprefix(plural)
    return path
