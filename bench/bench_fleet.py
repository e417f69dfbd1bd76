"""Time a fleet rollout against one single-database apply: is rolling one plan out to 20
databases at most 3x the time of applying it to one?

What it measures. Two throwaway PostgreSQL clusters (started here with dbops.local on free
ports, server defaults, stopped and removed at the end) hold 10 fresh databases each. One
project has two migrations (a table, then an index and a column on it) and one setting
(work_mem, a reload), and two plans:

  single  the plan for one database (`tenant00` on the first cluster)
  fleet   the same plan with `fleet:` naming the 20 databases (canary 1, soak 0s, batch 10,
          parallel 4 by default)

Each repeat recreates the databases, resets work_mem on both servers and runs, timed as a
subprocess (Python start-up included, what a user waits for):

  dbops apply single --yes           the single-database apply
  dbops apply fleet --yes            the rollout over 20 databases (plans all, then applies)

with the default gates (before the apply and after each stage). Every run is checked: exit 0,
both migrations in every database's history, and work_mem changed on both servers.

The CPU time (user + system) of each timed dbops process is recorded beside its wall time, and
so is the servers' (their ended backends', read from the postmasters' /proc stat): a rollout runs
its targets as threads of one process, so dbops CPU close to the wall time would mean the GIL
bounds it; CPU of dbops and servers together close to 2 x wall means the two cores do.

Results: medians and the ratio on stdout, and bench/results/fleet.json (or --output).
The target: fleet / single at most 3.0 with parallel 4. Run from the project root:

    python3 bench/bench_fleet.py [--repeat 3] [--parallel 4] [--batch 10] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbops.local import HOST, SUPERUSER, Cluster, free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS_FILE = REPO / "bench" / "results" / "fleet.json"
PER_CLUSTER = 10
TARGET_RATIO = 3.0
MIGRATIONS = {
    "20250101000001_accounts.sql": "-- migrate:up\nCREATE TABLE accounts (id bigint PRIMARY KEY,"
    " name text NOT NULL);\n-- migrate:down\nDROP TABLE accounts;\n",
    "20250101000002_accounts_email.sql": "-- migrate:up\nALTER TABLE accounts ADD COLUMN email"
    " text;\nCREATE INDEX accounts_name ON accounts (name);\n-- migrate:down\nDROP INDEX"
    " accounts_name;\nALTER TABLE accounts DROP COLUMN email;\n",
}


def admin(cluster: Cluster) -> psycopg.Connection[Any]:
    return psycopg.connect(host=HOST, port=cluster.port, user=SUPERUSER, dbname="postgres",
                           autocommit=True)


def names(index: int) -> list[str]:
    return [f"tenant{index * PER_CLUSTER + n:02d}" for n in range(PER_CLUSTER)]


def reset(clusters: list[Cluster]) -> None:
    """Fresh databases and the servers' default work_mem, before each timed run."""
    for index, cluster in enumerate(clusters):
        with admin(cluster) as conn:
            for name in names(index):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute("ALTER SYSTEM RESET work_mem")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CHECKPOINT")


def write_project(root: Path, clusters: list[Cluster], parallel: int, batch: int) -> None:
    (root / "plans").mkdir(parents=True)
    (root / "migrations").mkdir()
    for name, text in MIGRATIONS.items():
        (root / "migrations" / name).write_text(text)
    base = ("apiVersion: dbops/v1\nenvironment: ENV\ndatabase:\n"
            f"  host: {HOST}\n  port: {clusters[0].port}\n  name: tenant00\n"
            "  user: postgres\n  sslmode: disable\n"
            "pool: { instances: 1, min_size: 1, max_size: 4 }\n"
            "settings:\n  work_mem: 24MB\n")
    (root / "plans" / "single.yaml").write_text(base.replace("ENV", "single"))
    targets = "".join(
        f"    - {{ id: {name}, database: {{ name: {name}, port: {cluster.port} }} }}\n"
        for index, cluster in enumerate(clusters) for name in names(index))
    (root / "plans" / "fleet.yaml").write_text(
        base.replace("ENV", "fleet") + f"fleet:\n  canary: 1\n  soak: 0s\n  batch: {batch}\n"
        f"  parallel: {parallel}\n  targets:\n" + targets)
    run(root, "migrate", "hash")


CPU: list[float] = []  # CPU seconds (user + system) of each timed dbops process


def run(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    env["PYTHONPATH"] = str(REPO)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dbops", *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return time.perf_counter() - started, result


def check(clusters: list[Cluster], databases: dict[int, list[str]]) -> None:
    for index, cluster in enumerate(clusters):
        with admin(cluster) as conn:
            row = conn.execute("SHOW work_mem").fetchone()
            if not row or row[0] != "24MB":
                raise SystemExit(f"cluster {index}: work_mem is {row}, not 24MB")
        for name in databases.get(index, []):
            with psycopg.connect(host=HOST, port=cluster.port, user=SUPERUSER, dbname=name) as c:
                row = c.execute("SELECT count(*) FROM dbops.migration_history").fetchone()
                if row != (2,):
                    raise SystemExit(f"{name}: {row} migrations recorded, not 2")


def server_cpu(clusters: list[Cluster]) -> float:
    """CPU seconds the servers' ended backends used (the postmasters' cutime + cstime)."""
    total = 0
    for cluster in clusters:
        pid = (cluster.data_dir / "postmaster.pid").read_text().split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[13]) + int(fields[14])  # cutime, cstime (stat fields 16 and 17)
    return total / os.sysconf("SC_CLK_TCK")


SERVER_CPU: list[float] = []


def timed(root: Path, clusters: list[Cluster], env: str,
          databases: dict[int, list[str]]) -> float:
    reset(clusters)
    before = server_cpu(clusters)
    seconds, result = run(root, "apply", env, "--yes")
    SERVER_CPU.append(server_cpu(clusters) - before)
    if result.returncode != 0:
        raise SystemExit(f"dbops apply {env} failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    check(clusters if env == "fleet" else clusters[:1], databases)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dbops-bench-"))
    base.chmod(0o755)  # the server runs as another OS user and must reach its data directory
    clusters = [Cluster(base / f"cluster{n}", port=free_port()) for n in range(2)]
    singles: list[float] = []
    fleets: list[float] = []
    cpu: dict[str, list[float]] = {"single": [], "fleet": [], "single servers": [],
                                   "fleet servers": []}
    try:
        for cluster in clusters:
            cluster.up()
        write_project(base / "project", clusters, args.parallel, args.batch)
        every = {index: names(index) for index in range(len(clusters))}
        timed(base / "project", clusters, "single", {0: ["tenant00"]})  # warm-up, untimed
        for _ in range(args.repeat):
            singles.append(timed(base / "project", clusters, "single", {0: ["tenant00"]}))
            cpu["single"].append(CPU[-1])
            cpu["single servers"].append(SERVER_CPU[-1])
            fleets.append(timed(base / "project", clusters, "fleet", every))
            cpu["fleet"].append(CPU[-1])
            cpu["fleet servers"].append(SERVER_CPU[-1])
    finally:
        for cluster in clusters:
            cluster.down()
        shutil.rmtree(base, ignore_errors=True)
    single, fleet = statistics.median(singles), statistics.median(fleets)
    ratio = fleet / single
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load": os.getloadavg()},
        "databases": PER_CLUSTER * len(clusters), "clusters": len(clusters),
        "parallel": args.parallel, "batch": args.batch, "repeat": args.repeat,
        "single_seconds": singles, "fleet_seconds": fleets,
        "single_median": round(single, 2), "fleet_median": round(fleet, 2),
        "cpu_seconds": {k: [round(s, 2) for s in v] for k, v in cpu.items()},
        "ratio": round(ratio, 2), "target": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
    }
    print(f"single-database apply: median {single:.2f}s  ({', '.join(f'{s:.2f}' for s in singles)})")
    print(f"fleet apply, {report['databases']} databases on {len(clusters)} clusters, parallel "
          f"{args.parallel}: median {fleet:.2f}s  ({', '.join(f'{s:.2f}' for s in fleets)})")
    for what, seconds in cpu.items():
        print(f"CPU (user + system), {what}: median {statistics.median(seconds):.2f}s")
    print(f"ratio {ratio:.2f} (target <= {TARGET_RATIO}): {'met' if report['met'] else 'NOT met'}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
