"""Expand/contract under write load: one migration renaming a column and changing its type
(tasks.title text -> headline varchar(300), up `left(title, 300)`, down `headline`) on a table of
R rows, while "old" clients write `title` through `public` and "new" clients write `headline`
through the version schema; side by side, the same change done the naive way (ALTER TABLE RENAME
+ ALTER TYPE in one transaction) under the same old-client load.

What it measures. One throwaway PostgreSQL cluster (dbops.local, server defaults, stopped and
removed at the end), a fresh database per scenario loaded with generate_series. Clients are
threads, each on its own autocommit connection, writing as fast as the server answers with a
short pause (--think, 5 ms): an UPDATE of a random row's title (old) or headline (new), one write
in ten an INSERT. Every write's start, latency and error are kept.

  expand/contract  `python -m dbops migrate up bench --yes` (backfill batch --batch rows) with
                   the old clients writing; the new clients start as soon as the version schema
                   exists; both write for --both seconds; every row is checked (headline =
                   left(title, 300), through the view and the table); the old clients stop (they
                   were retired) and `dbops migrate complete bench --yes` runs with the new ones
                   writing; the rows are checked again through the version schema.
  naive            `BEGIN; ALTER TABLE tasks RENAME title TO headline; ALTER TABLE tasks ALTER
                   headline TYPE varchar(300) USING left(headline, 300); COMMIT` with the old
                   clients writing: the stall is its lock, and every old write after it fails.

Reported per phase: writes, failed writes, maximum and p99 write latency. The issue's targets for
expand and complete: 0 failed client transactions, maximum write latency under 250 ms, rows that
agree after every step. Results: a table on stdout and bench/results/expand_contract.json.

Run from the project root (PostgreSQL server binaries needed):

    python3 bench/bench_expand_contract.py [--rows 2000000] [--old 2] [--new 2] [--batch 1000] [--pause 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dbops.local import HOST, SUPERUSER, Cluster, free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPO / "bench" / "results" / "expand_contract.json"
VERSION = "20300102000000"
VERSION_SCHEMA = f"public_{VERSION}"
TARGET_MS = 250.0

PLAN = """\
apiVersion: dbops/v1
environment: bench
database: {{ host: {host}, port: {port}, name: {name}, user: {user}, sslmode: disable }}
pool: {{ instances: 1, min_size: 1, max_size: 4 }}
migrations:
  directory: migrations
  zero_downtime: true
  lock_timeout: 2s
  rehearse: never
  retries: {{ attempts: 20, backoff: 200ms }}
"""

CREATE = """\
-- migrate:up
CREATE TABLE tasks (id bigserial PRIMARY KEY, title text NOT NULL, status text NOT NULL,
                    payload text);
"""

MIGRATION = """\
operations:
  - alter_column:
      table: tasks
      column: title
      name: headline
      type: varchar(300)
      up: "left(title, 300)"
      down: "headline"
backfill:
  batch_size: {batch}
  pause: {pause}ms
"""

NAIVE = ("BEGIN; ALTER TABLE tasks RENAME title TO headline; ALTER TABLE tasks ALTER headline "
         "TYPE varchar(300) USING left(headline, 300); COMMIT")


@dataclass
class Write:
    started: float
    seconds: float
    error: str = ""


@dataclass
class Client:
    """One writing client on its own connection: old (public, title) or new (version schema,
    headline)."""

    conninfo: str
    kind: str
    rows: int
    think: float
    writes: list[Write] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        column = "title" if self.kind == "old" else "headline"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            if self.kind == "new":
                conn.execute(f"SET search_path = {VERSION_SCHEMA}")
            rng = random.Random()
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    if rng.random() < 0.1:
                        conn.execute(f"INSERT INTO tasks ({column}, status) VALUES (%s, 'new')",
                                     (f"{self.kind} insert {started}",))
                    else:
                        conn.execute(f"UPDATE tasks SET {column} = %s WHERE id = %s",
                                     (f"{self.kind} write {started}", rng.randint(1, self.rows)))
                    self.writes.append(Write(started, time.perf_counter() - started))
                except psycopg.Error as exc:
                    self.writes.append(Write(started, time.perf_counter() - started,
                                             type(exc).__name__))
                time.sleep(self.think)


def start(clients: list[Client]) -> list[threading.Thread]:
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for t in threads:
        t.start()
    return threads


def stop(clients: list[Client], threads: list[threading.Thread]) -> None:
    for c in clients:
        c.stop.set()
    for t in threads:
        t.join(timeout=30)


def window(clients: list[Client], begin: float, end: float) -> dict[str, Any]:
    """Writes that overlap [begin, end]: count, failures, max and p99 latency in ms."""
    writes = [w for c in clients for w in c.writes
              if w.started <= end and w.started + w.seconds >= begin]
    latencies = sorted(w.seconds * 1000 for w in writes)
    failed = [w for w in writes if w.error]
    slowest = sorted(writes, key=lambda w: w.seconds, reverse=True)[:5]
    return {
        "slowest": [{"at_s": round(w.started - begin, 2), "ms": round(w.seconds * 1000, 1),
                     "error": w.error} for w in slowest],
        "seconds": round(end - begin, 2), "writes": len(writes), "failed": len(failed),
        "errors": sorted({w.error for w in failed}),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
    }


def dbops(project: Path, *args: str) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dbops", *args], cwd=project, env=env,
                            capture_output=True, text=True, timeout=3600, check=False)
    ended = time.perf_counter()
    if result.returncode != 0:
        raise SystemExit(f"dbops {' '.join(args)} failed: {result.stderr.strip()}")
    return began, ended, result.stderr


def load(conninfo: str, rows: int) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO tasks (title, status, payload) SELECT 'task ' || g || ' ' ||"
                     " repeat('x', (g %% 400)), 'queued', md5(g::text) FROM"
                     " generate_series(1, %s) g", (rows,))
        conn.execute("VACUUM ANALYZE tasks")


def disagreeing(conninfo: str, *, through_base: bool) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        query = (f"SELECT count(*) FROM public.tasks p JOIN {VERSION_SCHEMA}.tasks n USING (id)"
                 " WHERE n.headline IS DISTINCT FROM left(p.title, 300)" if through_base else
                 f"SELECT count(*) FROM {VERSION_SCHEMA}.tasks WHERE headline IS NULL")
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else -1


def expand_contract(cluster: Cluster, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = "bench_expand"
    cluster.ensure_database(name)
    conninfo = f"host={HOST} port={cluster.port} user={SUPERUSER} dbname={name}"
    project = work / "project"
    (project / "plans").mkdir(parents=True)
    (project / "migrations").mkdir()
    (project / "plans" / "bench.yaml").write_text(PLAN.format(
        host=HOST, port=cluster.port, name=name, user=SUPERUSER))
    (project / "migrations" / "20300101000000_tasks.sql").write_text(CREATE)
    dbops(project, "migrate", "hash")
    dbops(project, "migrate", "up", "bench", "--yes")
    load(conninfo, args.rows)
    (project / "migrations" / f"{VERSION}_headline.yaml").write_text(
        MIGRATION.format(batch=args.batch, pause=args.pause))
    dbops(project, "migrate", "hash")
    old = [Client(conninfo, "old", args.rows, args.think) for _ in range(args.old)]
    new = [Client(conninfo, "new", args.rows, args.think) for _ in range(args.new)]
    old_threads = start(old)
    time.sleep(args.warmup)
    new_threads: list[threading.Thread] = []

    def start_new_when_published() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while conn.execute("SELECT to_regnamespace(%s)", (VERSION_SCHEMA,)
                               ).fetchone() == (None,):
                time.sleep(0.05)
        new_threads.extend(start(new))

    watcher = threading.Thread(target=start_new_when_published, daemon=True)
    watcher.start()
    print(f"  expand: dbops migrate up ({args.rows:,} rows, batch {args.batch})", flush=True)
    expand_begin, expand_end, _ = dbops(project, "migrate", "up", "bench", "--yes")
    watcher.join(timeout=30)
    time.sleep(args.both)
    stop(old, old_threads)  # the old application version is retired before complete
    both_end = time.perf_counter()
    after_expand = disagreeing(conninfo, through_base=True)
    print("  complete: dbops migrate complete", flush=True)
    complete_begin, complete_end, _ = dbops(project, "migrate", "complete", "bench", "--yes")
    time.sleep(args.tail)
    stop(new, new_threads)
    after_complete = disagreeing(conninfo, through_base=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'tasks'::regclass AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum")]
    return {
        "expand": window([*old, *new], expand_begin, expand_end),
        "both_shapes": window([*old, *new], expand_end, both_end),
        "complete": window(new, complete_begin, complete_end),
        "rows_disagreeing_after_expand": after_expand,
        "rows_without_headline_after_complete": after_complete,
        "columns_after_complete": columns,
    }


def naive(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    name = "bench_naive"
    cluster.ensure_database(name)
    conninfo = f"host={HOST} port={cluster.port} user={SUPERUSER} dbname={name}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(CREATE.removeprefix("-- migrate:up\n"))
    load(conninfo, args.rows)
    old = [Client(conninfo, "old", args.rows, args.think) for _ in range(args.old)]
    threads = start(old)
    time.sleep(args.warmup)
    print("  naive: ALTER TABLE RENAME + ALTER TYPE in one transaction", flush=True)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        begin = time.perf_counter()
        conn.execute(NAIVE)
        end = time.perf_counter()
    time.sleep(args.tail)
    stop(old, threads)
    return {"alter": window(old, begin, end),
            "after": window(old, end, end + args.tail)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--old", type=int, default=2, help="old clients (public, title)")
    parser.add_argument("--new", type=int, default=2, help="new clients (version schema)")
    parser.add_argument("--batch", type=int, default=1000, help="backfill batch size")
    parser.add_argument("--pause", type=int, default=0, help="backfill pause between batches, ms")
    parser.add_argument("--think", type=float, default=0.005, help="pause between writes, s")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--both", type=float, default=5.0, help="seconds both shapes write")
    parser.add_argument("--tail", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dbops-bench-expand-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        cluster = Cluster(base / "data", port=free_port())
        try:
            cluster.up()
            with psycopg.connect(f"host={HOST} port={cluster.port} user={SUPERUSER} "
                                 "dbname=postgres") as conn:
                server_version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            print(f"PostgreSQL {server_version}", flush=True)
            ec = expand_contract(cluster, base, args)
            plain = naive(cluster, args)
        finally:
            cluster.down()
    report = {
        "benchmark": "expand_contract",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "postgresql": server_version, "load_before": load_before,
                    "load_after": os.getloadavg()},
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "expand_contract": ec,
        "naive": plain,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print("\n| phase | seconds | writes | failed | max ms | p99 ms |\n|---|---|---|---|---|---|")
    for label, w in (("expand (old + new clients)", ec["expand"]),
                     ("both shapes after expand", ec["both_shapes"]),
                     ("complete (new clients)", ec["complete"]),
                     ("naive ALTER (old clients)", plain["alter"]),
                     ("after naive ALTER (old clients)", plain["after"])):
        print(f"| {label} | {w['seconds']} | {w['writes']} | {w['failed']} | {w['max_ms']} | "
              f"{w['p99_ms']} |")
    print(f"rows disagreeing after expand: {ec['rows_disagreeing_after_expand']}; "
          f"after complete: {ec['rows_without_headline_after_complete']}; "
          f"columns: {', '.join(ec['columns_after_complete'])}")
    met = all(ec[p]["failed"] == 0 and (ec[p]["max_ms"] or 0) < TARGET_MS
              for p in ("expand", "complete"))
    print(f"targets (0 failed, max < {TARGET_MS:.0f} ms through expand and complete): "
          f"{'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
