"""Health checks under load: one full check cycle with 150 client connections open (its time and
the statements it sends), the monitor's CPU at a 1-second interval, and /metrics scrape time;
postgres_exporter and check_postgres measured side by side when they are installed.

The setup: a throwaway primary and streaming replica (dbops.local, free ports, server defaults
except pg_stat_statements preloaded to count statements), stopped and removed at the end. 150
client connections of a mix an application shows: 100 idle, 25 idle in a transaction (one holds a
lock), 20 running a long query, 5 waiting on that lock. dbops checks as `dbops_mon`, a role with
only pg_monitor; each peer has a role of its own, so pg_stat_statements counts each tool's
statements apart (on the primary and the replica).

  cycle, kept connection   Checker.run() as the monitor runs it: connections kept between cycles
  cycle, fresh connection  check_once(): connect, check, close (the CLI and the apply gates)
  monitor CPU              a HealthMonitor at a 1-second interval in a subprocess for N seconds:
                           CPU of that process and of its server backends, as % of one core
  /metrics                 GET /metrics from `HealthServer` (the monitor running at 1 s), repeated
  postgres_exporter        the same CPU measurement scraped every second, and its scrape time
  check_postgres           the actions that cover the same ground, run one after the other

Run from the project root (PostgreSQL server binaries needed; peers optional):

    python3 bench/bench_health.py [--clients 150] [--cycles 300] [--monitor-seconds 30]
        [--scrapes 300] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.health.checks import Checker, check_once
from dbops.health.exposure import Exposure
from dbops.health.monitor import HealthMonitor
from dbops.health.server import HealthServer
from dbops.local import HOST, SUPERUSER, Cluster, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.harness
from tests.harness import start_replica

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "health.json"
TARGET_CYCLE_MS = 50.0
TICKS = os.sysconf("SC_CLK_TCK")
ROLES = {"dbops_mon": "pg_monitor", "exporter": "pg_monitor", "checkpg": None}
CHECK_POSTGRES_ACTIONS = [
    ("connection", []), ("backends", []), ("txn_idle", ["--critical=60"]),
    ("txn_time", ["--critical=300"]), ("query_time", ["--critical=5"]), ("locks", []),
    ("txn_wraparound", []), ("hitratio", []),
]


def connect(cluster: Cluster, user: str = SUPERUSER, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(host=HOST, port=cluster.port, user=user, dbname="postgres", **kwargs)


def sql(cluster: Cluster, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connect(cluster, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def statements(primary: Cluster, replica: Cluster, user: str) -> int:
    """Statements `user` has sent since the last reset, on both servers."""
    query = ("SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements s"
             " JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s")
    return sum(sql(c, query, (user,))[0][0] for c in (primary, replica))


def reset_statements(primary: Cluster, replica: Cluster) -> None:
    for cluster in (primary, replica):
        sql(cluster, "SELECT pg_stat_statements_reset()")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def backend_pids(cluster: Cluster, user: str) -> list[int]:
    return [row[0] for row in sql(cluster, "SELECT pid FROM pg_stat_activity WHERE usename = %s",
                                  (user,))]


def summary_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
            "min_ms": round(ordered[0] * 1000, 3), "max_ms": round(ordered[-1] * 1000, 3),
            "samples": len(ordered)}


@contextmanager
def load(primary: Cluster, clients: int) -> Iterator[None]:
    """`clients` connections: idle, idle in a transaction (one holding a lock), running a long
    query, and waiting on that lock, in the proportions 100:25:20:5 of 150."""
    sql(primary, "CREATE TABLE IF NOT EXISTS bench_lock (id int)")
    waiting = max(clients * 5 // 150, 1)
    active = clients * 20 // 150
    idle_tx = clients * 25 // 150
    idle = clients - waiting - active - idle_tx
    held: list[psycopg.Connection[Any]] = []
    try:
        for n in range(clients):
            conn = connect(primary, application_name="app", autocommit=n < idle)
            held.append(conn)
            if n == idle:
                conn.execute("LOCK TABLE bench_lock IN ACCESS EXCLUSIVE MODE")
            elif idle < n < idle + idle_tx:
                conn.execute("SELECT 1")
            elif n >= idle + idle_tx:
                # sent, not awaited: the session stays active (a long query, or a lock wait)
                query = b"SELECT pg_sleep(3600)" if n < clients - waiting else (
                    b"SELECT count(*) FROM bench_lock")
                conn.pgconn.send_query(query)
        yield
    finally:
        for conn in held:
            conn.pgconn.finish()


def write_plan(root: Path, primary: Cluster, replica: Cluster, interval: str) -> Plan:
    (root / "plans").mkdir(parents=True, exist_ok=True)
    (root / "plans" / "bench.yaml").write_text(
        "apiVersion: dbops/v1\nenvironment: bench\ndatabase:\n"
        f"  host: {HOST}\n  port: {primary.port}\n  name: postgres\n  user: dbops_mon\n"
        "  sslmode: disable\n  replicas:\n"
        f"    - {{ name: replica1, host: {HOST}, port: {replica.port} }}\n"
        "pool: { instances: 1, min_size: 1, max_size: 4 }\n"
        f"health:\n  check_interval: {interval}\n  alerts: [ {{ type: log }} ]\n")
    return load_plan("bench", root=root, environ={})


def measure_cycles(plan: Plan, primary: Cluster, replica: Cluster, cycles: int) -> dict[str, Any]:
    checker = Checker(plan, command="bench")
    try:
        first = checker.run()
        kept: list[float] = []
        for _ in range(cycles):
            started = time.perf_counter()
            checker.run()
            kept.append(time.perf_counter() - started)
        reset_statements(primary, replica)
        counted = 20
        for _ in range(counted):
            report = checker.run()
        sent = statements(primary, replica, "dbops_mon")
    finally:
        checker.close()
    fresh: list[float] = []
    for _ in range(max(cycles // 5, 10)):
        started = time.perf_counter()
        check_once(plan, command="bench")
        fresh.append(time.perf_counter() - started)
    kept_summary = summary_ms(kept)
    return {
        "kept_connection": kept_summary,
        "fresh_connection": summary_ms(fresh),
        "queries_per_cycle_reported": report.queries,
        "statements_per_cycle_counted": sent / counted,
        "checks": len(report.results),
        "status_under_load": report.status,
        "non_ok_checks": {r.name: r.status for r in report.results if r.status != "ok"},
        "clients_seen": next((r.details.get("connections") for r in first.results
                              if r.name == "connection_utilization"), None),
        "target_ms": TARGET_CYCLE_MS,
        "target_met": kept_summary["median_ms"] < TARGET_CYCLE_MS,
    }


MONITOR_SCRIPT = """
import sys, time
from pathlib import Path
from dbops.config.load import load_plan
from dbops.health.monitor import HealthMonitor
plan = load_plan("bench", root=Path(sys.argv[1]), environ={})
monitor = HealthMonitor(plan, recover=False)
monitor.start_monitoring(force=True)
while monitor.latest() is None:
    time.sleep(0.05)
print("ready", flush=True)
sys.stdin.read()
print(monitor.cycles, monitor.failures, flush=True)
monitor.stop_monitoring()
"""


def cpu_of(pids: Callable[[], list[int]], seconds: float) -> float:
    """CPU % of one core the processes `pids()` use over `seconds`."""
    watched = pids()
    before = {pid: cpu_seconds(pid) for pid in watched}
    time.sleep(seconds)
    used = sum(cpu_seconds(pid) - before[pid] for pid in watched if Path(f"/proc/{pid}").exists())
    return round(used / seconds * 100, 3)


def measure_monitor_cpu(root: Path, primary: Cluster, replica: Cluster,
                        seconds: float) -> dict[str, Any]:
    write_plan(root, primary, replica, "1s")
    process = subprocess.Popen([sys.executable, "-c", MONITOR_SCRIPT, str(root)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # past start-up and the first cycles
        backends = [*backend_pids(primary, "dbops_mon"), *backend_pids(replica, "dbops_mon")]
        client = threading.Thread(target=lambda: result.update(
            client=cpu_of(lambda: [process.pid], seconds)))
        result: dict[str, float] = {}
        client.start()
        result["server"] = cpu_of(lambda: backends, seconds)
        client.join()
        out, _ = process.communicate("", timeout=30)
        cycles, failures = (int(x) for x in out.split())
    finally:
        if process.poll() is None:
            process.kill()
    return {"interval_s": 1.0, "seconds": seconds, "monitor_process_cpu_percent": result["client"],
            "server_backends_cpu_percent": result["server"], "cycles_run": cycles,
            "cycle_failures": failures}


def scrape(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        size = len(response.read())
    return time.perf_counter() - started, size


def measure_metrics(plan: Plan, scrapes: int) -> dict[str, Any]:
    monitor = HealthMonitor(plan, persist=False, alerts=False, recover=False, interval=1.0)
    server = HealthServer(monitor, Exposure(HOST, 0))
    try:
        monitor.start_monitoring(force=True)
        server.start()
        url = f"http://{HOST}:{server.address[1]}"
        while monitor.latest() is None:
            time.sleep(0.05)
        samples, size = [], 0
        for _ in range(scrapes):
            took, size = scrape(f"{url}/metrics")
            samples.append(took)
        ready = [scrape(f"{url}/ready?lag=10s")[0] for _ in range(20)]
    finally:
        server.stop()
        monitor.stop_monitoring()
    return {"metrics": {**summary_ms(samples), "bytes": size}, "ready": summary_ms(ready)}


def measure_postgres_exporter(primary: Cluster, replica: Cluster, scrapes: int,
                              seconds: float) -> dict[str, Any] | None:
    binary = shutil.which("prometheus-postgres-exporter") or shutil.which("postgres_exporter")
    if binary is None:
        return None
    port = free_port()
    env = {**os.environ,
           "DATA_SOURCE_NAME": f"postgresql://exporter@{HOST}:{primary.port}/postgres?sslmode=disable"}
    process = subprocess.Popen([binary, f"--web.listen-address={HOST}:{port}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{HOST}:{port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                scrape(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(3):
            scrape(url)
        samples, size = [], 0
        for _ in range(scrapes):
            took, size = scrape(url)
            samples.append(took)
        reset_statements(primary, replica)
        counted = 10
        for _ in range(counted):
            scrape(url)
        sent = statements(primary, replica, "exporter") / counted
        stop = threading.Event()

        def every_second() -> None:
            while not stop.wait(1.0):
                scrape(url)

        scraper = threading.Thread(target=every_second)
        scraper.start()
        time.sleep(1.5)
        backends = backend_pids(primary, "exporter")
        result: dict[str, float] = {}
        watcher = threading.Thread(target=lambda: result.update(
            client=cpu_of(lambda: [process.pid], seconds)))
        watcher.start()
        result["server"] = cpu_of(lambda: backends, seconds)
        watcher.join()
        stop.set()
        scraper.join()
        version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 check=False)
    finally:
        process.terminate()
        process.wait(10)
    return {"version": (version.stdout + version.stderr).splitlines()[0],
            "scrape": {**summary_ms(samples), "bytes": size},
            "statements_per_scrape_counted": sent,
            "cpu_at_1s_scrapes": {"seconds": seconds, "exporter_cpu_percent": result["client"],
                                  "server_backends_cpu_percent": result["server"]}}


def measure_check_postgres(primary: Cluster, replica: Cluster) -> dict[str, Any] | None:
    binary = shutil.which("check_postgres") or shutil.which("check_postgres.pl")
    if binary is None:
        return None
    base = [binary, f"--host={HOST}", f"--port={primary.port}", "--dbuser=checkpg",
            "--dbname=postgres"]
    reset_statements(primary, replica)
    per_action, outputs = {}, {}
    started = time.perf_counter()
    for action, extra in CHECK_POSTGRES_ACTIONS:
        begun = time.perf_counter()
        done = subprocess.run([*base, f"--action={action}", *extra], capture_output=True,
                              text=True, check=False)
        per_action[action] = round((time.perf_counter() - begun) * 1000, 1)
        outputs[action] = done.stdout.strip().splitlines()[0][:160] if done.stdout else done.stderr
    begun = time.perf_counter()
    done = subprocess.run([binary, f"--host={HOST},{HOST}",
                           f"--port={primary.port},{replica.port}", "--dbuser=checkpg",
                           "--dbname=postgres", "--action=hot_standby_delay",
                           "--warning=1048576", "--critical=16777216"],
                          capture_output=True, text=True, check=False)
    per_action["hot_standby_delay"] = round((time.perf_counter() - begun) * 1000, 1)
    outputs["hot_standby_delay"] = done.stdout.strip()[:200]
    total = time.perf_counter() - started
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return {"version": version.stdout.strip(), "actions": len(per_action),
            "total_ms": round(total * 1000, 1), "per_action_ms": per_action,
            "statements_counted": statements(primary, replica, "checkpg"),
            "outputs": outputs}


def versions(primary: Cluster) -> dict[str, str]:
    found = {"postgresql": sql(primary, "SHOW server_version")[0][0],
             "python": platform.python_version()}
    for package in ("dbops", "psycopg", "prometheus-client"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "?"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--monitor-seconds", type=float, default=30.0)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dbops-bench-health-"))
    work.chmod(0o755)
    load_before = os.getloadavg()
    primary = Cluster(work / "primary", settings={
        "max_connections": str(max(200, args.clients + 40)),
        "shared_preload_libraries": "pg_stat_statements"})
    replica = Cluster(work / "replica")
    try:
        primary.up()
        replica = start_replica(primary, work / "replica")
        sql(primary, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for role, member in ROLES.items():
            sql(primary, f"CREATE ROLE {role} LOGIN" + ("" if member else " SUPERUSER"))
            if member:
                sql(primary, f"GRANT {member} TO {role}")
        time.sleep(0.5)  # the roles reach the replica
        plan = write_plan(work / "project", primary, replica, "30s")
        with load(primary, args.clients):
            print(f"{args.clients} client connections open; measuring...", flush=True)
            cycle = measure_cycles(plan, primary, replica, args.cycles)
            print(f"cycle: {cycle['kept_connection']['median_ms']} ms median (kept connection), "
                  f"{cycle['fresh_connection']['median_ms']} ms (fresh), "
                  f"{cycle['statements_per_cycle_counted']:g} statements", flush=True)
            monitor = measure_monitor_cpu(work / "project", primary, replica, args.monitor_seconds)
            print(f"monitor at 1s: {monitor['monitor_process_cpu_percent']}% CPU (process), "
                  f"{monitor['server_backends_cpu_percent']}% (server backends)", flush=True)
            metrics = measure_metrics(plan, args.scrapes)
            print(f"/metrics: {metrics['metrics']['median_ms']} ms median", flush=True)
            exporter = measure_postgres_exporter(primary, replica, max(args.scrapes // 3, 20),
                                                 args.monitor_seconds)
            if exporter:
                print(f"postgres_exporter: {exporter['scrape']['median_ms']} ms per scrape, "
                      f"{exporter['cpu_at_1s_scrapes']['exporter_cpu_percent']}% CPU", flush=True)
            check_postgres = measure_check_postgres(primary, replica)
            if check_postgres:
                print(f"check_postgres: {check_postgres['total_ms']} ms for "
                      f"{check_postgres['actions']} actions", flush=True)
            found_versions = versions(primary)
    finally:
        replica.down()
        primary.down()
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "benchmark": "health",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {"clients": args.clients, "cycles": args.cycles,
                       "monitor_seconds": args.monitor_seconds, "scrapes": args.scrapes,
                       "mix": "100 idle : 25 idle in transaction : 20 active : 5 lock waits "
                              "(per 150)", "replicas": 1},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "versions": found_versions,
        "cycle": cycle,
        "monitor_cpu": monitor,
        "http": metrics,
        "peers": {"postgres_exporter": exporter, "check_postgres": check_postgres},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.output}")
    return 0 if cycle["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
