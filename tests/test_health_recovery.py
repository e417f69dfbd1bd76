"""Guarded recovery: a dry run changes nothing; enabled, it acts only on the sessions its policy
names, never on superuser or replication sessions, and writes an audit line for every step."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import psycopg
import pytest
from harness import Project, TestDatabase
from psycopg import sql

from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.health.checks import Checker
from dbops.health.monitor import HealthMonitor
from dbops.health.probe import ServerIdentity
from dbops.health.recovery import Recoverer
from dbops.health.result import HealthReport
from dbops.local import Cluster

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def make_role(pg_primary: Cluster) -> Iterator[Callable[..., str]]:
    made: list[str] = []
    admin = TestDatabase(pg_primary.host, pg_primary.port, "postgres")

    def make(suffix: str, *, replication: bool = False) -> str:
        name = f"app_r{uuid.uuid4().hex[:6]}_{suffix}"
        with admin.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(
                sql.Identifier(name), sql.SQL("REPLICATION" if replication else "")))
        made.append(name)
        return name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE usename = %s", (name,))
            deadline = time.monotonic() + 10
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                               (name,)).fetchone() != (0,) and time.monotonic() < deadline:
                time.sleep(0.05)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def idle_session(db: TestDatabase, user: str, application: str) -> Conn:
    conn = psycopg.connect(host=db.host, port=db.port, dbname=db.name, user=user,
                           application_name=application)
    conn.execute("SELECT 1")  # leaves the transaction open, idle
    return conn


def alive(conn: Conn) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def recovery_plan(project: Project, policy: str, *, roles: tuple[str, ...] = ()) -> Plan:
    listed = "".join(f"  {r}: {{ connection_limit: 10 }}\n" for r in roles)
    project.write_plan((f"roles:\n{listed}" if listed else "")
                       + f"health:\n  recovery:\n{policy}")
    return load_plan("test", root=project.root, environ={})


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "enabled"])
def test_terminating_idle_transactions_touches_only_the_roles_the_policy_names(
    project: Project, make_role: Callable[..., str], caplog: pytest.LogCaptureFixture,
    dry_run: bool,
) -> None:
    named, other = make_role("named"), make_role("other")
    replicator = make_role("repl", replication=True)
    plan = recovery_plan(project, (
        f"    enabled: true\n    dry_run: {str(dry_run).lower()}\n"
        f"    terminate_idle_in_transaction: {{ after: 200ms, roles: [{named}, {replicator}] }}\n"
    ), roles=(named,))
    db = project.database
    sessions = {
        "named": idle_session(db, named, "worker"),
        "other": idle_session(db, other, "reporting"),
        "replication role": idle_session(db, replicator, "replicator"),
        "superuser": idle_session(db, "postgres", "dba"),
    }
    target = sessions["named"].info.backend_pid
    time.sleep(0.3)
    caplog.set_level(logging.INFO, logger="dbops.health.recovery")
    try:
        with HealthMonitor(plan, persist=False, alerts=False) as monitor:
            report = monitor.force_health_check()
        survivors = {name: alive(conn) for name, conn in sessions.items()}
    finally:
        for conn in sessions.values():
            conn.close()
    assert len(report.actions) == 1
    line = report.actions[0]
    if dry_run:
        assert line.startswith(f"recovery (dry run): would terminate pid {target} (worker, role "
                               f"{named}): idle in a transaction for ")
        assert all(survivors.values())
    else:
        assert line.startswith(f"recovery: terminated pid {target} (worker, role {named}): idle "
                               "in a transaction for ")
        assert survivors == {"named": False, "other": True, "replication role": True,
                             "superuser": True}
    assert line.endswith("(policy: after 200ms)")
    assert line in caplog.text  # the log line
    with db.connect() as conn:  # and the audit log's record, of what was really done
        exists = conn.execute("SELECT to_regclass('dbops.apply_audit')").fetchone() != (None,)
        audited = conn.execute("SELECT action, result, reason FROM dbops.apply_audit"
                               ).fetchall() if exists else []
    assert audited == ([] if dry_run else [("health recovery", "done", line)])


def test_cancelling_the_query_at_the_head_of_a_lock_chain(
    project: Project, make_role: Callable[..., str]
) -> None:
    owner = make_role("batch")
    plan = recovery_plan(project, (
        f"    enabled: true\n    cancel_blocking_queries: {{ after: 300ms, roles: [{owner}] }}\n"
    ), roles=(owner,))
    db = project.database
    with db.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE queue (id int); INSERT INTO queue VALUES (1);"
                             " GRANT ALL ON queue TO {}").format(sql.Identifier(owner)))
    outcome: dict[str, object] = {}

    def hold_rows() -> None:
        with psycopg.connect(host=db.host, port=db.port, dbname=db.name, user=owner,
                             application_name="batch", autocommit=True) as conn:
            outcome["pid"] = conn.info.backend_pid
            try:
                conn.execute("SELECT pg_sleep(10) FROM (SELECT * FROM queue FOR UPDATE) locked")
            except psycopg.errors.QueryCanceled as exc:
                outcome["cancelled"] = exc.sqlstate

    def wait_for_rows() -> None:
        with psycopg.connect(db.conninfo, application_name="api", autocommit=True) as conn:
            conn.execute("UPDATE queue SET id = 2")
            outcome["updated"] = True

    holder, waiter = threading.Thread(target=hold_rows), threading.Thread(target=wait_for_rows)
    holder.start()
    time.sleep(0.2)
    waiter.start()
    time.sleep(0.5)
    try:
        with HealthMonitor(plan, persist=False, alerts=False) as monitor:
            report = monitor.force_health_check()
    finally:
        holder.join(15)
        waiter.join(15)
        with db.connect() as conn:
            conn.execute("DROP TABLE queue")
    assert outcome.get("cancelled") == "57014" and outcome.get("updated") is True
    assert len(report.actions) == 1
    assert report.actions[0].startswith(
        f"recovery: cancelled the query of pid {outcome['pid']} (batch, role {owner}): it has "
        "blocked 1 session(s) for ")


def test_recovery_off_or_past_nothing_runs_no_statement(project: Project) -> None:
    plan = recovery_plan(project, (
        "    enabled: false\n    terminate_idle_in_transaction: { after: 1ms }\n"))
    checker = Checker(plan)
    try:
        report = checker.run()
        assert Recoverer(plan).run(report, checker) == []
    finally:
        checker.close()


class Pool:
    def __init__(self) -> None:
        self.resets = 0

    def get_pool_stats(self) -> Mapping[str, float]:
        return {}

    def reset(self) -> None:
        self.resets += 1


def test_pool_reset_after_failover_in_dry_run_only_audits(project: Project) -> None:
    plan = recovery_plan(project, (
        "    enabled: true\n    reset_pool_after_failover: { enabled: true, dry_run: true }\n"))
    pool = Pool()
    before = ServerIdentity("7001", 1, False)
    after = HealthReport("test", datetime.now(UTC), 0.0, 2, (),
                         identity=ServerIdentity("7001", 2, False))
    checker = Checker(plan)
    steps = Recoverer(plan, pool=pool).run(after, checker, previous=before)
    assert [s.line for s in steps] == [
        "recovery (dry run): would reset the pool: the primary changed (system 7001 timeline 1 "
        "-> system 7001 timeline 2)"]
    assert pool.resets == 0
    same = Recoverer(plan, pool=pool).run(after, checker, previous=after.identity)
    assert same == []
