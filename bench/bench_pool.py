"""The runtime pool against psycopg_pool and a minimal pool, side by side; read throughput with
0, 1 and 2 replicas; acquire-wait p99 under contention.

What it measures. T threads each run Q x `SELECT 1` over S connections (default 50 x 400 over
20) against one throwaway cluster (started here with dbops.local on free ports, server defaults,
stopped and removed at the end), every connection in autocommit so a query is one round trip:

  minimal        a threading.Semaphore(S) guarding a list of S raw psycopg connections:
                 acquire, `conn.execute("SELECT 1").fetchall()`, release (no bookkeeping at all)
  psycopg_pool   ConnectionPool(min_size=S, max_size=S): `with pool.connection() as conn:` and
                 the same execute
  dbops query    PoolManager(min_size=S, max_size=S) `pool.query("SELECT 1")`, with metrics and
                 leak detection on (leak_detection_threshold 30s, slow-query logging on)
  dbops conn     the same PoolManager, `with pool.connection() as conn:` and the same execute

Each round runs every contender once (their order rotating between rounds) after one untimed
warm-up round; the table reports the median queries/s over the rounds and its ratio to the
minimal pool's median. The machine is shared with other work, so rounds vary: the per-round
values are in the JSON.

The client's CPU time per query (this process, every thread) is reported beside the rate: it
is what the pools themselves add, and it moves less than the rate on a busy machine.

Acquire wait: the same load again with the time each checkout waited measured around the
acquire (T x Q samples per contender): mean, p50, p99, p99.9 and max (a pool that lets a
returning thread take its connection straight back has a tiny p99 and a long max: the callers
it passes over starve); then with
`SELECT pg_sleep(0.001)` (T x Q/4), where the connections rather than the client's CPU are the
bottleneck and callers really queue; plus the PoolManager's own histogram estimate of its p99.

Reads: PoolManager with 0, 1 and 2 streaming replicas of the primary (pg_basebackup), the same
T x Q `pool.query("SELECT 1", read_only=True)`, S connections per server.

TaskMaster: the example's repositories (examples/taskmaster) on the project's migrations, each
cycle = create a task, claim the next (FOR UPDATE SKIP LOCKED), finish it (status and task_logs
row in one transaction) and read it back with intent read; with 0 and 2 replicas, where the read
goes to a replica only once it has replayed the caller's write.

Results: a table on stdout and bench/results/pool.json (or --output). Run from the project root:

    python3 bench/bench_pool.py [--threads 50] [--queries 400] [--size 20] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from psycopg_pool_store import PsycopgPoolManager  # issue 15: the psycopg_pool store variant

from dbops.connect import Endpoint
from dbops.local import Cluster
from dbops.pool import PoolManager
from tests.harness import start_replica

Work = Callable[[], None]


def endpoint(cluster: Cluster, name: str = "primary") -> Endpoint:
    return Endpoint(host=cluster.host, port=cluster.port, dbname="postgres", user="postgres",
                    sslmode="disable", connect_timeout=timedelta(seconds=5), name=name)


def kwargs(cluster: Cluster) -> dict[str, Any]:
    return {"host": cluster.host, "port": cluster.port, "dbname": "postgres", "user": "postgres"}


class MinimalPool:
    """The floor: a semaphore and a list of raw connections."""

    def __init__(self, cluster: Cluster, size: int) -> None:
        self.conns = [psycopg.connect(autocommit=True, **kwargs(cluster)) for _ in range(size)]
        self.slots = threading.Semaphore(size)
        self.lock = threading.Lock()

    def acquire(self) -> psycopg.Connection[Any]:
        self.slots.acquire()
        with self.lock:
            return self.conns.pop()

    def release(self, conn: psycopg.Connection[Any]) -> None:
        with self.lock:
            self.conns.append(conn)
        self.slots.release()

    def work(self) -> None:
        conn = self.acquire()
        try:
            conn.execute("SELECT 1").fetchall()
        finally:
            self.release(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def run_load(work: Work, threads: int, queries: int) -> tuple[float, float]:
    """Queries per second of `threads` threads each calling `work` `queries` times, and the
    client's CPU time (this process, all threads) per query in microseconds."""
    start = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            for _ in range(queries):
                work()
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    began, cpu = time.perf_counter(), time.process_time()
    for t in pool:
        t.join()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    if failures:
        raise RuntimeError(f"{len(failures)} workers failed: {failures[0]!r}")
    return threads * queries / elapsed, cpu / (threads * queries) * 1e6


def run_waits(acquire_release: Callable[[list[float]], None], threads: int, queries: int) -> list[float]:
    """Every checkout's wait (seconds) under the same load."""
    samples: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def worker(out: list[float]) -> None:
        start.wait()
        for _ in range(queries):
            acquire_release(out)

    pool = [threading.Thread(target=worker, args=(samples[n],)) for n in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    for t in pool:
        t.join()
    return [s for per_thread in samples for s in per_thread]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rounds(
    contenders: dict[str, Work], n: int, threads: int, queries: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per contender: queries/s of each round, and client CPU microseconds per query."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for name in names:  # warm-up: connections opened, statements prepared, caches filled
        run_load(contenders[name], threads, max(queries // 4, 1))
    for r in range(n):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            qps, us = run_load(contenders[name], threads, queries)
            results[name].append(qps)
            cpu[name].append(us)
        print(f"  round {r + 1}/{n}: " + ", ".join(
            f"{name} {results[name][-1]:,.0f}" for name in names), flush=True)
    return results, cpu


def taskmaster_cycles(
    base: Path, primary: Cluster, replicas: list[Cluster], threads: int, cycles: int, size: int,
    n_rounds: int,
) -> dict[str, Any]:
    """Cycles/s of the TaskMaster example: create a task, claim the next one, finish it (status
    and log row in one transaction) and read it back with intent read (read-your-writes)."""
    import shutil

    from dbops.migrate.engine import MigrationEngine
    from examples.taskmaster import PipelineRepository, TaskRepository

    with psycopg.connect(autocommit=True, **kwargs(primary)) as conn:
        conn.execute("CREATE DATABASE taskmaster")
    project = base / "project"
    (project / "plans").mkdir(parents=True)
    shutil.copytree(Path(__file__).resolve().parent.parent / "migrations", project / "migrations")
    (project / "plans" / "bench.yaml").write_text(
        "apiVersion: dbops/v1\nenvironment: bench\n"
        f"database: {{ host: {primary.host}, port: {primary.port}, name: taskmaster,"
        " user: postgres, sslmode: disable }\n"
        "pool: { instances: 1, min_size: 1, max_size: 4 }\n"
    )
    MigrationEngine.from_plan("bench", root=project).run_migrations()
    for replica in replicas:  # the new database must exist on the replicas before routing
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(**{**kwargs(replica), "dbname": "taskmaster"}).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.05)

    def manager(with_replicas: list[Cluster]) -> PoolManager:
        def ep(c: Cluster, name: str) -> Endpoint:
            return Endpoint(host=c.host, port=c.port, dbname="taskmaster", user="postgres",
                            sslmode="disable", connect_timeout=timedelta(seconds=5), name=name)
        return PoolManager(ep(primary, "primary"),
                           [ep(r, f"r{i + 1}") for i, r in enumerate(with_replicas)],
                           min_size=size, max_size=size, leak_detection_threshold=30.0).open()

    out: dict[str, Any] = {}
    for label, chosen in (("0 replicas", []), ("2 replicas", replicas)):
        pool = manager(chosen)
        tasks = TaskRepository(pool)
        pipeline = PipelineRepository(pool).create(f"bench-{label}", "git@example.com:bench")

        def cycle(tasks: TaskRepository = tasks, pipeline: int = pipeline) -> None:
            tasks.create(pipeline, "build")
            claimed = tasks.claim_next()
            if claimed is not None:
                done = tasks.update_status(claimed.id, "succeeded", "done")
                seen = tasks.get(done.id)
                if seen is None or seen.status != "succeeded":
                    raise AssertionError(f"read-your-writes broken: {seen}")

        per_round = [run_load(cycle, threads, cycles)[0] for _ in range(n_rounds)]
        stats = pool.get_pool_stats()
        out[label] = {"median_cycles_per_s": statistics.median(per_round),
                      "per_round_cycles_per_s": per_round,
                      "reads_routed": {node: s.reads_routed for node, s in stats.items()}}
        print(f"  {label}: {statistics.median(per_round):,.0f} cycles/s", flush=True)
        pool.shutdown()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", type=Path, default=Path("bench/results/pool.json"))
    args = parser.parse_args()
    t, q, size = args.threads, args.queries, args.size

    with tempfile.TemporaryDirectory(prefix="dbops-bench-pool-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        primary = Cluster(base / "primary")
        replicas: list[Cluster] = []
        try:
            primary.up()
            print(f"pool: {t} threads x {q} x SELECT 1 over {size} connections, "
                  f"{args.rounds} rounds", flush=True)
            minimal = MinimalPool(primary, size)
            ppool = ConnectionPool(kwargs={"autocommit": True, **kwargs(primary)},
                                   min_size=size, max_size=size, open=True)
            ppool.wait()
            manager = PoolManager(endpoint(primary), min_size=size, max_size=size,
                                  leak_detection_threshold=30.0, log_slow_queries=True).open()
            # Issue 15: the same manager with psycopg_pool.ConnectionPool as its store.
            pp_manager = PsycopgPoolManager(endpoint(primary), min_size=size, max_size=size,
                                            leak_detection_threshold=30.0,
                                            log_slow_queries=True).open()

            def psycopg_pool_work() -> None:
                with ppool.connection() as conn:
                    conn.execute("SELECT 1").fetchall()

            def dbops_query() -> None:
                manager.query("SELECT 1")

            def dbops_connection() -> None:
                with manager.connection() as conn:
                    conn.execute("SELECT 1").fetchall()

            def pp_query() -> None:
                pp_manager.query("SELECT 1")

            def pp_connection() -> None:
                with pp_manager.connection() as conn:
                    conn.execute("SELECT 1").fetchall()

            contenders: dict[str, Work] = {
                "minimal": minimal.work,
                "psycopg_pool": psycopg_pool_work,
                "dbops query": dbops_query,
                "dbops conn": dbops_connection,
                "dbops query, psycopg_pool store": pp_query,
                "dbops conn, psycopg_pool store": pp_connection,
            }
            throughput, cpu = rounds(contenders, args.rounds, t, q)

            print("acquire wait under contention", flush=True)
            waits: dict[str, dict[str, dict[str, float]]] = {}
            for label, statement, count in (("SELECT 1", "SELECT 1", q),
                                            ("pg_sleep(1 ms)", "SELECT pg_sleep(0.001)", q // 4)):

                def minimal_wait(out: list[float], stmt: str = statement) -> None:
                    began = time.perf_counter()
                    conn = minimal.acquire()
                    out.append(time.perf_counter() - began)
                    try:
                        conn.execute(stmt).fetchall()
                    finally:
                        minimal.release(conn)

                def psycopg_pool_wait(out: list[float], stmt: str = statement) -> None:
                    began = time.perf_counter()
                    conn = ppool.getconn()
                    out.append(time.perf_counter() - began)
                    try:
                        conn.execute(stmt).fetchall()
                    finally:
                        ppool.putconn(conn)

                def dbops_wait(out: list[float], stmt: str = statement,
                               mgr: PoolManager = manager) -> None:
                    checkout = mgr.connection()
                    began = time.perf_counter()
                    conn = checkout.__enter__()
                    out.append(time.perf_counter() - began)
                    try:
                        conn.execute(stmt).fetchall()
                    finally:
                        checkout.__exit__(None, None, None)

                waits[label] = {}
                for name, fn in (("minimal", minimal_wait), ("psycopg_pool", psycopg_pool_wait),
                                 ("dbops conn", dbops_wait),
                                 ("dbops conn, psycopg_pool store",
                                  lambda out, stmt=statement: dbops_wait(out, stmt, pp_manager))):
                    began = time.perf_counter()
                    samples = run_waits(fn, t, count)
                    elapsed = time.perf_counter() - began
                    waits[label][name] = {"p50_ms": percentile(samples, 0.5) * 1000,
                                          "p99_ms": percentile(samples, 0.99) * 1000,
                                          "p99_9_ms": percentile(samples, 0.999) * 1000,
                                          "max_ms": max(samples) * 1000,
                                          "mean_ms": statistics.fmean(samples) * 1000,
                                          "qps": len(samples) / elapsed,
                                          "samples": len(samples)}
            estimate = manager.get_performance_metrics().acquire_wait_p99
            waits["pool histogram"] = {"dbops conn": {"p99_ms": (estimate or 0.0) * 1000}}
            manager.shutdown()
            pp_manager.shutdown()
            ppool.close()
            minimal.close()

            print("reads with 0, 1 and 2 replicas", flush=True)
            for n in (1, 2):
                replicas.append(start_replica(primary, base / f"replica{n}"))
            readers: dict[str, Work] = {}
            managers = []
            for n in (0, 1, 2):
                m = PoolManager(endpoint(primary), [endpoint(r, f"r{i + 1}")
                                                    for i, r in enumerate(replicas[:n])],
                                min_size=size, max_size=size,
                                leak_detection_threshold=30.0).open()
                managers.append(m)
                readers[f"{n} replicas"] = (lambda m=m: m.query("SELECT 1", read_only=True) and None)
            reads, _ = rounds(readers, max(3, args.rounds // 2), t, q)
            routed = {f"{n} replicas": {node: s.reads_routed for node, s in m.get_pool_stats().items()}
                      for n, m in enumerate(managers)}
            for m in managers:
                m.shutdown()

            print("TaskMaster cycles (examples/taskmaster) with 0 and 2 replicas", flush=True)
            taskmaster = taskmaster_cycles(base, primary, replicas, t, max(q // 20, 5), size,
                                           max(3, args.rounds // 3))
            version = primary.status().version
        finally:
            for r in replicas:
                r.down()
            primary.down()

    med = {k: statistics.median(v) for k, v in throughput.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    table = {k: {"median_qps": med[k], "min_qps": min(v), "max_qps": max(v),
                 "ratio_to_minimal": med[k] / med["minimal"],
                 "client_cpu_us_per_query": cpu_med[k],
                 "per_round_client_cpu_us": cpu[k],
                 "per_round_qps": v,
                 "per_round_ratio_to_minimal": [a / b for a, b in zip(v, throughput["minimal"], strict=True)]}
             for k, v in throughput.items()}
    read_med = {k: statistics.median(v) for k, v in reads.items()}
    result = {
        "benchmark": "pool",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {"threads": t, "queries_per_thread": q, "connections": size,
                       "rounds": args.rounds},
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "load_average_after": os.getloadavg()},
        "versions": {"postgresql": version, "python": platform.python_version(),
                     "psycopg": metadata.version("psycopg"),
                     "psycopg_pool": metadata.version("psycopg-pool")},
        "select_1": table,
        "acquire_wait": waits,
        "taskmaster": taskmaster,
        "reads": {k: {"median_qps": read_med[k], "per_round_qps": v,
                      "ratio_to_0_replicas": read_med[k] / read_med["0 replicas"],
                      "reads_routed": routed[k]} for k, v in reads.items()},
        "target": {"dbops query / minimal >= 0.95": table["dbops query"]["ratio_to_minimal"] >= 0.95,
                   "dbops query on psycopg_pool store / minimal >= 0.95":
                   table["dbops query, psycopg_pool store"]["ratio_to_minimal"] >= 0.95},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    print("\n| pool | median q/s | x minimal | min-max q/s | client CPU us/query |")
    print("|---|---|---|---|---|")
    for k, row in table.items():
        print(f"| {k} | {row['median_qps']:,.0f} | {row['ratio_to_minimal']:.2f} | "
              f"{row['min_qps']:,.0f}-{row['max_qps']:,.0f} | "
              f"{row['client_cpu_us_per_query']:.1f} |")
    print("\n| acquire wait | query | q/s | mean ms | p50 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    nan = float("nan")
    for label, per_pool in waits.items():
        for k, w in per_pool.items():
            print(f"| {k} | {label} | {w.get('qps', nan):,.0f} | {w.get('mean_ms', nan):.2f} | "
                  f"{w.get('p50_ms', nan):.2f} | {w['p99_ms']:.2f} | "
                  f"{w.get('p99_9_ms', nan):.2f} | {w.get('max_ms', nan):.1f} |")
    print("\n| reads | median q/s | x 0 replicas |\n|---|---|---|")
    for k, row in result["reads"].items():
        print(f"| {k} | {row['median_qps']:,.0f} | {row['ratio_to_0_replicas']:.2f} |")
    print("\n| TaskMaster cycle | median cycles/s |\n|---|---|")
    for k, row in taskmaster.items():
        print(f"| {k} | {row['median_cycles_per_s']:,.0f} |")
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
