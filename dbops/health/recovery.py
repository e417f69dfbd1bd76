"""Guarded automatic recovery: the plan's opt-in actions, each with a dry run and an audit line.

- terminate sessions idle in a transaction longer than N, only of the roles the policy names;
- cancel the running query of a session that has blocked others longer than N (the head of a
  lock chain: a cancel does nothing to a session idle in a transaction, which the first action is
  for);
- ask the attached pool to reset its connections when the primary changed (another server or a
  new timeline: a failover).

Never touches superuser or replication sessions, sessions of other databases, or its own. The
conditions are checked again in the statement that acts, so a session that moved on since the
check is left alone. Every step, done or only planned, is one audit line on the
`dbops.health.recovery` logger.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import psycopg

from dbops import audit
from dbops.config.model import Plan, RecoveryAction
from dbops.config.units import format_duration
from dbops.connect import mask
from dbops.errors import DbopsError
from dbops.health.checks import Checker
from dbops.health.pool_checks import AttachedPool
from dbops.health.probe import ServerIdentity
from dbops.health.result import HealthReport, seconds

AUDIT = logging.getLogger("dbops.health.recovery")

Action = Literal["terminate_idle_in_transaction", "cancel_blocking_query", "reset_pool"]

_GUARD = """
  a.backend_type = 'client backend' AND a.datname = current_database()
  AND a.pid <> pg_backend_pid() AND r.rolname = ANY(%(roles)s::text[])
  AND NOT r.rolsuper AND NOT r.rolreplication"""

TERMINATE_IDLE = f"""
SELECT a.pid, r.rolname::text, coalesce(a.application_name, ''),
       extract(epoch FROM now() - a.state_change)::float8,
       CASE WHEN %(act)s THEN pg_terminate_backend(a.pid) ELSE false END
FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND a.state_change < now() - %(after)s AND {_GUARD}
ORDER BY a.state_change"""

# Heads of lock chains only: cancelling a session that itself waits would abort work that is a
# victim, not the cause.
CANCEL_BLOCKING = f"""
WITH waiting AS (
  SELECT w.pid, pg_blocking_pids(w.pid) AS blockers,
         coalesce((SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = w.pid AND NOT l.granted),
                  w.state_change) AS since
  FROM pg_stat_activity w WHERE w.wait_event_type = 'Lock'
), culprits AS (
  SELECT b AS pid, min(since) AS since, count(*) AS victims
  FROM waiting, unnest(blockers) AS b WHERE since < now() - %(after)s GROUP BY b
)
SELECT a.pid, r.rolname::text, coalesce(a.application_name, ''),
       extract(epoch FROM now() - c.since)::float8, c.victims::int, coalesce(a.state, ''),
       CASE WHEN %(act)s AND a.state = 'active' THEN pg_cancel_backend(a.pid) ELSE false END
FROM culprits c JOIN pg_stat_activity a ON a.pid = c.pid JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.wait_event_type IS DISTINCT FROM 'Lock' AND {_GUARD}
ORDER BY c.since"""


@dataclass(frozen=True)
class RecoveryStep:
    """One audited step: what was (or, in a dry run, would have been) done, and to whom."""

    action: Action
    dry_run: bool
    done: bool
    line: str
    pid: int | None = None
    role: str | None = None


def failover(before: ServerIdentity | None, after: ServerIdentity | None) -> bool:
    """The primary's address now reaches another server, or the same one on a new timeline."""
    if before is None or after is None or before.in_recovery or after.in_recovery:
        return False
    return (before.system_id, before.timeline) != (after.system_id, after.timeline)


class Recoverer:
    """Applies the plan's recovery policy after a check cycle."""

    def __init__(self, plan: Plan, *, pool: AttachedPool | None = None) -> None:
        self.plan = plan
        self.policy = plan.health.recovery
        self.pool = pool

    @property
    def active(self) -> bool:
        p = self.policy
        return p.enabled and any((p.terminate_idle_in_transaction, p.cancel_blocking_queries,
                                  p.reset_pool_after_failover))

    def run(self, report: HealthReport, checker: Checker, *,
            previous: ServerIdentity | None = None) -> list[RecoveryStep]:
        """The steps the policy calls for after `report`; acts unless the action is a dry run.
        Statements run only when the report shows something past an action's limit."""
        if not self.active:
            return []
        steps: list[RecoveryStep] = []
        p = self.policy
        if p.terminate_idle_in_transaction and _past(report, "idle_in_transaction",
                                                     p.terminate_idle_in_transaction):
            steps += self._sessions(checker, p.terminate_idle_in_transaction, terminate=True)
        if p.cancel_blocking_queries and _past(report, "blocked_sessions",
                                               p.cancel_blocking_queries):
            steps += self._sessions(checker, p.cancel_blocking_queries, terminate=False)
        if p.reset_pool_after_failover and failover(previous, report.identity):
            steps.append(self._reset_pool(p.reset_pool_after_failover, previous, report.identity))
        for step in steps:
            AUDIT.warning(step.line)
        acted = [step.line for step in steps if step.done and not step.dry_run]
        if acted:
            audit.record(self.plan, "health recovery", "; ".join(acted))
        return steps

    def _sessions(self, checker: Checker, action: RecoveryAction, *,
                  terminate: bool) -> list[RecoveryStep]:
        name: Action = "terminate_idle_in_transaction" if terminate else "cancel_blocking_query"
        if not action.roles:
            return [RecoveryStep(name, action.dry_run, False,
                                 f"recovery: {name} names no roles (policy roles, or the plan's "
                                 "roles section): nothing is touched")]
        after = action.after or timedelta(0)
        params = {"act": not action.dry_run, "after": after, "roles": list(action.roles)}
        try:
            rows = checker.on_primary(
                lambda conn: conn.execute(TERMINATE_IDLE if terminate else CANCEL_BLOCKING,
                                          params).fetchall())
        except (psycopg.Error, DbopsError) as exc:  # a failed step is audited; monitoring goes on
            return [RecoveryStep(name, action.dry_run, False,
                                 f"recovery: {name} failed: {mask(str(exc).splitlines()[0])}")]
        policy = f"policy: after {format_duration(after)}"
        return [self._session_step(name, action.dry_run, row, policy) for row in rows]

    @staticmethod
    def _session_step(name: Action, dry_run: bool, row: tuple[Any, ...],
                      policy: str) -> RecoveryStep:
        pid, role, app, age = int(row[0]), str(row[1]), str(row[2] or "no application_name"), row[3]
        who = f"pid {pid} ({app}, role {role})"
        if name == "terminate_idle_in_transaction":
            done, why = bool(row[4]), f"idle in a transaction for {seconds(age or 0)}"
            verb = "would terminate" if dry_run else ("terminated" if done else "could not terminate")
        else:
            victims, state, done = int(row[4]), str(row[5]), bool(row[6])
            why = f"it has blocked {victims} session(s) for {seconds(age or 0)}"
            if state != "active":
                return RecoveryStep(name, dry_run, False,
                                    f"recovery: left {who} alone: {why}, but it is {state or 'not running a query'} "
                                    "and a cancel does nothing there (terminate_idle_in_transaction "
                                    f"handles idle transactions; {policy})", pid, role)
            verb = ("would cancel the query of" if dry_run
                    else "cancelled the query of" if done else "could not cancel the query of")
        prefix = "recovery (dry run)" if dry_run else "recovery"
        return RecoveryStep(name, dry_run, done, f"{prefix}: {verb} {who}: {why} ({policy})",
                            pid, role)

    def _reset_pool(self, action: RecoveryAction, before: ServerIdentity | None,
                    after: ServerIdentity | None) -> RecoveryStep:
        change = (f"system {before.system_id if before else '?'} timeline "
                  f"{before.timeline if before else '?'} -> system "
                  f"{after.system_id if after else '?'} timeline {after.timeline if after else '?'}")
        if self.pool is None:
            return RecoveryStep("reset_pool", action.dry_run, False,
                                f"recovery: the primary changed ({change}); no pool is attached "
                                "to reset")
        if action.dry_run:
            return RecoveryStep("reset_pool", True, False,
                                f"recovery (dry run): would reset the pool: the primary changed "
                                f"({change})")
        try:
            outcome = self.pool.reset()
            if inspect.isawaitable(outcome):  # an asyncio pool: reset on its own event loop
                _run_on_loop(getattr(self.pool, "loop", None), outcome)
        except Exception as exc:  # a foreign object: its failure is audited, monitoring goes on
            return RecoveryStep("reset_pool", False, False,
                                f"recovery: the primary changed ({change}); resetting the pool "
                                f"failed: {mask(str(exc))}")
        return RecoveryStep("reset_pool", False, True,
                            f"recovery: reset the pool: the primary changed ({change})")


def _run_on_loop(loop: asyncio.AbstractEventLoop | None, work: Awaitable[Any],
                 timeout: float = 60.0) -> None:
    """Run an asyncio pool's reset on the loop the pool lives in, from the monitor's thread
    (waiting for it), or schedule it when the monitor runs on that very loop."""
    if loop is None or loop.is_closed() or not inspect.iscoroutine(work):
        if inspect.iscoroutine(work):
            work.close()
        raise DbopsError("the asyncio pool has no running event loop (open it first)")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(work)
        return
    asyncio.run_coroutine_threadsafe(work, loop).result(timeout)


def _past(report: HealthReport, check: str, action: RecoveryAction) -> bool:
    result = report.result(check)
    limit = (action.after or timedelta(0)).total_seconds()
    return result is not None and result.value is not None and result.value > limit
