"""Judging the primary: a PrimarySnapshot and the plan's thresholds in, CheckResults out. Pure.

Thresholds the plan does not carry are constants here, each with the reason for its level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from dbops.config.model import Thresholds
from dbops.health.probe import Blocked, Counters, PrimarySnapshot
from dbops.health.result import CheckResult, Detail
from dbops.levels import Status, status_of
from dbops.locks import LockHolder
from dbops.units import format_duration

XID_LIMIT = 2**31
"""Transaction IDs a database can consume before wraparound stops writes."""
XID_SHARE_THRESHOLD = 0.5
"""Critical at half the limit (warning at 40 %): autovacuum should keep it near 10 %, so half
means freezing has been failing for a long time, with margin left to act."""
CACHE_HIT_WARNING = 0.9
"""A cache hit ratio below 90 % warns (never critical: slow reads are not an outage)."""
MIN_BLOCKS = 1000
MIN_TRANSACTIONS = 20
"""Fewer block reads or transactions than these in a window are too few to judge a ratio."""


@dataclass(frozen=True)
class Window:
    """The counters' increase over the window a ratio is judged on, and how to name it."""

    counters: Counters
    label: str
    cumulative: bool
    totals: Counters


def _who(session: LockHolder) -> str:
    return f"pid {session.pid} ({session.application}, {session.user})"


def _share(value: float) -> str:
    return f"{value:.0%}"


def evaluate_primary(snap: PrimarySnapshot, t: Thresholds, window: Window) -> list[CheckResult]:
    """Every check of the primary, in a stable order."""
    return [
        writable(snap),
        connection_utilization(snap, t.connection_utilization),
        *role_connections(snap, t.connection_utilization),
        idle_in_transaction(snap, t.idle_in_transaction),
        long_transaction(snap, t.long_transaction),
        long_query(snap, t.slow_query),
        blocked_sessions(snap, t.slow_query),
        deadlocks(window),
        error_rate(window, t.error_rate),
        xid_wraparound(snap),
        cache_hit_ratio(window),
        invalid_indexes(snap),
        pending_restart(snap),
    ]


def writable(snap: PrimarySnapshot) -> CheckResult:
    if snap.identity.in_recovery:
        return CheckResult("writable", 0, None, "critical",
                           "the primary's address answers in recovery, read-only: it reaches a "
                           "replica, or a failover is under way",
                           {"in_recovery": True})
    return CheckResult("writable", 1, None, "ok",
                       f"accepts writes (timeline {snap.identity.timeline})",
                       {"in_recovery": False, "timeline": snap.identity.timeline})


def connection_utilization(snap: PrimarySnapshot, threshold: float) -> CheckResult:
    used, limit = snap.clients, max(snap.max_connections, 1)
    share = used / limit
    return CheckResult(
        "connection_utilization", share, threshold, status_of(share, threshold),
        f"{used} of {limit} connections in use ({_share(share)}, threshold {_share(threshold)}; "
        f"{snap.reserved_connections} more reserved for superusers)",
        {"connections": used, "max_connections": limit,
         "reserved_connections": snap.reserved_connections})


def role_connections(snap: PrimarySnapshot, threshold: float) -> list[CheckResult]:
    """Each role with a connection limit that is named in the plan or has sessions."""
    results = []
    for use in snap.roles:
        share = use.used / use.limit if use.limit else (0.0 if use.used == 0 else 1.0)
        results.append(CheckResult(
            f"role_connections.{use.role}", share, threshold, status_of(share, threshold),
            f"{use.role} has {use.used} of its {use.limit} connections in use "
            f"({_share(share)}, threshold {_share(threshold)})",
            {"connections": use.used, "connection_limit": use.limit}))
    return results


def idle_in_transaction(snap: PrimarySnapshot, threshold: timedelta) -> CheckResult:
    return _oldest_session(
        "idle_in_transaction", snap.oldest_idle, threshold, "no session is idle in a transaction",
        lambda s: f"{snap.idle_in_transaction} session(s) idle in a transaction; oldest: "
                  f"{_who(s)} for",
        lambda s: {"sessions": snap.idle_in_transaction, "pid": s.pid, "role": s.user},
        none_details={"sessions": 0})


def long_transaction(snap: PrimarySnapshot, threshold: timedelta) -> CheckResult:
    return _oldest_session(
        "long_transaction", snap.oldest_transaction, threshold, "no open transactions",
        lambda s: f"oldest transaction: {s.describe()} open for",
        lambda s: {"pid": s.pid, "state": s.state})


def long_query(snap: PrimarySnapshot, threshold: timedelta) -> CheckResult:
    return _oldest_session(
        "long_query", snap.longest_query, threshold, "no query is running",
        lambda s: f"longest query: {_who(s)} running for", lambda s: {"pid": s.pid})


def _oldest_session(
    name: str, session: LockHolder | None, threshold: timedelta, none: str,
    said: Callable[[LockHolder], str], details: Callable[[LockHolder], Mapping[str, Detail]],
    *, none_details: Mapping[str, Detail] | None = None,
) -> CheckResult:
    """The one rule of the session-age checks: the session that has been longest in the state
    the check watches, judged by its age against `threshold` (`none`, `none_details`: there is
    no such session; `said`: who it is and what it does, before its age)."""
    limit = threshold.total_seconds()
    if session is None:
        return CheckResult(name, 0.0, limit, "ok", none, none_details or {})
    return CheckResult(
        name, session.age, limit, status_of(session.age, limit),
        f"{said(session)} {format_duration(session.age)} "
        f"(threshold {format_duration(threshold)})", details(session))


def _chain_heads(blocked: tuple[Blocked, ...]) -> list[LockHolder]:
    """Blockers that wait on nobody: ending them would release the whole chain."""
    waiting = {b.session.pid for b in blocked}
    heads: dict[int, LockHolder] = {}
    for b in blocked:
        for blocker in b.blockers:
            if blocker.pid not in waiting:
                heads.setdefault(blocker.pid, blocker)
    return list(heads.values())


def blocked_sessions(snap: PrimarySnapshot, threshold: timedelta) -> CheckResult:
    limit = threshold.total_seconds()
    if not snap.blocked:
        return CheckResult("blocked_sessions", 0.0, limit, "ok", "no session waits on a lock",
                           {"sessions": 0})
    longest = snap.blocked[0]
    by = ", ".join(f"{b.describe()}, {b.state or 'gone'}" for b in longest.blockers) or "?"
    heads = _chain_heads(snap.blocked)
    head_text = ""
    if heads and [h.pid for h in heads] != [b.pid for b in longest.blockers]:
        head_text = "; head of the chain: " + ", ".join(
            f"{h.describe()}, {h.state}" for h in heads)
    return CheckResult(
        "blocked_sessions", longest.session.age, limit, status_of(longest.session.age, limit),
        f"{snap.blocked_count} session(s) waiting on locks; longest: {longest.session.describe()} "
        f"waiting {format_duration(longest.session.age)} on {by}{head_text} "
        f"(threshold {format_duration(threshold)})",
        {"sessions": snap.blocked_count, "pid": longest.session.pid,
         "blocking_pids": ",".join(str(b.pid) for b in longest.blockers),
         "chain_heads": ",".join(str(h.pid) for h in heads)})


def deadlocks(window: Window) -> CheckResult:
    count = window.counters.deadlocks
    total = {"deadlocks_total": window.totals.deadlocks}
    if window.cumulative:
        return CheckResult("deadlocks", None, 0, "ok",
                           f"{count} deadlock(s) {window.label} (no earlier check to compare "
                           "with)", total)
    status: Status = "warning" if count else "ok"
    return CheckResult("deadlocks", count, 0, status,
                       f"{count} deadlock(s) {window.label}" if count
                       else f"no deadlocks {window.label}", total)


def error_rate(window: Window, threshold: float) -> CheckResult:
    commits, rollbacks = window.counters.commits, window.counters.rollbacks
    total = commits + rollbacks
    rate = rollbacks / total if total else 0.0
    if total < MIN_TRANSACTIONS:
        return CheckResult("error_rate", rate, threshold, "ok",
                           f"{rollbacks} of {total} transactions rolled back {window.label}: too "
                           f"few to judge (fewer than {MIN_TRANSACTIONS})",
                           {"transactions": total, "rollbacks": rollbacks})
    return CheckResult("error_rate", rate, threshold, status_of(rate, threshold),
                       f"{rollbacks} of {total} transactions rolled back {window.label} "
                       f"({rate:.1%}, threshold {_share(threshold)})",
                       {"transactions": total, "rollbacks": rollbacks})


def xid_wraparound(snap: PrimarySnapshot) -> CheckResult:
    xid, mxid = snap.xid_age / XID_LIMIT, snap.multixact_age / XID_LIMIT
    share = max(xid, mxid)
    what = "transaction-ID" if xid >= mxid else "multixact-ID"
    age = snap.xid_age if xid >= mxid else snap.multixact_age
    return CheckResult(
        "xid_wraparound", share, XID_SHARE_THRESHOLD, status_of(share, XID_SHARE_THRESHOLD),
        f"{what} age {age:,} in {snap.xid_database or 'the cluster'} is {share:.1%} of the "
        f"wraparound limit (threshold {_share(XID_SHARE_THRESHOLD)})",
        {"xid_age": snap.xid_age, "multixact_age": snap.multixact_age})


def cache_hit_ratio(window: Window) -> CheckResult:
    hit, read = window.counters.blocks_hit, window.counters.blocks_read
    total = hit + read
    if total < MIN_BLOCKS:
        return CheckResult("cache_hit_ratio", None, CACHE_HIT_WARNING, "ok",
                           f"{total} block reads {window.label}: too few to judge "
                           f"(fewer than {MIN_BLOCKS})")
    ratio = hit / total
    status: Status = "warning" if ratio < CACHE_HIT_WARNING else "ok"
    return CheckResult("cache_hit_ratio", ratio, CACHE_HIT_WARNING, status,
                       f"{ratio:.1%} of {total:,} block reads {window.label} came from shared "
                       f"buffers (warning below {_share(CACHE_HIT_WARNING)})")


def invalid_indexes(snap: PrimarySnapshot) -> CheckResult:
    names = snap.invalid_indexes
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return _warn_on_any("invalid_indexes", names, "no INVALID indexes",
                        f"{len(names)} INVALID index(es), left by a failed concurrent build: "
                        f"{shown} (drop and rebuild them)")


def pending_restart(snap: PrimarySnapshot) -> CheckResult:
    names = snap.pending_restart
    return _warn_on_any("pending_restart", names, "no settings wait for a restart",
                        f"{len(names)} setting(s) changed but waiting for a restart: "
                        f"{', '.join(names)}")


def _warn_on_any(name: str, names: tuple[str, ...], none: str, found: str) -> CheckResult:
    """The one rule of the checks that list objects: ok when there are none (`none` says so),
    a warning counting them otherwise (`found` names them); never critical."""
    if not names:
        return CheckResult(name, 0, 0, "ok", none)
    return CheckResult(name, len(names), 0, "warning", found)
