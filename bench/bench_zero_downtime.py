"""Write latency of an application while one migration changes a 2,000,000-row table: dbops with
zero-downtime on against the same SQL run plainly through psql; then the same with a long
transaction holding a lock on the table when the migration starts (the lock-queue scenario).

What it measures. One throwaway PostgreSQL cluster (dbops.local, server defaults, stopped and
removed at the end). A template database is loaded once: `pipelines` (P rows) and `tasks`
(id bigint PRIMARY KEY, pipeline_id, status, name, attempt, external_id, payload; R rows from
generate_series, every name set, every external_id distinct, every attempt >= 0, every
pipeline_id pointing at a pipeline), then VACUUM ANALYZE. Each scenario runs on its own fresh copy
(CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY, then CHECKPOINT), so all start from the
same bytes. The migration, the same five operations in both tools, each real work on the table:

    CREATE INDEX tasks_status_idx ON tasks (status);
    ALTER TABLE tasks ADD CONSTRAINT tasks_pipeline_id_fkey FOREIGN KEY (pipeline_id) REFERENCES pipelines (id);
    ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;
    ALTER TABLE tasks ADD CONSTRAINT tasks_external_id_key UNIQUE (external_id);
    ALTER TABLE tasks ADD CONSTRAINT tasks_attempt_check CHECK (attempt >= 0);

  psql   `psql -X -v ON_ERROR_STOP=1 -f plain.sql`, the statements between BEGIN and COMMIT
  dbops  `python -m dbops migrate up bench --yes` of one migration file with these statements
         (plan: zero_downtime on, lock_timeout 2s, retries {attempts: 20, backoff: 200ms}), which
         dbops rewrites into online steps (`migrate up --dry-run` prints them; kept in the JSON)

The load. `pgbench -n -c 4 -j 2 -T T -f write.sql -l` with write.sql = `\\set id random(1, R)` +
`UPDATE tasks SET status = 'running' WHERE id = :id;` runs for the whole scenario: W seconds of
warm-up, then the migration (its wall clock from start to exit is the migration window), then at
least 3 s more. pgbench has no clean way to be stopped early (a signal loses its summary and the
tail of its logs), so T is fixed beforehand: warm-up + a budget for the migration + 3 s; a
migration still running when pgbench would stop is killed and the run fails (raise --budget).
The per-transaction logs (client_id transaction_no time script_no time_epoch time_us; time is
the latency in microseconds, or `failed`) give each write's start and end; a write counts for the
window when it overlaps it (a write stalled by the migration that ends after it still counts).
Failed transactions come from pgbench's summary ("number of failed transactions"; the `failed`
log lines are counted too, as a cross-check); a client pgbench reports as aborted fails the run.

Lock-queue scenarios: a separate session runs `BEGIN; LOCK TABLE tasks IN ACCESS SHARE MODE;
SELECT pg_sleep(H); COMMIT` (a long reader: writers pass it, DDL does not) while pgbench writes.
  plain-lockq        psql starts L seconds (--hold-lead, 3) after the reader took its lock
  dbops-lockq        dbops, the same: the reader is older than lock_timeout when dbops looks for
                     long transactions before its first step
  dbops-lockq-young  dbops starts as the reader takes its lock: the reader is younger than
                     lock_timeout when dbops looks
Reported: the maximum write latency while the reader holds its lock and after, the migration's
duration, when its next DDL came after the release, dbops' stderr (waits, retries) and, after a
failure, its journal.

Where a stall comes from. A sampler session polls pg_stat_activity every 50 ms during each
scenario: what every migration session runs and waits on (the step timeline), which pgbench
sessions wait on a heavyweight lock and for whom (pg_blocking_pids), checkpointer and autovacuum.
Consecutive polls with a blocked writer make a stall episode ("lock wait" in the table: the
longest in the migration window), reported with the blocking statements and whom they waited for
in turn; the slowest writes of the window are matched with what the sampler saw while they ran
(no lock wait and writers idle in ClientRead: pgbench itself got no CPU). The server logs
checkpoints and lock waits over 1 s (log_checkpoints, log_lock_waits, an epoch log_line_prefix:
logging only, otherwise server defaults, max_connections 100); those lines are kept per scenario.
The machine's CPU pressure (Linux PSI, share of the time some task waited for a CPU) is recorded
per scenario: on a shared machine other load shows up as write latency the migration did not cause.

Checked after every scenario: the five objects exist and are valid (pg_index, pg_constraint, the
NOT NULL through pg_attribute), no INVALID index or helper CHECK is left on tasks, and the
migration exited 0.

The issue's targets, for dbops without the lock holder: 0 failed transactions and a maximum write
latency in the migration window under 250 ms; the lock-queue runs are judged the same way, for
information. Results: a table on stdout and bench/results/zero_downtime.json (or --output). The
exit status is 1 when a run failed or a check did not hold (a missed target is reported, not an
error).

Run from the project root (PostgreSQL server binaries, psql and pgbench needed), ~5 minutes:

    python3 bench/bench_zero_downtime.py [--rows 2000000] [--budget 30] [--hold 20]
        [--hold-lead 3] [--scenarios plain,dbops,plain-lockq,dbops-lockq,dbops-lockq-young]
        [--keep DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import bench_migrations as bm  # bench/ is on sys.path when this file runs as a script
import psycopg
from psycopg import sql

from dbops.local import HOST, SUPERUSER, Cluster, free_port
from dbops.pgbin import find_bindir

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "zero_downtime.json"
TEMPLATE_DB = "zd_template"
TARGET_MAX_LATENCY_MS = 250.0
TARGET_FAILED = 0
SAMPLE_INTERVAL = 0.05
LOCK_TIMEOUT = "2s"
RETRIES = {"attempts": 20, "backoff": "200ms"}
HOLDER_APP = "bench-lock-holder"
SAMPLER_APP = "bench-sampler"
PSQL_APP = "bench-psql"
PGBENCH_APP = "pgbench"
LOG_PREFIX = "pgbench_log"
LOG_LINE = re.compile(r"^(\d+\.\d+) \[\d+\] (.*)$")
LOG_WORDS = ("checkpoint", "still waiting", "acquired", "ERROR", "canceling", "deadlock")
SERVER_SETTINGS = {  # logging only (checkpoints and lock waits in the log, epoch timestamps);
    "max_connections": "100",  # and PostgreSQL's default, where dbops.local sets 200
    "log_line_prefix": "%n [%p] ",
    "log_checkpoints": "on",
    "log_lock_waits": "on",
}
SLOWEST = 5
EPISODES = 8

MIGRATION_SQL = """\
CREATE INDEX tasks_status_idx ON tasks (status);
ALTER TABLE tasks ADD CONSTRAINT tasks_pipeline_id_fkey FOREIGN KEY (pipeline_id) REFERENCES pipelines (id);
ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;
ALTER TABLE tasks ADD CONSTRAINT tasks_external_id_key UNIQUE (external_id);
ALTER TABLE tasks ADD CONSTRAINT tasks_attempt_check CHECK (attempt >= 0);
"""

MIGRATION_DOWN = """\
ALTER TABLE tasks DROP CONSTRAINT tasks_attempt_check;
ALTER TABLE tasks DROP CONSTRAINT tasks_external_id_key;
ALTER TABLE tasks ALTER COLUMN name DROP NOT NULL;
ALTER TABLE tasks DROP CONSTRAINT tasks_pipeline_id_fkey;
DROP INDEX tasks_status_idx;
"""

DBOPS_MIGRATION = f"""\
-- tasks: index on status, FK to pipelines, name NOT NULL, unique external_id, attempt >= 0
-- dbops:risk medium
-- dbops:zero-downtime

-- migrate:up
{MIGRATION_SQL}
-- migrate:down
{MIGRATION_DOWN}"""

DBOPS_VERSION = "20250701000000"

DBOPS_PLAN = """\
apiVersion: dbops/v1
environment: bench
database: {{ host: {host}, port: {port}, name: {name}, user: {user}, sslmode: disable }}
pool: {{ instances: 1, min_size: 1, max_size: 4 }}
migrations:
  directory: migrations
  zero_downtime: true
  lock_timeout: {lock_timeout}
  retries: {{ attempts: {attempts}, backoff: {backoff} }}
"""

LOAD_SQL = """
CREATE TABLE pipelines (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO pipelines SELECT i, 'pipeline ' || i FROM generate_series(1, {pipelines}) i;
CREATE TABLE tasks (
    id bigint PRIMARY KEY,
    pipeline_id bigint,
    status text,
    name text,
    attempt integer,
    external_id text,
    payload text
);
INSERT INTO tasks
SELECT i, 1 + i % {pipelines}, (ARRAY['queued', 'running', 'done', 'failed'])[1 + i % 4],
       'task ' || i, i % 5, md5(i::text), md5((i * 7)::text)
FROM generate_series(1, {rows}) i;
"""

WRITE_SQL = """\
\\set id random(1, {rows})
UPDATE tasks SET status = 'running' WHERE id = :id;
"""

SAMPLE_QUERY = """
SELECT extract(epoch FROM clock_timestamp())::float8, a.pid, a.backend_type,
       coalesce(a.application_name, ''), coalesce(a.state, ''), a.wait_event_type, a.wait_event,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200),
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
  AND (a.backend_type IN ('checkpointer', 'autovacuum worker')
       OR a.backend_type = 'client backend' AND a.application_name <> %s
          AND (a.datname = current_database() OR a.application_name LIKE 'dbops/%%'))
"""

# Each check returns one row: (found, detail).
SCHEMA_CHECKS: tuple[tuple[str, str], ...] = (
    ("index on status", """
        SELECT count(*) = 1, string_agg(c.relname, ', ')
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'tasks'::regclass AND i.indisvalid AND i.indisready AND NOT i.indisunique
          AND i.indkey::text = (SELECT attnum::text FROM pg_attribute
                                WHERE attrelid = 'tasks'::regclass AND attname = 'status')"""),
    ("foreign key pipeline_id -> pipelines", """
        SELECT count(*) = 1, string_agg(conname || CASE WHEN convalidated THEN '' ELSE
               ' (NOT VALID)' END, ', ')
        FROM pg_constraint
        WHERE conrelid = 'tasks'::regclass AND contype = 'f' AND convalidated
          AND confrelid = 'pipelines'::regclass"""),
    ("name NOT NULL", """
        SELECT bool_and(attnotnull), 'attnotnull=' || bool_and(attnotnull)::text
        FROM pg_attribute WHERE attrelid = 'tasks'::regclass AND attname = 'name'"""),
    ("unique external_id", """
        SELECT count(*) = 1, string_agg(c.conname, ', ')
        FROM pg_constraint c JOIN pg_index i ON i.indexrelid = c.conindid
        WHERE c.conrelid = 'tasks'::regclass AND c.contype = 'u' AND i.indisvalid
          AND c.conkey = ARRAY[(SELECT attnum FROM pg_attribute
                                WHERE attrelid = 'tasks'::regclass AND attname = 'external_id')]"""),
    ("check attempt >= 0", """
        SELECT count(*) = 1, string_agg(conname || ': ' || pg_get_constraintdef(oid), ', ')
        FROM pg_constraint
        WHERE conrelid = 'tasks'::regclass AND contype = 'c' AND convalidated
          AND pg_get_constraintdef(oid) ~ 'attempt >= 0'"""),
    ("no INVALID index, no helper CHECK left", """
        SELECT NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = 'tasks'::regclass
                           AND NOT indisvalid)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'tasks'::regclass
                           AND contype = 'c' AND pg_get_constraintdef(oid) ~ 'IS NOT NULL'),
               (SELECT string_agg(indexrelid::regclass::text, ', ') FROM pg_index
                WHERE indrelid = 'tasks'::regclass AND NOT indisvalid)"""),
)

Tool = Literal["psql", "dbops"]


class BenchFailed(Exception):
    """A scenario could not be run or measured; the message says why."""


@dataclass(frozen=True)
class Scenario:
    name: str
    tool: Tool
    lock_holder: bool
    description: str
    young_reader: bool = False  # the migration starts as the reader takes its lock (lead 0)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("plain", "psql", False, "plain SQL through psql, one transaction"),
    Scenario("dbops", "dbops", False, "dbops migrate up, zero-downtime on"),
    Scenario("plain-lockq", "psql", True, "plain SQL, a long reader holds ACCESS SHARE"),
    Scenario("dbops-lockq", "dbops", True,
             "dbops, a long reader holds ACCESS SHARE, older than lock_timeout at the start"),
    Scenario("dbops-lockq-young", "dbops", True,
             "dbops, a long reader holds ACCESS SHARE, taken as the migration starts",
             young_reader=True),
)


@dataclass(frozen=True)
class Params:
    rows: int
    pipelines: int
    clients: int
    threads: int
    warmup: float
    tail: float
    budget: float
    hold: float
    hold_lead: float


@dataclass(frozen=True)
class Txn:
    """One pgbench transaction: when it started and ended (epoch seconds), its latency in ms."""

    start: float
    end: float
    latency_ms: float
    failed: bool


@dataclass(frozen=True)
class Sample:
    """One session seen by the sampler."""

    t: float
    pid: int
    backend_type: str
    app: str
    state: str
    wait_type: str | None
    wait_event: str | None
    query: str
    blocked_by: tuple[int, ...]


@dataclass
class Run:
    """What one scenario produced, before it is summarised."""

    scenario: Scenario
    database: str
    migration_command: str
    migration_start: float = math.nan
    migration_end: float = math.nan
    migration_exit: int | None = None
    migration_killed: bool = False
    migration_stdout: str = ""
    migration_stderr: str = ""
    pgbench_start: float = math.nan
    pgbench_end: float = math.nan
    pgbench_seconds: float = 0.0
    pgbench_exit: int | None = None
    pgbench_summary: dict[str, Any] = field(default_factory=dict)
    pgbench_stderr: str = ""
    txns: list[Txn] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    hold_start: float | None = None
    hold_end: float | None = None
    hold_error: str | None = None
    dry_run: str = ""
    history_duration_ms: float | None = None
    schema: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    cpu_pressure_start: float | None = None
    cpu_pressure_end: float | None = None
    load_average_end: tuple[float, float, float] | None = None


# --------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, cluster: Cluster) -> None:
        self.port = cluster.port

    def connect(
        self, dbname: str = "postgres", app: str = "bench-zero-downtime"
    ) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True,
            application_name=app,
        )  # fmt: skip

    def scalar(self, query: str, dbname: str = "postgres") -> Any:
        with self.connect(dbname) as conn:
            row = conn.execute(query).fetchone()
        return row[0] if row else None

    def load_template(self, params: Params) -> float:
        """Create and fill the template database; returns the seconds it took."""
        started = time.perf_counter()
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
        with self.connect(TEMPLATE_DB) as conn:
            conn.execute(LOAD_SQL.format(rows=params.rows, pipelines=params.pipelines))
            conn.execute("VACUUM ANALYZE pipelines")
            conn.execute("VACUUM ANALYZE tasks")
        return time.perf_counter() - started

    def copy_template(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
                )
            )
            conn.execute("CHECKPOINT")

    def drop(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip

    def table_sizes(self) -> dict[str, str]:
        with self.connect(TEMPLATE_DB) as conn:
            row = conn.execute(
                "SELECT pg_size_pretty(pg_relation_size('tasks')),"
                " pg_size_pretty(pg_total_relation_size('tasks')), (SELECT count(*) FROM tasks)"
            ).fetchone()
        assert row is not None
        return {"tasks_heap": row[0], "tasks_total": row[1], "tasks_rows": row[2]}

    def settings(self) -> dict[str, str]:
        names = ["max_connections", "shared_buffers", "max_wal_size", "checkpoint_timeout",
                 "max_parallel_maintenance_workers", "maintenance_work_mem", "synchronous_commit",
                 "deadlock_timeout", "autovacuum"]  # fmt: skip
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT name, current_setting(name) FROM unnest(%s::text[]) name", (names,)
            ).fetchall()
        return {name: value for name, value in rows}


# --------------------------------------------------------------------------------------------
# Helpers running beside the migration: the sampler and the lock holder


class Sampler(threading.Thread):
    """Polls pg_stat_activity of one database until stopped."""

    def __init__(self, server: Server, dbname: str) -> None:
        super().__init__(daemon=True)
        self._conn = server.connect(dbname, SAMPLER_APP)
        self._stop_event = threading.Event()
        self.samples: list[Sample] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                for row in self._conn.execute(SAMPLE_QUERY, (SAMPLER_APP,)).fetchall():
                    t, pid, kind, app, state, wtype, wevent, query, blocked = row
                    self.samples.append(Sample(t, pid, kind, app, state, wtype, wevent, query,
                                               tuple(blocked or ())))
                self._stop_event.wait(SAMPLE_INTERVAL)
        except psycopg.Error as exc:
            self.error = f"sampler: {exc}"
        finally:
            self._conn.close()

    def stop(self) -> list[Sample]:
        self._stop_event.set()
        self.join(timeout=10)
        return self.samples


class LockHolder(threading.Thread):
    """BEGIN; LOCK TABLE tasks IN ACCESS SHARE MODE; SELECT pg_sleep(hold); COMMIT."""

    def __init__(self, server: Server, dbname: str, hold: float) -> None:
        super().__init__(daemon=True)
        self._conn = server.connect(dbname, HOLDER_APP)
        self._hold = hold
        self.locked = threading.Event()
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            with self._conn.transaction():
                self._conn.execute("LOCK TABLE tasks IN ACCESS SHARE MODE")
                self.start_time = time.time()
                self.locked.set()
                self._conn.execute("SELECT pg_sleep(%s)", (self._hold,))
            self.end_time = time.time()
        except psycopg.Error as exc:
            self.error = f"lock holder: {exc}"
            self.end_time = time.time()
        finally:
            self.locked.set()
            self._conn.close()


# --------------------------------------------------------------------------------------------
# pgbench


def pgbench_binary() -> str:
    candidate = find_bindir() / "pgbench"
    return str(candidate) if candidate.exists() else "pgbench"


SUMMARY_PATTERNS = {
    "transactions": re.compile(r"number of transactions actually processed: (\d+)"),
    "failed": re.compile(r"number of failed transactions: (\d+)"),
    "latency_average_ms": re.compile(r"latency average = ([\d.]+) ms"),
    "tps": re.compile(r"tps = ([\d.]+)"),
}


def parse_summary(stdout: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, pattern in SUMMARY_PATTERNS.items():
        match = pattern.search(stdout)
        if match:
            found[key] = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
    return found


def parse_logs(directory: Path, prefix: str) -> list[Txn]:
    """Every transaction of pgbench's per-transaction logs `<prefix>.<pid>[.<thread>]`."""
    txns: list[Txn] = []
    files = sorted(directory.glob(f"{prefix}.[0-9]*"))
    if not files:
        raise BenchFailed(f"pgbench wrote no transaction log {prefix}.* in {directory}")
    for path in files:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                fields = line.split()
                if len(fields) < 6:
                    continue
                end = int(fields[4]) + int(fields[5]) / 1e6
                if fields[2] == "failed":
                    txns.append(Txn(end, end, math.nan, True))
                elif fields[2] != "skipped":
                    latency = int(fields[2]) / 1000.0
                    txns.append(Txn(end - latency / 1000.0, end, latency, False))
    txns.sort(key=lambda txn: txn.start)
    return txns


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_stats(txns: Sequence[Txn], start: float, end: float) -> dict[str, Any]:
    """Transactions overlapping [start, end]: count, failures, p50/p99/max latency (ms)."""
    inside = [t for t in txns if t.start < end and t.end > start]
    latencies = sorted(t.latency_ms for t in inside if not t.failed)
    return {
        "from": start,
        "to": end,
        "seconds": round(end - start, 3),
        "transactions": len(inside),
        "failed": sum(1 for t in inside if t.failed),
        "p50_ms": rnd(percentile(latencies, 0.50)),
        "p99_ms": rnd(percentile(latencies, 0.99)),
        "max_ms": rnd(latencies[-1] if latencies else None),
        "over_250ms": sum(1 for v in latencies if v >= TARGET_MAX_LATENCY_MS),
    }


def rnd(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------------------------
# The migration, both ways


def write_psql_project(directory: Path) -> list[str]:
    script = directory / "plain.sql"
    script.write_text(f"BEGIN;\n{MIGRATION_SQL}COMMIT;\n", encoding="utf-8")
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)]


def write_dbops_project(directory: Path, port: int, dbname: str) -> list[str]:
    (directory / "plans").mkdir()
    plan = DBOPS_PLAN.format(host=HOST, port=port, name=dbname, user=SUPERUSER,
                             lock_timeout=LOCK_TIMEOUT, **RETRIES)  # fmt: skip
    (directory / "plans" / "bench.yaml").write_text(plan, encoding="utf-8")
    (directory / "migrations").mkdir()
    path = directory / "migrations" / f"{DBOPS_VERSION}_tasks_constraints.sql"
    path.write_text(DBOPS_MIGRATION, encoding="utf-8")
    bm.run(bm.Command(bm.python_tool("dbops", "migrate", "hash"), directory))
    return bm.python_tool("dbops", "migrate", "up", "bench", "--yes")


def dbops_dry_run(directory: Path) -> str:
    result = bm.run(bm.Command(bm.python_tool("dbops", "migrate", "up", "bench", "--dry-run"),
                               directory))  # fmt: skip
    return result.stdout


def connection_env(port: int, dbname: str) -> dict[str, str]:
    """libpq variables for psql and pgbench (dbops reads its plan)."""
    return {**os.environ, "PGHOST": HOST, "PGPORT": str(port), "PGUSER": SUPERUSER,
            "PGDATABASE": dbname, "PGAPPNAME": PSQL_APP}  # fmt: skip


def terminate_migration_sessions(server: Server, dbname: str) -> None:
    """After a killed migration: end its server sessions too (psql's or dbops')."""
    with server.connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND (application_name = %s OR application_name LIKE 'dbops/%%')",
            (dbname, PSQL_APP),
        )


def run_scenario(server: Server, scenario: Scenario, params: Params, workdir: Path,
                 serial: int) -> Run:  # fmt: skip
    dbname = f"zd_{serial}_{scenario.name.replace('-', '_')}"
    directory = workdir / scenario.name
    directory.mkdir()
    server.copy_template(dbname)
    env = connection_env(server.port, dbname)
    migration_env = env if scenario.tool == "psql" else dict(os.environ)
    if scenario.tool == "psql":
        argv = write_psql_project(directory)
    else:
        argv = write_dbops_project(directory, server.port, dbname)
    run = Run(scenario, dbname, bm.short(" ".join(argv)))
    if scenario.tool == "dbops":
        run.dry_run = dbops_dry_run(directory)
    budget = params.budget + (params.hold if scenario.lock_holder else 0.0)
    run.pgbench_seconds = math.ceil(params.warmup + budget + params.tail)
    (directory / "write.sql").write_text(WRITE_SQL.format(rows=params.rows), encoding="utf-8")
    pgbench_argv = [pgbench_binary(), "-n", "-c", str(params.clients), "-j", str(params.threads),
                    "-T", str(run.pgbench_seconds), "-f", "write.sql", "-l",
                    f"--log-prefix={LOG_PREFIX}", dbname]  # fmt: skip
    pgbench_env = {**env, "PGAPPNAME": PGBENCH_APP}

    sampler = Sampler(server, dbname)
    holder: LockHolder | None = None
    sampler.start()
    run.pgbench_start = time.time()
    run.cpu_pressure_start = cpu_pressure_total()
    pgbench = subprocess.Popen(pgbench_argv, cwd=directory, env=pgbench_env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        time.sleep(params.warmup)
        if pgbench.poll() is not None:
            raise BenchFailed(f"pgbench exited early with {pgbench.returncode}")
        if scenario.lock_holder:
            holder = LockHolder(server, dbname, params.hold)
            holder.start()
            holder.locked.wait(timeout=30)
            if holder.error or holder.start_time is None:
                raise BenchFailed(holder.error or "the lock holder did not get its lock")
            time.sleep(0.0 if scenario.young_reader else params.hold_lead)
        deadline = run.pgbench_start + run.pgbench_seconds - params.tail
        run.migration_start = time.time()
        migration = subprocess.Popen(argv, cwd=directory, env=migration_env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            out, err = migration.communicate(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            migration.kill()
            out, err = migration.communicate()
            run.migration_killed = True
            terminate_migration_sessions(server, dbname)
        run.migration_end = time.time()
        run.migration_exit = migration.returncode
        run.migration_stdout, run.migration_stderr = out, err
        print(f"  {scenario.name:17} migration {run.migration_end - run.migration_start:6.2f}s,"
              f" exit {migration.returncode}{' (killed: over --budget)' if run.migration_killed else ''}"
              f"; pgbench runs until {run.pgbench_seconds}s", flush=True)  # fmt: skip
        pg_out, pg_err = pgbench.communicate(timeout=run.pgbench_seconds + 120)
    finally:
        if pgbench.poll() is None:
            pgbench.kill()
            pgbench.communicate()
        run.pgbench_end = time.time()
        run.cpu_pressure_end = cpu_pressure_total()
        run.load_average_end = os.getloadavg()
        run.samples = sampler.stop()
        if holder is not None:
            holder.join(timeout=params.hold + 30)
            run.hold_start, run.hold_end, run.hold_error = (
                holder.start_time, holder.end_time, holder.error)
    run.pgbench_exit = pgbench.returncode
    run.pgbench_summary = parse_summary(pg_out)
    run.pgbench_stderr = bm.tail(pg_err)
    run.txns = parse_logs(directory, LOG_PREFIX)
    if sampler.error:
        run.errors.append(sampler.error)
    if run.hold_error:
        run.errors.append(run.hold_error)
    check_run(server, run)
    return run


def check_run(server: Server, run: Run) -> None:
    """Record what went wrong: migration exit, pgbench exit/aborts, schema, coverage."""
    if run.migration_killed:
        run.errors.append("migration still running at the end of its budget: killed")
    elif run.migration_exit != 0:
        run.errors.append(f"migration exited {run.migration_exit}: "
                          f"{bm.tail(run.migration_stderr or run.migration_stdout)}")  # fmt: skip
    if run.pgbench_exit != 0 or "aborted" in run.pgbench_stderr:
        run.errors.append(f"pgbench exited {run.pgbench_exit}: {run.pgbench_stderr}")
    if "failed" not in run.pgbench_summary:
        run.errors.append("pgbench printed no 'number of failed transactions'")
    last_end = max((t.end for t in run.txns), default=0.0)
    if last_end < run.migration_end:
        run.errors.append("pgbench stopped before the migration ended")
    with server.connect(run.database) as conn:
        for name, query in SCHEMA_CHECKS:
            try:
                row = conn.execute(query).fetchone()
            except psycopg.Error as exc:
                row = (False, str(exc).splitlines()[0])
            ok = bool(row and row[0])
            run.schema.append({"check": name, "ok": ok, "detail": row[1] if row else None})
            if not ok:
                run.errors.append(f"schema check failed: {name} ({row[1] if row else ''})")
        if run.scenario.tool == "dbops":
            try:
                row = conn.execute("SELECT duration_ms FROM dbops.migration_history"
                                   " WHERE version = %s", (DBOPS_VERSION,)).fetchone()  # fmt: skip
            except psycopg.Error:
                row = None
            run.history_duration_ms = float(row[0]) if row and row[0] is not None else None
            try:
                rows = conn.execute("SELECT step, status, statement FROM dbops.migration_journal"
                                    " WHERE version = %s ORDER BY step", (DBOPS_VERSION,)).fetchall()
            except psycopg.Error:
                rows = []
            run.journal = [{"step": step, "status": status, "statement": statement}
                           for step, status, statement in rows]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Where stalls come from: the sampler's view


def sessions_by_time(samples: Sequence[Sample]) -> list[tuple[float, list[Sample]]]:
    """Samples grouped by poll (one poll's rows share nearly the same time)."""
    polls: list[tuple[float, list[Sample]]] = []
    for sample in samples:
        if polls and sample.t - polls[-1][0] < SAMPLE_INTERVAL / 2:
            polls[-1][1].append(sample)
        else:
            polls.append((sample.t, [sample]))
    return polls


def describe(sample: Sample) -> str:
    """A session and its statement, without its momentary state (for grouping)."""
    return f"{sample.app or sample.backend_type} pid {sample.pid}: {sample.query}"


def is_migration(sample: Sample) -> bool:
    """psql's session, or dbops' (its rehearsal's pg_dump and psql included)."""
    return sample.backend_type == "client backend" and (
        sample.app in (PSQL_APP, "psql", "pg_dump") or sample.app.startswith("dbops/"))


class Blockers:
    """Who the writers waited for, counted per poll: the session and statement, its own waits,
    and whom it waited for in turn (a DDL queued behind another session)."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def add(self, rows: Sequence[Sample]) -> int:
        """Record one poll; returns how many writers waited on a heavyweight lock in it."""
        by_pid = {row.pid: row for row in rows}
        blocked = [row for row in rows if row.app == PGBENCH_APP and row.wait_type == "Lock"]
        for pid in {pid for row in blocked for pid in row.blocked_by}:
            blocker = by_pid.get(pid)
            key = describe(blocker) if blocker else f"pid {pid} (not sampled)"
            entry = self.seen.setdefault(key, {"session": key, "polls": 0, "its_waits": {},
                                               "waits_for": set()})  # fmt: skip
            entry["polls"] += 1
            if blocker is not None:
                state = f"{blocker.wait_type}:{blocker.wait_event}" if blocker.wait_type \
                    else blocker.state
                entry["its_waits"][state] = entry["its_waits"].get(state, 0) + 1
                entry["waits_for"] |= {describe(by_pid[up]) for up in blocker.blocked_by
                                       if up in by_pid and by_pid[up].app != PGBENCH_APP}
        return len(blocked)

    def report(self) -> list[dict[str, Any]]:
        rows = sorted(self.seen.values(), key=lambda e: e["polls"], reverse=True)
        return [{**e, "waits_for": sorted(e["waits_for"])} for e in rows]


def stall_episodes(samples: Sequence[Sample], origin: float) -> list[dict[str, Any]]:
    """Runs of polls in which at least one pgbench session waited on a heavyweight lock (a run
    ends at a poll without one, not at a gap between polls: the sampler can be starved too)."""
    episodes: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for t, rows in sessions_by_time(samples):
        if not any(row.app == PGBENCH_APP and row.wait_type == "Lock" for row in rows):
            current = None
            continue
        if current is None:
            current = {"_first": t, "_last": t, "max_writers_waiting": 0, "_b": Blockers()}
            episodes.append(current)
        current["_last"] = t
        waiting = current["_b"].add(rows)
        current["max_writers_waiting"] = max(current["max_writers_waiting"], waiting)
    return [
        {
            "at_s": round(e["_first"] - origin, 2),
            "seen_for_ms": round((e["_last"] - e["_first"]) * 1000 + SAMPLE_INTERVAL * 1000),
            "max_writers_waiting": e["max_writers_waiting"],
            "blockers": e["_b"].report(),
        }
        for e in episodes
    ]


def migration_timeline(samples: Sequence[Sample], origin: float) -> list[dict[str, Any]]:
    """What the migration sessions ran, statement by statement, as seen every 50 ms (a statement
    ends when a poll shows its session idle or running another one)."""
    segments: list[dict[str, Any]] = []
    open_by_pid: dict[int, dict[str, Any]] = {}
    for sample in samples:
        if not is_migration(sample):
            continue
        if sample.state != "active":
            open_by_pid.pop(sample.pid, None)
            continue
        segment = open_by_pid.get(sample.pid)
        if segment is None or segment["query"] != sample.query:
            segment = {"pid": sample.pid, "app": sample.app, "query": sample.query,
                       "_first": sample.t, "_last": sample.t, "waits": {}}  # fmt: skip
            open_by_pid[sample.pid] = segment
            segments.append(segment)
        segment["_last"] = sample.t
        if sample.wait_type:
            key = f"{sample.wait_type}:{sample.wait_event}"
            segment["waits"][key] = segment["waits"].get(key, 0) + 1
    return [
        {
            "at_s": round(s["_first"] - origin, 2),
            "seen_for_s": round(s["_last"] - s["_first"] + SAMPLE_INTERVAL, 2),
            "app": s["app"],
            "query": s["query"],
            "wait_samples": s["waits"],
        }
        for s in segments
    ]


def slowest_writes(run: Run, origin: float) -> list[dict[str, Any]]:
    """The slowest writes of the migration window and what the sampler saw while they ran: the
    sessions the writers waited for (lock waits), the writers' wait events, the migration's
    statements, a checkpoint or autovacuum at work; `polls` 0 means the sampler itself got no
    turn then (a stall of the whole machine, not a lock)."""
    inside = [t for t in run.txns if not t.failed and t.start < run.migration_end
              and t.end > run.migration_start]  # fmt: skip
    inside.sort(key=lambda t: t.latency_ms, reverse=True)
    polls = sessions_by_time(run.samples)
    found: list[dict[str, Any]] = []
    for txn in inside[:SLOWEST]:
        blockers = Blockers()
        running: set[str] = set()
        background: set[str] = set()
        waits: dict[str, int] = {}
        count = 0
        for t, rows in polls:
            if not txn.start <= t <= txn.end:
                continue
            count += 1
            blockers.add(rows)
            for row in rows:
                if row.app == PGBENCH_APP:
                    if row.wait_type:
                        key = f"{row.wait_type}:{row.wait_event}"
                        waits[key] = waits.get(key, 0) + 1
                elif is_migration(row) and row.state == "active":
                    running.add(f"{row.app}: {row.query}")
                elif row.backend_type == "autovacuum worker" or (
                        row.backend_type == "checkpointer" and row.wait_event != "CheckpointerMain"):
                    background.add(f"{row.backend_type} [{row.wait_type}:{row.wait_event}] "
                                   f"{row.query}".strip())
        found.append({
            "started_at_s": round(txn.start - origin, 3),
            "latency_ms": rnd(txn.latency_ms),
            "polls": count,
            "writers_blocked_by": blockers.report(),
            "writer_wait_samples": waits,
            "migration_running": sorted(running),
            "background": sorted(background),
        })
    return found


def cpu_pressure_total() -> float | None:
    """Microseconds some task waited for a CPU, since boot (Linux PSI; None elsewhere)."""
    try:
        text = Path("/proc/pressure/cpu").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^some .*total=(\d+)", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def cpu_stall_pct(run: Run) -> float | None:
    """Share of the scenario's wall time in which some task waited for a CPU (machine noise)."""
    if run.cpu_pressure_start is None or run.cpu_pressure_end is None:
        return None
    elapsed = (run.pgbench_end - run.pgbench_start) * 1e6
    return rnd(100 * (run.cpu_pressure_end - run.cpu_pressure_start) / elapsed, 1)


def server_log(path: Path, start: float, end: float, origin: float) -> list[str]:
    """The server log's checkpoint, lock-wait and error lines between start and end (the log
    line prefix is the epoch, `%n`), their time made relative to the migration start."""
    found: list[str] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return [f"cannot read the server log: {exc}"]
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        if not match or not start <= float(match.group(1)) <= end:
            continue
        message = match.group(2)
        if any(word in message for word in LOG_WORDS):
            found.append(f"+{float(match.group(1)) - origin:.2f}s {message}")
    return found


# --------------------------------------------------------------------------------------------
# Report


def summarise(run: Run, log_path: Path) -> dict[str, Any]:
    origin = run.migration_start
    all_txns = run.txns
    failed_in_log = sum(1 for t in all_txns if t.failed)
    episodes = stall_episodes(run.samples, origin)
    duration = run.migration_end - run.migration_start
    in_window = [e for e in episodes
                 if e["at_s"] <= duration and e["at_s"] + e["seen_for_ms"] / 1000 >= 0]
    whole = latency_stats(all_txns, run.pgbench_start, run.pgbench_end)
    window = latency_stats(all_txns, run.migration_start, run.migration_end)
    report: dict[str, Any] = {
        "scenario": run.scenario.name,
        "tool": run.scenario.tool,
        "description": run.scenario.description,
        "command": run.migration_command,
        "database": run.database,
        "migration_seconds": round(run.migration_end - run.migration_start, 3),
        "migration_exit": run.migration_exit,
        "migration_killed": run.migration_killed,
        "dbops_history_duration_ms": rnd(run.history_duration_ms),
        "pgbench": {"seconds": run.pgbench_seconds, "exit": run.pgbench_exit,
                    "summary": run.pgbench_summary, "stderr": run.pgbench_stderr},
        "failed_transactions": int(run.pgbench_summary.get("failed", failed_in_log)),
        "failed_in_log": failed_in_log,
        "window": window,
        "whole_run": whole,
        "before_migration": latency_stats(all_txns, run.pgbench_start, run.migration_start),
        "after_migration": latency_stats(all_txns, run.migration_end, run.pgbench_end),
        "lock_stall_max_ms": max((e["seen_for_ms"] for e in in_window), default=0),
        "stall_episodes": sorted(episodes, key=lambda e: e["seen_for_ms"], reverse=True)[:EPISODES],
        "stall_episode_count": len(episodes),
        "slowest_writes": slowest_writes(run, origin),
        "timeline": migration_timeline(run.samples, origin),
        "server_log": server_log(log_path, run.pgbench_start, run.pgbench_end, origin),
        "samples": len(run.samples),
        "schema": run.schema,
        "dbops_journal_after": run.journal,
        "machine_during": {
            "cpu_pressure_some_pct": cpu_stall_pct(run),
            "load_average_end": run.load_average_end,
        },
        "migration_stdout": bm.tail(run.migration_stdout),
        "migration_stderr": run.migration_stderr.strip().splitlines(),
        "errors": run.errors,
    }
    if run.dry_run:
        report["dry_run"] = run.dry_run.strip().splitlines()
    if run.scenario.lock_holder:
        start = run.hold_start or math.nan
        end = run.hold_end or math.nan
        report["lock_holder"] = {
            "held_s": rnd(end - start),
            "migration_started_after_lock_s": rnd(run.migration_start - start),
            "migration_ended_after_release_s": rnd(run.migration_end - end),
            "while_held_from_migration_start": latency_stats(
                all_txns, run.migration_start, max(end, run.migration_start)),
            "after_release_to_migration_end": latency_stats(
                all_txns, end, max(end, run.migration_end)),
            "first_ddl_after_release_s": first_ddl_after(report["timeline"], end - origin),
        }  # fmt: skip
    return report


def first_ddl_after(timeline: Sequence[dict[str, Any]], released: float) -> float | None:
    """Seconds from the reader's release to the migration's next statement on tasks."""
    for step in timeline:
        if step["at_s"] >= released and re.match(r"(CREATE|ALTER|DROP)\b", step["query"]) \
                and "tasks" in step["query"]:
            return round(float(step["at_s"]) - released, 2)
    return None


def judge(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {r["scenario"]: r for r in reports}
    targets: list[dict[str, Any]] = []
    dbops = by_name.get("dbops")
    if dbops is not None:
        failed = dbops["failed_transactions"]
        latency = dbops["window"]["max_ms"]
        targets.append({"target": "dbops: 0 failed transactions", "measured": failed,
                        "met": failed == TARGET_FAILED and not dbops["errors"]})  # fmt: skip
        targets.append({"target": f"dbops: max write latency < {TARGET_MAX_LATENCY_MS:.0f} ms",
                        "measured": latency,
                        "met": latency is not None and latency < TARGET_MAX_LATENCY_MS})  # fmt: skip
        waited = dbops["lock_stall_max_ms"]
        targets.append({"target": f"(dbops) longest writer lock wait < {TARGET_MAX_LATENCY_MS:.0f} ms",
                        "measured": waited, "informative": True,
                        "met": waited < TARGET_MAX_LATENCY_MS})  # fmt: skip
    for name in ("dbops-lockq", "dbops-lockq-young"):
        lockq = by_name.get(name)
        if lockq is None:  # not one of the issue's targets: judged the same way, for information
            continue
        latency = lockq["window"]["max_ms"]
        targets.append({"target": f"({name}) max write latency < {TARGET_MAX_LATENCY_MS:.0f} ms",
                        "measured": latency, "informative": True,
                        "met": latency is not None and latency < TARGET_MAX_LATENCY_MS})  # fmt: skip
        targets.append({"target": f"({name}) migration applied, 0 failed",
                        "measured": f"exit {lockq['migration_exit']}, "
                                    f"{lockq['failed_transactions']} failed",
                        "informative": True,
                        "met": not lockq["errors"] and lockq["failed_transactions"] == 0})  # fmt: skip
    return targets


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_report(report: dict[str, Any]) -> None:
    p = report["parameters"]
    print(f"\n{p['rows']:,}-row tasks, {p['clients']} pgbench clients updating random rows;"
          " latencies (ms) of the writes overlapping the migration window;\n"
          "failed: whole pgbench run; lock wait: longest run of 50 ms polls with a writer waiting on\n"
          "a heavyweight lock (pg_locks); before/after max: the load before and after the migration;\n"
          "cpu psi: share of the time some task waited for a CPU (other load on the machine)")
    header = (f"{'scenario':18} {'migration s':>11} {'txns':>7} {'failed':>6} {'p50':>6} "
              f"{'p99':>8} {'max':>9} {'lock wait':>9} {'before max':>10} {'after max':>9} "
              f"{'cpu psi':>7}")  # fmt: skip
    print(header)
    for r in report["scenarios"]:
        w = r["window"]
        print(f"{r['scenario']:18} {r['migration_seconds']:11.2f} {w['transactions']:7d} "
              f"{r['failed_transactions']:6d} {fmt(w['p50_ms'], '6.2f')} {fmt(w['p99_ms'], '8.2f')} "
              f"{fmt(w['max_ms'], '9.2f')} {r['lock_stall_max_ms']:9d} "
              f"{fmt(r['before_migration']['max_ms'], '10.2f')} "
              f"{fmt(r['after_migration']['max_ms'], '9.2f')} "
              f"{fmt(r['machine_during']['cpu_pressure_some_pct'], '6.1f')}%")  # fmt: skip
    for r in report["scenarios"]:
        holder = r.get("lock_holder")
        if holder:
            held = holder["while_held_from_migration_start"]
            after = holder["after_release_to_migration_end"]
            ended = holder["migration_ended_after_release_s"]
            ended_text = "?" if ended is None else (
                f"{ended:.1f}s after the release" if ended >= 0
                else f"{-ended:.1f}s before the release")
            next_ddl = holder["first_ddl_after_release_s"]
            print(f"\n{r['scenario']}: reader held ACCESS SHARE {fmt(holder['held_s'], '.1f')}s; "
                  f"migration started {fmt(holder['migration_started_after_lock_s'], '.1f')}s "
                  f"after it, ended {ended_text}; max write latency while held "
                  f"{fmt(held['max_ms'], '.1f')} ms, after {fmt(after['max_ms'], '.1f')} ms"
                  + ("" if next_ddl is None else
                     f"; the migration's next DDL on tasks came {next_ddl:.1f}s after the release"))
            if r["tool"] == "dbops" and r["migration_stderr"]:
                print("  dbops stderr:")
                for line in r["migration_stderr"]:
                    print(f"    {line}")
        if r["tool"] == "dbops":
            print(f"\n{r['scenario']}: what dbops ran (seconds from its start, as sampled):")
            for step in r["timeline"]:
                waits = ", ".join(f"{k} x{v}" for k, v in step["wait_samples"].items())
                print(f"  +{step['at_s']:6.2f}s {step['seen_for_s']:6.2f}s  {step['query'][:90]}"
                      f"{'  [' + waits + ']' if waits else ''}")
        episodes = r["stall_episodes"]
        if episodes and episodes[0]["seen_for_ms"] >= 100:
            print(f"\n{r['scenario']}: longest stall episodes (writers waiting on a lock), "
                  f"of {r['stall_episode_count']}:")  # fmt: skip
            for e in episodes[:3]:
                print(f"  +{e['at_s']:.2f}s for ~{e['seen_for_ms']} ms, "
                      f"{e['max_writers_waiting']} writers waiting, blocked by:")  # fmt: skip
                for blocker in e["blockers"][:4]:
                    waits = ", ".join(f"{k} x{v}" for k, v in blocker["its_waits"].items())
                    print(f"    {blocker['session'][:110]}  [{waits}]")
                    for upstream in blocker["waits_for"][:2]:
                        print(f"      which waits for {upstream[:100]}")
        slow = [w for w in r["slowest_writes"] if w["latency_ms"] >= TARGET_MAX_LATENCY_MS]
        if r["tool"] == "dbops" and slow:
            print(f"\n{r['scenario']}: writes over {TARGET_MAX_LATENCY_MS:.0f} ms in the window:")
            for w in slow:
                what = w["writers_blocked_by"][0]["session"][:80] if w["writers_blocked_by"] \
                    else f"no lock wait; writers waited on {w['writer_wait_samples'] or '-'}"
                print(f"  +{w['started_at_s']:.2f}s {w['latency_ms']:.0f} ms ({w['polls']} polls): "
                      f"{what}; dbops ran {[q[:60] for q in w['migration_running']] or '-'}")
        for line in r.get("server_log", []):
            if "checkpoint starting" in line or "still waiting" in line:
                print(f"  server log: {line[:120]}")
        for error in r["errors"]:
            print(f"\n{r['scenario']}: ERROR {error}")
        if r["errors"] and r["dbops_journal_after"]:
            print(f"{r['scenario']}: dbops journal afterwards: " + "; ".join(
                f"step {j['step']} {j['status']}" for j in r["dbops_journal_after"]))
    print("\ntargets:")
    for t in report["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"  {t['target']:55} {fmt(t['measured'], '')!s:>17}  {verdict}")


def versions(server: Server) -> dict[str, str]:
    found = {"postgresql": str(server.scalar("SHOW server_version")),
             "python": platform.python_version()}  # fmt: skip
    for package in ("dbops", "psycopg", "pglast"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    for tool in ("psql", pgbench_binary()):
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
        found[Path(tool).name] = out.stdout.strip()
    git = ["git", "-C", str(RESULTS_FILE.parents[2]), "describe", "--always", "--dirty"]
    commit = subprocess.run(git, capture_output=True, text=True, check=False)
    found["dbops_commit"] = commit.stdout.strip() or "unknown"
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in tasks")
    parser.add_argument("--pipelines", type=int, default=500, help="rows in pipelines")
    parser.add_argument("--clients", type=int, default=4, help="pgbench clients")
    parser.add_argument("--threads", type=int, default=2, help="pgbench threads")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before")
    parser.add_argument("--tail", type=float, default=3.0, help="seconds of load after, at least")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds a migration may take (plus --hold in the lock-queue runs); "
                             "pgbench runs warm-up + budget + tail")  # fmt: skip
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the reader holds its lock")
    parser.add_argument("--hold-lead", type=float, default=3.0,
                        help="seconds between the reader taking its lock and the migration start "
                             "(dbops-lockq-young: 0)")
    parser.add_argument("--scenarios", default=",".join(names),
                        help=f"a comma-separated subset of {','.join(names)}")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="copy the work directory (pgbench logs) here")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the JSON results file")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    if not chosen or not set(chosen) <= set(names):
        parser.error(f"--scenarios takes a comma-separated subset of {','.join(names)}")
    if args.rows < 1 or args.pipelines < 1 or args.budget <= 0 or args.hold <= 0:
        parser.error("--rows, --pipelines, --budget and --hold must be positive")
    args.scenarios = [s for s in SCENARIOS if s.name in chosen]
    return args


def run_benchmark(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    params = Params(args.rows, args.pipelines, args.clients, args.threads, args.warmup,
                    args.tail, args.budget, args.hold, args.hold_lead)  # fmt: skip
    load_before = os.getloadavg()
    started = time.perf_counter()
    cluster = Cluster(base / "data", port=free_port(), settings=SERVER_SETTINGS)
    workdir = base / "work"
    workdir.mkdir()
    reports: list[dict[str, Any]] = []
    try:
        cluster.up()
        server = Server(cluster)
        print(f"PostgreSQL {server.scalar('SHOW server_version')} on {HOST}:{server.port}; "
              f"loading {params.rows:,} tasks", flush=True)  # fmt: skip
        load_seconds = server.load_template(params)
        sizes = server.table_sizes()
        print(f"  loaded in {load_seconds:.1f}s: tasks {sizes['tasks_heap']} "
              f"({sizes['tasks_total']} with its primary key)", flush=True)  # fmt: skip
        for serial, scenario in enumerate(args.scenarios, start=1):
            run = run_scenario(server, scenario, params, workdir, serial)
            reports.append(summarise(run, cluster.log_file))
            server.drop(run.database)
        report = {
            "benchmark": "zero_downtime",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": {
                **vars(params), "lock_timeout": LOCK_TIMEOUT, "retries": RETRIES,
                "sample_interval_s": SAMPLE_INTERVAL, "server_settings_set": SERVER_SETTINGS,
                "migration_sql": MIGRATION_SQL.splitlines(),
                "write_sql": WRITE_SQL.format(rows=params.rows).splitlines(),
                "template_load_seconds": round(load_seconds, 2), **sizes,
            },
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "total_seconds": round(time.perf_counter() - started, 1),
            },
            "server_settings": server.settings(),
            "versions": versions(server),
            "scenarios": reports,
            "targets": judge(reports),
        }
        return report
    finally:
        if args.keep is not None:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
            if cluster.log_file.exists():
                shutil.copy(cluster.log_file, args.keep / "server.log")
        cluster.down()


def write_results(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dbops-bench-zd-"))
    base.chmod(0o755)  # the server runs as another OS user and must reach its data directory
    bm.prepare_environment(base / "pycache")
    try:
        report = run_benchmark(args, base)
    except (BenchFailed, bm.ToolFailed) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        detail = getattr(exc, "detail", "")
        if detail:
            print("  " + detail.replace("\n", "\n  "), file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_report(report)
    write_results(report, args.output)
    print(f"\nresults written to {args.output}")
    failed = [r["scenario"] for r in report["scenarios"] if r["errors"]]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
