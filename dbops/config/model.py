"""The typed Plan: what every stage after loading reads. Built only from a validated, defaulted document."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from dbops.config.secrets import secret_variables
from dbops.config.source import Document
from dbops.errors import ConnectFailed
from dbops.units import parse_duration

Profile = Literal["oltp", "analytics", "mixed"]


class Secret:
    """A value that never prints. Only dbops.connect calls reveal().

    A secret given by a reference to an unset variable is resolved late: validating or rendering a
    plan needs no password, connecting does, and fails then with the variable's name and origin.
    """

    __slots__ = ("_missing", "_value")

    def __init__(self, value: str | None, *, missing: str = "") -> None:
        self._value = value
        self._missing = missing

    def reveal(self) -> str:
        if self._value is None:
            raise ConnectFailed(self._missing)
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Replica:
    name: str
    host: str
    port: int


@dataclass(frozen=True)
class Database:
    embedded: bool
    host: str
    port: int
    name: str
    user: str
    password: Secret | None
    sslmode: str
    connect_timeout: timedelta
    replicas: tuple[Replica, ...]
    sslrootcert: Path | None = None
    sslcert: Path | None = None
    sslkey: Path | None = None


@dataclass(frozen=True)
class DynamicSizing:
    enabled: bool
    target_utilization: float


@dataclass(frozen=True)
class ReadRouting:
    strategy: Literal["round_robin", "least_lag"]
    max_lag: timedelta
    read_your_writes: bool


@dataclass(frozen=True)
class Pool:
    profile: Profile
    role: str | None
    instances: int
    min_size: int
    max_size: int
    reserve: int
    acquire_timeout: timedelta
    max_idle: timedelta
    max_lifetime: timedelta
    leak_detection_threshold: timedelta
    slow_query_threshold: timedelta
    log_queries: bool
    log_slow_queries: bool
    dynamic_sizing: DynamicSizing
    read_routing: ReadRouting
    leak_reclaim_after: timedelta | None = None  # None: only garbage-collected ones are reclaimed

    @property
    def demand(self) -> int:
        """Connections the application's pools can open at most, plus the reserve."""
        return self.instances * self.max_size + self.reserve


@dataclass(frozen=True)
class Role:
    name: str
    login: bool
    connection_limit: int
    settings: dict[str, str]

    def snapshot(self) -> dict[str, Any]:
        """The role as the last-applied snapshot records it (and drift compares it)."""
        return {"login": self.login, "connection_limit": self.connection_limit,
                "settings": self.settings}


@dataclass(frozen=True)
class Retries:
    attempts: int
    backoff: timedelta


@dataclass(frozen=True)
class Migrations:
    directory: Path
    target: str
    zero_downtime: bool
    lock_timeout: timedelta
    statement_timeout: timedelta
    lock_wait: timedelta
    allow_out_of_order: bool
    retries: Retries
    lint_fail_on: Literal["error", "warning", "info", "never"]
    lint_max_blocking: timedelta
    rehearse: Literal["auto", "always", "never"]
    role: str | None = None  # SET ROLE for the migrations' own statements (the owner role)
    # When an expand/contract migration contracts: on `dbops migrate complete`, or right away.
    complete: Literal["auto", "manual"] = "manual"


@dataclass(frozen=True)
class Retention:
    keep_last: int
    max_age: timedelta


@dataclass(frozen=True)
class PgBackRest:
    """The pgbackrest engine's declaration: where the repository is, when each kind of backup
    runs, what expire keeps (pgBackRest's own retention terms) and the RPO promised."""

    repository: Path
    stanza: str
    config: Path
    full: str | None
    differential: str | None
    incremental: str | None
    retention_full: int
    retention_diff: int | None
    retention_archive: int | None
    compress: Literal["none", "gz", "lz4", "zst", "bz2"]
    process_max: int
    archive_timeout: timedelta
    recovery_objective: timedelta

    @property
    def archive_command(self) -> str:
        """The archive_command that pushes each WAL segment into the stanza's repository."""
        return f"pgbackrest --config={self.config} --stanza={self.stanza} archive-push %p"

    def archive_settings(self) -> dict[str, str]:
        """The server settings archiving into pgBackRest needs; they join the plan's settings
        (archive_mode needs a restart)."""
        return {"archive_mode": "on", "archive_command": self.archive_command,
                "archive_timeout": f"{int(self.archive_timeout.total_seconds())}s"}


@dataclass(frozen=True)
class BackupPolicy:
    directory: Path
    before_migrate: bool
    format: Literal["custom", "directory"]
    jobs: int
    globals: bool
    schedule: str | None
    retention: Retention
    verify_checksums: bool
    restore_test: str
    engine: Literal["pg_dump", "pgbackrest"] = "pg_dump"
    pgbackrest: PgBackRest | None = None


@dataclass(frozen=True)
class Thresholds:
    connection_utilization: float
    response_time: timedelta
    error_rate: float
    replication_lag: timedelta
    long_transaction: timedelta
    idle_in_transaction: timedelta
    slow_query: timedelta


@dataclass(frozen=True)
class Gates:
    before_apply: bool
    after_each_stage: bool
    settle: timedelta


@dataclass(frozen=True)
class AlertChannel:
    type: Literal["log", "webhook", "command"]
    url: Secret | None
    command: str | None
    timeout: timedelta
    retries: int
    cooldown: timedelta
    env: tuple[str, ...] = ()
    """Variables a command channel passes on from dbops' environment (beyond PATH, HOME, LANG)."""
    allow_http: bool = False
    """A webhook outside development may use plain http."""


@dataclass(frozen=True)
class RecoveryAction:
    """One opt-in recovery action: act on sessions of `roles` past `after`, or only audit (dry run)."""

    after: timedelta | None
    roles: tuple[str, ...]
    dry_run: bool


@dataclass(frozen=True)
class Recovery:
    """Guarded recovery. `enabled` is the master switch; an action that is None is not opted in."""

    enabled: bool
    terminate_idle_in_transaction_after: timedelta | None
    dry_run: bool = False
    terminate_idle_in_transaction: RecoveryAction | None = None
    cancel_blocking_queries: RecoveryAction | None = None
    reset_pool_after_failover: RecoveryAction | None = None


@dataclass(frozen=True)
class Health:
    enabled: bool
    monitoring: bool
    check_interval: timedelta
    thresholds: Thresholds
    gates: Gates
    alerts: tuple[AlertChannel, ...]
    recovery: Recovery


@dataclass(frozen=True)
class DriftIgnore:
    path: str
    until: date
    reason: str


@dataclass(frozen=True)
class FleetTarget:
    """One database of a fleet: its id and the `database.*` keys that differ for it."""

    id: str
    database: dict[str, Any]
    index: int  # its place in fleet.targets (where its problems are reported)
    host: str | None = None  # the inventory host it runs on (fleet.inventory_group)


@dataclass(frozen=True)
class Fleet:
    """One plan rolled out over many databases: `canary` first, a `soak` of health checks on
    it, then batches of `batch` targets, `parallel` at a time."""

    targets: tuple[FleetTarget, ...]
    canary: int
    soak: timedelta
    batch: int
    parallel: int


@dataclass(frozen=True)
class Plan:
    """One environment's plan, typed, with every default filled in."""

    environment: str
    source: Path
    root: Path
    inventory: Path | None
    database: Database
    pool: Pool
    roles: dict[str, Role]
    settings: dict[str, str]
    migrations: Migrations
    backup: BackupPolicy | None
    health: Health
    drift_ignores: tuple[DriftIgnore, ...]
    drift_unmanaged: Literal["report", "ignore"]  # out-of-band changes to what it does not declare
    document: Document = field(repr=False, compare=False)
    fleet: Fleet | None = None  # None: one database, as the database section says
    inventory_host: str | None = None  # a fleet target's host: the inventory's only host, primary

    @property
    def secret_variables(self) -> frozenset[str]:
        """Environment variables that hold secrets (see config/secrets.py)."""
        return secret_variables(self.document)


def setting_text(value: Any) -> str:
    """A setting as PostgreSQL spells it: booleans become on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _dur(value: str) -> timedelta:
    return parse_duration(value)


def _password(doc: Document) -> Secret | None:
    path = ("database", "password")
    if path in doc.deferred:
        return Secret(None, missing=str(doc.problem(path, doc.deferred[path])))
    value = doc.data["database"].get("password")
    return None if value in (None, "") else Secret(str(value))


def _recovery(rec: dict[str, Any], *, plan_roles: tuple[str, ...]) -> Recovery:
    """The recovery policy; the `terminate_idle_in_transaction_after` shorthand is the action with
    the plan's roles, and the action's own block wins when both are written."""
    dry_run = bool(rec["dry_run"])

    def action(name: str) -> RecoveryAction | None:
        block = rec.get(name)
        if block is None:
            return None
        return RecoveryAction(
            after=_dur(block["after"]),
            roles=tuple(block.get("roles", plan_roles)),
            dry_run=block.get("dry_run", dry_run),
        )

    terminate = action("terminate_idle_in_transaction")
    if terminate is None and "terminate_idle_in_transaction_after" in rec:
        terminate = RecoveryAction(
            _dur(rec["terminate_idle_in_transaction_after"]), plan_roles, dry_run
        )
    reset = rec["reset_pool_after_failover"]
    return Recovery(
        enabled=rec["enabled"],
        terminate_idle_in_transaction_after=terminate.after if terminate else None,
        dry_run=dry_run,
        terminate_idle_in_transaction=terminate,
        cancel_blocking_queries=action("cancel_blocking_queries"),
        reset_pool_after_failover=(
            RecoveryAction(None, (), reset.get("dry_run", dry_run)) if reset["enabled"] else None
        ),
    )


def _tls_file(root: Path, value: str | None) -> Path | None:
    """A TLS file named in the plan, relative to the project root (libpq's `system` as is)."""
    if value is None:
        return None
    return Path(value) if value == "system" else root / value


def _fleet(block: dict[str, Any] | None) -> Fleet | None:
    if block is None:
        return None
    return Fleet(
        targets=tuple(FleetTarget(t["id"], dict(t.get("database", {})), n, host)
                      for n, (t, host) in enumerate(zip(
                          block["targets"], block.get("hosts") or [None] * len(block["targets"]),
                          strict=True))),
        canary=block["canary"],
        soak=_dur(block["soak"]),
        batch=block["batch"],
        parallel=block["parallel"],
    )


def _pgbackrest(block: dict[str, Any] | None, *, root: Path,
                environment: str) -> PgBackRest | None:
    if block is None:
        return None
    retention = block.get("retention", {})
    return PgBackRest(
        repository=root / block["repository"],
        stanza=block.get("stanza", environment),
        config=root / block["config"],
        full=block.get("full"),
        differential=block.get("differential"),
        incremental=block.get("incremental"),
        retention_full=retention.get("full", 2),
        retention_diff=retention.get("differential"),
        retention_archive=retention.get("archive"),
        compress=block["compress"],
        process_max=block["process_max"],
        archive_timeout=_dur(block["archive_timeout"]),
        recovery_objective=_dur(block["recovery_objective"]),
    )


def _archive_settings(backup: dict[str, Any] | None, *, root: Path,
                      environment: str) -> dict[str, str]:
    if backup is None or backup["engine"] != "pgbackrest":
        return {}
    declared = _pgbackrest(backup.get("pgbackrest"), root=root, environment=environment)
    return declared.archive_settings() if declared else {}


def build_plan(doc: Document, *, source: Path, root: Path) -> Plan:
    """Turn a validated document with defaults filled in into a Plan."""
    d = doc.data
    db, pool, mig, health = d["database"], d["pool"], d["migrations"], d["health"]
    backup = d.get("backup")
    return Plan(
        environment=d["environment"],
        source=source,
        root=root,
        inventory=root / d["inventory"] if "inventory" in d else None,
        database=Database(
            embedded=db["embedded"],
            host=str(db["host"]),
            port=db["port"],
            name=db["name"],
            user=str(db["user"]),
            password=_password(doc),
            sslmode=db["sslmode"],
            connect_timeout=_dur(db["connect_timeout"]),
            replicas=tuple(
                Replica(name=r.get("name", f"replica{n + 1}"), host=r["host"], port=r["port"])
                for n, r in enumerate(db["replicas"])
            ),
            sslrootcert=_tls_file(root, db.get("sslrootcert")),
            sslcert=_tls_file(root, db.get("sslcert")),
            sslkey=_tls_file(root, db.get("sslkey")),
        ),
        pool=Pool(
            profile=pool["profile"],
            role=pool.get("role"),
            instances=pool["instances"],
            min_size=pool["min_size"],
            max_size=pool["max_size"],
            reserve=pool["reserve"],
            acquire_timeout=_dur(pool["acquire_timeout"]),
            max_idle=_dur(pool["max_idle"]),
            max_lifetime=_dur(pool["max_lifetime"]),
            leak_detection_threshold=_dur(pool["leak_detection_threshold"]),
            slow_query_threshold=_dur(pool["slow_query_threshold"]),
            log_queries=pool["log_queries"],
            log_slow_queries=pool["log_slow_queries"],
            dynamic_sizing=DynamicSizing(**pool["dynamic_sizing"]),
            leak_reclaim_after=(
                _dur(pool["leak_reclaim_after"]) if "leak_reclaim_after" in pool else None
            ),
            read_routing=ReadRouting(
                strategy=pool["read_routing"]["strategy"],
                max_lag=_dur(pool["read_routing"]["max_lag"]),
                read_your_writes=pool["read_routing"]["read_your_writes"],
            ),
        ),
        roles={
            name: Role(
                name=name,
                login=r["login"],
                connection_limit=r["connection_limit"],
                settings={k: setting_text(v) for k, v in r.get("settings", {}).items()},
            )
            for name, r in d.get("roles", {}).items()
        },
        settings={**{k: setting_text(v) for k, v in d.get("settings", {}).items()},
                  **_archive_settings(backup, root=root, environment=d["environment"])},
        migrations=Migrations(
            directory=root / mig["directory"],
            target=mig["target"],
            zero_downtime=mig["zero_downtime"],
            lock_timeout=_dur(mig["lock_timeout"]),
            statement_timeout=_dur(mig["statement_timeout"]),
            lock_wait=_dur(mig["lock_wait"]),
            allow_out_of_order=mig["allow_out_of_order"],
            retries=Retries(mig["retries"]["attempts"], _dur(mig["retries"]["backoff"])),
            lint_fail_on=mig["lint"]["fail_on"],
            lint_max_blocking=_dur(mig["lint"]["max_blocking"]),
            rehearse=mig["rehearse"],
            role=mig.get("role"),
            complete=mig["complete"],
        ),
        backup=None
        if backup is None
        else BackupPolicy(
            directory=root / backup["directory"],
            before_migrate=backup["before_migrate"],
            format=backup["format"],
            jobs=backup["jobs"],
            globals=backup["globals"],
            schedule=backup.get("schedule"),
            retention=Retention(
                backup["retention"]["keep_last"], _dur(backup["retention"]["max_age"])
            ),
            verify_checksums=backup["verify"]["checksums"],
            restore_test=backup["verify"]["restore_test"],
            engine=backup["engine"],
            pgbackrest=_pgbackrest(backup.get("pgbackrest"), root=root,
                                   environment=d["environment"]),
        ),
        health=Health(
            enabled=health["enabled"],
            monitoring=health["monitoring"],
            check_interval=_dur(health["check_interval"]),
            thresholds=Thresholds(
                connection_utilization=health["thresholds"]["connection_utilization"],
                error_rate=health["thresholds"]["error_rate"],
                **{
                    k: _dur(v)
                    for k, v in health["thresholds"].items()
                    if k not in ("connection_utilization", "error_rate")
                },
            ),
            gates=Gates(
                health["gates"]["before_apply"],
                health["gates"]["after_each_stage"],
                _dur(health["gates"]["settle"]),
            ),
            alerts=tuple(
                AlertChannel(
                    type=a["type"],
                    url=Secret(a["url"]) if a.get("url") else None,
                    command=a.get("command"),
                    timeout=_dur(a["timeout"]),
                    retries=a["retries"],
                    cooldown=_dur(a["cooldown"]),
                    env=tuple(a.get("env", ())),
                    allow_http=bool(a.get("allow_http", False)),
                )
                for a in health["alerts"]
            ),
            recovery=_recovery(health["recovery"], plan_roles=tuple(d.get("roles", {}))),
        ),
        drift_ignores=tuple(
            DriftIgnore(i["path"], date.fromisoformat(i["until"]), i["reason"])
            for i in d["drift"]["ignore"]
        ),
        drift_unmanaged=d["drift"]["unmanaged"],
        document=doc,
        fleet=_fleet(d.get("fleet")),
    )
