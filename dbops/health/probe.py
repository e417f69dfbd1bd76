"""What the health checks read: one query on the primary, one on each replica, as plain snapshots.

Reading is kept apart from judging (evaluate.py, replication.py) so the judging is pure and can be
tested with plain values. Every figure a cycle needs travels in one row per server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dbops.locks import LockHolder


@dataclass(frozen=True)
class Counters:
    """Cumulative pg_stat_database totals of the plan's database: the baseline of the figures
    that are judged per window (error rate, deadlocks, cache hit ratio)."""

    commits: int
    rollbacks: int
    deadlocks: int = 0
    blocks_hit: int = 0
    blocks_read: int = 0

    def since(self, before: Counters) -> Counters | None:
        """The increase since `before`; None when a total went down (statistics reset, another server)."""
        delta = Counters(
            self.commits - before.commits,
            self.rollbacks - before.rollbacks,
            self.deadlocks - before.deadlocks,
            self.blocks_hit - before.blocks_hit,
            self.blocks_read - before.blocks_read,
        )
        if min(delta.commits, delta.rollbacks, delta.deadlocks, delta.blocks_hit,
               delta.blocks_read) < 0:
            return None
        return delta


@dataclass(frozen=True)
class Blocked:
    """A session waiting on a lock, and the sessions holding it up (pg_blocking_pids)."""

    session: LockHolder
    blockers: tuple[LockHolder, ...]


@dataclass(frozen=True)
class RoleUse:
    role: str
    used: int
    limit: int


@dataclass(frozen=True)
class Stream:
    """One row of the primary's pg_stat_replication: the one model of a replication row, for
    the health checks and for inspection (`dbops import` describes them). `lag_bytes`: how
    far replay is behind the primary's current WAL position, when read."""

    application: str
    address: str | None
    state: str
    replay_lsn: int | None
    replay_lag: float | None
    lag_bytes: int | None = None


@dataclass(frozen=True)
class ServerIdentity:
    """Which server answered: a different system or a new timeline means a failover happened."""

    system_id: str
    timeline: int | None
    in_recovery: bool


@dataclass(frozen=True)
class PrimarySnapshot:
    identity: ServerIdentity
    lsn: int | None
    max_connections: int
    reserved_connections: int
    clients: int
    roles: tuple[RoleUse, ...]
    idle_in_transaction: int
    oldest_idle: LockHolder | None
    oldest_transaction: LockHolder | None
    longest_query: LockHolder | None
    blocked: tuple[Blocked, ...]
    blocked_count: int
    counters: Counters
    xid_age: int
    xid_database: str
    multixact_age: int
    invalid_indexes: tuple[str, ...]
    pending_restart: tuple[str, ...]
    streams: tuple[Stream, ...]


@dataclass(frozen=True)
class ReplicaSnapshot:
    in_recovery: bool
    receive_lsn: int | None
    replay_lsn: int | None
    replay_age: float | None
    paused: bool
    receiver_status: str | None
    receiver_silent: float | None
    receiver_timeout: float
    application: str


def parse_lsn(text: str | None) -> int | None:
    """`16/B374D848` -> a byte position."""
    if not text:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


# Sessions of the plan's database and of every other: a long transaction anywhere holds back
# vacuum everywhere. pg_blocking_pids and pg_locks are read only for sessions that wait on a lock,
# because both take the lock manager's locks.
PRIMARY_QUERY = """
WITH act AS MATERIALIZED (
  SELECT a.pid, coalesce(a.usename::text, '') AS usename,
         coalesce(a.application_name, '') AS app, coalesce(a.state, '') AS state,
         a.pid = pg_backend_pid() AS me,
         extract(epoch FROM now() - a.xact_start)::float8 AS xact_age,
         extract(epoch FROM now() - a.query_start)::float8 AS query_age,
         extract(epoch FROM now() - a.state_change)::float8 AS state_age,
         a.xact_start, a.query_start, coalesce(a.state_change, now()) AS state_change,
         host(a.client_addr) AS client, a.wait_event_type
  FROM pg_stat_activity a
  WHERE a.backend_type = 'client backend'
),
blocked AS MATERIALIZED (
  SELECT a.pid, a.app, a.usename, a.state, a.client, pg_blocking_pids(a.pid) AS blockers,
         coalesce((SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted),
                  a.state_change) AS wait_start
  FROM act a WHERE a.wait_event_type = 'Lock' AND NOT a.me
),
db AS (
  SELECT xact_commit, xact_rollback, deadlocks, blks_hit, blks_read
  FROM pg_stat_database WHERE datname = current_database()
),
wrap AS (
  SELECT datname, age(datfrozenxid) AS xid_age, mxid_age(datminmxid) AS mxid_age
  FROM pg_database ORDER BY age(datfrozenxid) DESC LIMIT 1
)
SELECT
  pg_is_in_recovery() AS in_recovery,
  (SELECT system_identifier::text FROM pg_control_system()) AS system_id,
  CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn()::text END AS lsn,
  CASE WHEN NOT pg_is_in_recovery()
       THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END
    AS timeline,
  current_setting('max_connections')::int AS max_connections,
  current_setting('superuser_reserved_connections')::int AS reserved_connections,
  (SELECT count(*) FROM act)::int AS clients,
  (SELECT coalesce(json_agg(json_build_object('role', r.rolname, 'limit', r.rolconnlimit,
                                              'used', coalesce(u.n, 0)) ORDER BY r.rolname), '[]')
     FROM pg_roles r LEFT JOIN (SELECT usename, count(*) AS n FROM act GROUP BY usename) u
       ON u.usename = r.rolname
    WHERE r.rolconnlimit >= 0 AND (u.n > 0 OR r.rolname = ANY(%(roles)s::text[]))) AS roles,
  (SELECT count(*) FROM act WHERE state LIKE 'idle in transaction%%')::int AS idle_count,
  (SELECT row_to_json(x) FROM (SELECT pid, app, usename, client, state_age AS age,
                                      state_change AS since, state FROM act
     WHERE state LIKE 'idle in transaction%%' AND NOT me
     ORDER BY state_age DESC NULLS LAST LIMIT 1) x) AS oldest_idle,
  (SELECT row_to_json(x) FROM (SELECT pid, app, usename, client, xact_age AS age,
                                      xact_start AS since, state FROM act
     WHERE xact_age IS NOT NULL AND NOT me ORDER BY xact_age DESC LIMIT 1) x) AS oldest_xact,
  (SELECT row_to_json(x) FROM (SELECT pid, app, usename, client, query_age AS age,
                                      coalesce(query_start, state_change) AS since, state FROM act
     WHERE state = 'active' AND NOT me ORDER BY query_age DESC NULLS LAST LIMIT 1) x)
    AS longest_query,
  (SELECT count(*) FROM blocked)::int AS blocked_count,
  (SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM (
     SELECT b.pid, b.app, b.usename, b.client, b.wait_start AS since, b.state,
            extract(epoch FROM now() - b.wait_start)::float8 AS age,
            (SELECT coalesce(json_agg(json_build_object('pid', h.pid, 'app', h.app,
                      'usename', h.usename, 'client', h.client, 'state', h.state,
                      'since', coalesce(h.xact_start, h.state_change),
                      'age', coalesce(h.xact_age, h.state_age)) ORDER BY h.pid), '[]')
               FROM act h WHERE h.pid = ANY(b.blockers)) AS blockers
     FROM blocked b ORDER BY b.wait_start ASC LIMIT 20) x) AS blocked,
  (SELECT row_to_json(db) FROM db) AS db,
  (SELECT row_to_json(wrap) FROM wrap) AS wrap,
  (SELECT coalesce(json_agg(i.indexrelid::regclass::text ORDER BY 1), '[]') FROM pg_index i
    WHERE NOT i.indisvalid AND NOT EXISTS (
      SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid))
    AS invalid_indexes,
  (SELECT coalesce(json_agg(name ORDER BY name), '[]') FROM pg_settings WHERE pending_restart)
    AS pending_restart,
  (SELECT coalesce(json_agg(json_build_object('app', application_name,
                                              'addr', host(client_addr), 'state', state,
                                              'replay_lsn', replay_lsn::text,
                                              'replay_lag', extract(epoch FROM replay_lag)::float8)),
                   '[]') FROM pg_stat_replication) AS streams
"""

REPLICA_QUERY = """
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused,
       (SELECT row_to_json(w) FROM (
          SELECT status, extract(epoch FROM now() - last_msg_receipt_time)::float8 AS silent,
                 conninfo FROM pg_stat_wal_receiver) w) AS receiver,
       (SELECT setting::float8 / 1000 FROM pg_settings WHERE name = 'wal_receiver_timeout')
         AS receiver_timeout,
       current_setting('cluster_name') AS cluster_name
"""


def _session(row: dict[str, Any] | None) -> LockHolder | None:
    """A session of the health query's JSON rows; its query text is never read (it may hold
    secrets, and no check shows it)."""
    if row is None:
        return None
    since = datetime.fromisoformat(row["since"])
    return LockHolder(int(row["pid"]), row.get("app") or "", since, row.get("usename") or "",
                      row.get("client"), state=row.get("state") or "",
                      age=float(row.get("age") or 0.0))


def read_counters(conn: psycopg.Connection[Any]) -> Counters:
    row = conn.execute(
        "SELECT xact_commit, xact_rollback, deadlocks, blks_hit, blks_read FROM pg_stat_database"
        " WHERE datname = current_database()").fetchone()
    return Counters(*(int(v) for v in row)) if row else Counters(0, 0)


def read_primary(conn: psycopg.Connection[Any], *, roles: tuple[str, ...]) -> PrimarySnapshot:
    """Everything the primary's checks need, in one query."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(PRIMARY_QUERY, {"roles": list(roles)}).fetchone()
    if row is None:  # a SELECT without FROM always returns one row
        raise RuntimeError("the health query returned no row")
    db = row["db"] or {}
    wrap = row["wrap"] or {}
    return PrimarySnapshot(
        identity=ServerIdentity(row["system_id"], row["timeline"], row["in_recovery"]),
        lsn=parse_lsn(row["lsn"]),
        max_connections=row["max_connections"],
        reserved_connections=row["reserved_connections"],
        clients=row["clients"],
        roles=tuple(RoleUse(r["role"], int(r["used"]), int(r["limit"])) for r in row["roles"]),
        idle_in_transaction=row["idle_count"],
        oldest_idle=_session(row["oldest_idle"]),
        oldest_transaction=_session(row["oldest_xact"]),
        longest_query=_session(row["longest_query"]),
        blocked=tuple(
            Blocked(s, tuple(x for x in map(_session, b["blockers"]) if x is not None))
            for b in row["blocked"] if (s := _session(b)) is not None
        ),
        blocked_count=row["blocked_count"],
        counters=Counters(int(db.get("xact_commit", 0)), int(db.get("xact_rollback", 0)),
                          int(db.get("deadlocks", 0)), int(db.get("blks_hit", 0)),
                          int(db.get("blks_read", 0))),
        xid_age=int(wrap.get("xid_age", 0)),
        xid_database=str(wrap.get("datname", "")),
        multixact_age=int(wrap.get("mxid_age", 0)),
        invalid_indexes=tuple(row["invalid_indexes"]),
        pending_restart=tuple(row["pending_restart"]),
        streams=tuple(
            Stream(s["app"] or "", s["addr"], s["state"] or "", parse_lsn(s["replay_lsn"]),
                   s["replay_lag"]) for s in row["streams"]
        ),
    )


def _conninfo_application(conninfo: str | None) -> str:
    """The application_name a WAL receiver announces (what the primary lists it under)."""
    for part in (conninfo or "").split():
        key, _, value = part.partition("=")
        if key == "application_name":
            return value.strip("'")
    return ""


def read_replica(conn: psycopg.Connection[Any]) -> ReplicaSnapshot:
    """A replica's replay position and the state of its WAL stream, in one query."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(REPLICA_QUERY).fetchone()
    if row is None:
        raise RuntimeError("the replica query returned no row")
    receiver = row["receiver"] or {}
    return ReplicaSnapshot(
        in_recovery=row["in_recovery"],
        receive_lsn=parse_lsn(row["receive_lsn"]),
        replay_lsn=parse_lsn(row["replay_lsn"]),
        replay_age=row["replay_age"],
        paused=bool(row["paused"]),
        receiver_status=receiver.get("status"),
        receiver_silent=receiver.get("silent"),
        receiver_timeout=float(row["receiver_timeout"] or 0.0),
        application=_conninfo_application(receiver.get("conninfo")) or row["cluster_name"] or "",
    )
