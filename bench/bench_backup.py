"""Back up and restore a ~200 MB TaskMaster database with dbops and with plain pg_dump / pg_restore,
side by side.

What it measures. One throwaway PostgreSQL cluster (started here with dbops.local on a free port,
server defaults, durability untouched, stopped and removed at the end) holds one TaskMaster
database: the repository's migrations applied by dbops, then pipelines, runs, tasks, task
contexts and task logs made with generate_series until it is about --size-mb large. A CHECKPOINT
precedes every timed step; every step runs once untimed first (the first reads of freshly loaded
rows set their hint bits, writing every page); the order of the tools rotates between repeats.
Times are wall clock; the page cache is warm for every tool alike.

  create, custom     `pg_dump -Fc -f FILE` against `BackupManager.create()` with format custom:
                     exported snapshot, row counts of every table in that snapshot, pg_dump,
                     fsync, SHA-256 of every file, pg_restore --list, manifest, rename, and the
                     policy's checksum verification (verify.checksums: true). Also as a command
                     (a new Python process calling the API, start-up included).
  create, directory  `pg_dump -Fd -j 2` against dbops with format directory, jobs 2; and both
                     against custom format.
  restore            `createdb` + `pg_restore` of the custom archive (plain, and in one
                     transaction with --exit-on-error as dbops runs it) against
                     `BackupManager.restore(id)` into a new database (checksums first, row counts
                     compared after); `pg_restore -j 2` of the directory archive against dbops
                     with jobs 2; and the restore time `verify --restore-test` records.

  pgbackrest         the same database, archiving its WAL into a pgBackRest repository (engine
                     pgbackrest, lz4, 1 process): `dbops backup create --type full` (pgbackrest
                     backup) against pg_dump -Fc, and a restore drill (`verify --restore-test`:
                     pgbackrest restore into a new data directory, start, replay to the end of
                     the archive, promoted) against pg_restore.
  data-loss window   a dump and a full pgBackRest backup, then one-row transactions for
                     --crash-seconds, then a simulated crash (pg_ctl stop -m immediate): the rows
                     the last dump lacks against the rows a point-in-time restore to the end of
                     the archive lacks (what archive_timeout, 5s here, leaves unarchived).

Every dbops backup is checked (complete manifest, row counts equal to the database's); every
restore is checked (row counts equal to the source's). Results: a table of medians and ratios on
stdout, and bench/results/backup.json (or --output).
Targets: dbops create at most 1.1 x pg_dump -Fc (the issue's).

Run from the project root (PostgreSQL server binaries needed):

    python3 bench/bench_backup.py [--size-mb 200] [--repeat 3] [--warm-up 1] [--crash-seconds 20]
                                  [--output FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbops.backup import BackupManager
from dbops.backup import database as backup_database
from dbops.local import HOST, SUPERUSER, Cluster, free_port
from dbops.migrate.engine import MigrationEngine

REPO = Path(__file__).resolve().parents[1]
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "backup.json"
DATABASE = "taskmaster_bench"
TARGET_CREATE_VS_PG_DUMP = 1.1
PLAN = """apiVersion: dbops/v1
environment: {env}
database: {{ host: {host}, port: {port}, name: {name}, user: {user}, sslmode: disable }}
pool: {{ instances: 1, min_size: 1, max_size: 4 }}
migrations: {{ rehearse: never }}
backup:
  directory: backups/{env}
  format: {format}
  jobs: {jobs}
  retention: {{ keep_last: 100, max_age: 30d }}
  verify: {{ checksums: true, restore_test: never }}
"""
PITR_PLAN = """apiVersion: dbops/v1
environment: bench-pitr
database: {{ host: {host}, port: {port}, name: {name}, user: {user}, sslmode: disable }}
pool: {{ instances: 1, min_size: 1, max_size: 4 }}
migrations: {{ rehearse: never }}
backup:
  directory: backups/bench-pitr
  engine: pgbackrest
  pgbackrest:
    repository: {base}/repo
    config: {base}/pgbackrest.conf
    stanza: bench
    compress: lz4
    process_max: 1
    archive_timeout: 5s
    retention: {{ full: 2 }}
"""
# Rows per unit of scale; one unit is about 3.4 MB of TaskMaster data with its indexes.
SEED = """
INSERT INTO pipelines (name, repository)
  SELECT 'pipeline-' || g, 'git@example.com:team/repo-' || g FROM generate_series(1, 100) g;
INSERT INTO pipeline_runs (pipeline_id, status, trigger, commit_sha, started_at, finished_at)
  SELECT 1 + g % 100, (ARRAY['pending','running','succeeded','failed'])[1 + g % 4],
         (ARRAY['push','pull_request','schedule','manual'])[1 + g % 4], md5(g::text) || 'abcdef01',
         timestamptz '2025-01-01' + g * interval '1 second',
         timestamptz '2025-01-01' + g * interval '1 second' + interval '90 seconds'
  FROM generate_series(1, {runs}) g;
INSERT INTO tasks (pipeline_id, run_id, name, status, attempt, priority)
  SELECT 1 + g % 100, 1 + g % {runs}, 'build-step-' || (g % 37) || '-' || g,
         (ARRAY['pending','queued','running','succeeded','failed'])[1 + g % 5], g % 3, g % 5
  FROM generate_series(1, {tasks}) g;
INSERT INTO task_contexts (task_id, key, value)
  SELECT g, 'env', jsonb_build_object('node', 'runner-' || g % 50, 'sha', md5(g::text))
  FROM generate_series(1, {tasks}) g;
INSERT INTO task_logs (task_id, level, message)
  SELECT 1 + g % {tasks}, (ARRAY['debug','info','warn','error'])[1 + g % 4],
         'step ' || g % 97 || ' finished: ' || md5(g::text)
  FROM generate_series(1, {logs}) g;
"""
ROWS_PER_UNIT = {"runs": 1_000, "tasks": 5_000, "logs": 10_000}


def connect(port: int, dbname: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(host=HOST, port=port, user=SUPERUSER, dbname=dbname, autocommit=True)


def checkpoint(port: int) -> None:
    with connect(port) as conn:
        conn.execute("CHECKPOINT")


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def run(argv: Sequence[str], **kwargs: Any) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")


def tool(bindir: Path, name: str) -> str:
    return str(bindir / name)


def database_size(port: int) -> int:
    with connect(port, DATABASE) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def build(port: int, project: Path, size_mb: int) -> dict[str, Any]:
    """The TaskMaster database, about `size_mb` large."""
    with connect(port) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    MigrationEngine.from_plan("bench-custom", root=project).run_migrations()
    units = max(1, round(size_mb / 3.4))
    rows = {k: v * units for k, v in ROWS_PER_UNIT.items()}
    start = time.perf_counter()
    with connect(port, DATABASE) as conn:
        conn.execute(SEED.format(**rows))
        conn.execute("VACUUM ANALYZE")
    size = database_size(port)
    print(f"built {DATABASE}: {size / 1024**2:.0f} MB in {time.perf_counter() - start:.0f}s "
          f"({rows['tasks']:,} tasks, {rows['logs']:,} task logs)")
    return {"bytes": size, "rows": rows}


def live_counts(port: int) -> dict[str, int]:
    with connect(port, DATABASE) as conn:
        return backup_database.count_rows(conn)


def write_project(base: Path, port: int) -> Path:
    project = base / "project"
    (project / "plans").mkdir(parents=True)
    shutil.copytree(REPO / "migrations", project / "migrations")
    for env, fmt, jobs in (("bench-custom", "custom", 1), ("bench-directory", "directory", 2)):
        (project / "plans" / f"{env}.yaml").write_text(PLAN.format(
            env=env, host=HOST, port=port, name=DATABASE, user=SUPERUSER, format=fmt, jobs=jobs))
    (project / "plans" / "bench-pitr.yaml").write_text(PITR_PLAN.format(
        host=HOST, port=port, name=DATABASE, user=SUPERUSER, base=base))
    return project


def pitr_settings(base: Path) -> dict[str, str]:
    """The cluster archives into the bench's stanza from its first start (as apply would set)."""
    return {"archive_mode": "on", "archive_timeout": "5s",
            "archive_command": f"pgbackrest --config={base}/pgbackrest.conf --stanza=bench "
                               "archive-push %p"}


def measure_pitr(bench: Bench, project: Path, args: argparse.Namespace) -> dict[str, Any]:
    """pgBackRest beside pg_dump: full backup time, restore drill time, and the rows each loses
    after a simulated crash."""
    from dbops.backup.pitr import PgBackRestBackups
    from dbops.config.load import load_plan

    engine = PgBackRestBackups(load_plan("bench-pitr", root=project))
    engine.setup()
    print("pgbackrest")
    backup = summary(measure(bench, {
        "pg_dump -Fc": lambda: bench.pg_dump("custom"),
        "dbops create --type full (pgbackrest)": lambda: lambda: engine.create("full", "bench"),
    }, args.repeat, args.warm_up))
    newest = engine.info().newest("full")
    drills = [engine.restore(None, None, drill=True) for _ in range(args.repeat)]
    drill_seconds = [d.seconds for d in drills]
    with connect(bench.port, DATABASE) as conn:
        conn.execute("CREATE TABLE bench_journal (id bigserial PRIMARY KEY, at timestamptz"
                     " NOT NULL DEFAULT clock_timestamp())")
    dump = bench.fresh("crash-dump")
    run([tool(bench.bindir, "pg_dump"), *bench.server, "-d", DATABASE, "-Fc", "-f", str(dump)])
    engine.create("full", "before the crash")
    written = 0
    deadline = time.monotonic() + args.crash_seconds
    with connect(bench.port, DATABASE) as conn:
        while time.monotonic() < deadline:
            conn.execute("INSERT INTO bench_journal DEFAULT VALUES")
            written += 1
            time.sleep(0.01)
    crash = datetime.now(UTC)
    run(["runuser", "-u", "postgres", "--", tool(bench.bindir, "pg_ctl"), "-D",
         str(bench.base / "data"), "-m", "immediate", "stop"] if os.geteuid() == 0 else
        [tool(bench.bindir, "pg_ctl"), "-D", str(bench.base / "data"), "-m", "immediate", "stop"])
    into = bench.base / "pitr-after-crash"
    recovered = _restore_after_crash(engine, into)
    with connect(recovered.port, DATABASE) as conn:
        row = conn.execute("SELECT count(*), max(at) FROM bench_journal").fetchone()
    kept, last = (int(row[0]), row[1]) if row else (0, None)
    Cluster(into).down()
    return {
        "backup": backup,
        "backup_size": {"data": newest.size if newest else None,
                        "repository": newest.repository_size if newest else None},
        "restore_drill": {"median": statistics.median(drill_seconds), "min": min(drill_seconds),
                          "runs": drill_seconds,
                          "wal_bytes": [d.wal_bytes for d in drills]},
        "crash": {"seconds_of_writes": args.crash_seconds, "rows_written": written,
                  "rows_lost_with_last_dump": written,
                  "rows_lost_with_pitr": written - kept,
                  "pitr_recovered_to": last.isoformat() if last else None,
                  "pitr_window_seconds": (crash - last).total_seconds() if last else None,
                  "pitr_restore_seconds": recovered.seconds},
    }


def _restore_after_crash(engine: Any, into: Path) -> Any:
    """The point-in-time restore after the crash: the live server is down, so the engine's own
    restore (which reads the live server's facts first) cannot run; pgBackRest restores from
    the repository alone, as it would on a replacement host."""
    from dbops.backup import pitr
    from dbops.backup.pgbackrest import Runner, os_account

    account = os_account(engine.plan.root.parent / "data")
    pitr.prepare_repository(into, account.pw_uid, account.pw_gid, mode=0o700)
    start = time.perf_counter()
    Runner(engine.policy, account).restore(into, target_time=None)
    port = free_port()
    log = into / "dbops-restore.log"
    pitr._pg_ctl(account.pw_name, into, ["-l", str(log), "-o",
                 f"-c port={port} -c listen_addresses=127.0.0.1 "
                 f"-c unix_socket_directories={into} -c archive_mode=off", "start"])
    from dataclasses import replace

    from dbops.connect import endpoint

    ep = replace(endpoint(engine.plan), host=HOST, port=port)
    recovered_to, wal = pitr._wait_promoted(ep, log)
    return pitr.PitrResult(engine.policy.stanza, None, into, port, None, recovered_to, wal,
                           time.perf_counter() - start, running=True)


class Bench:
    def __init__(self, base: Path, port: int, bindir: Path, project: Path) -> None:
        self.base, self.port, self.bindir, self.project = base, port, bindir, project
        self.server = ["-h", HOST, "-p", str(port), "-U", SUPERUSER]
        self.peer = base / "peer"
        self.peer.mkdir()
        self.counts = live_counts(port)
        self.custom = BackupManager.from_plan("bench-custom", root=project)
        self.directory = BackupManager.from_plan("bench-directory", root=project)
        self.serial = 0
        self.restored: list[str] = []

    def fresh(self, label: str) -> Path:
        self.serial += 1
        return self.peer / f"{label}-{self.serial}"

    def pg_dump(self, fmt: str, jobs: int = 1) -> Callable[[], object]:
        out = self.fresh(fmt)
        args = [tool(self.bindir, "pg_dump"), *self.server, "-d", DATABASE, "-F", fmt[0],
                "-f", str(out)]
        if jobs > 1:
            args += ["-j", str(jobs)]
        return lambda: run(args)

    def dbops_create(self, manager: BackupManager) -> Callable[[], object]:
        def step() -> None:
            manifest = manager.create()
            self.check_counts(manifest.row_counts, f"backup {manifest.id}")
        return step

    def dbops_command(self, env: str) -> Callable[[], object]:
        code = (f"from dbops.backup import BackupManager; "
                f"BackupManager.from_plan({env!r}).create()")
        return lambda: run([sys.executable, "-c", code], cwd=self.project)

    def check_counts(self, counts: dict[str, int] | Any, what: str) -> None:
        if _data(dict(counts)) != _data(self.counts):
            raise RuntimeError(f"{what}: row counts differ from the database's")

    def pg_restore(self, archive: Path, *, jobs: int = 1, one_transaction: bool = False,
                   ) -> Callable[[], object]:
        name = f"peer_restore_{self.serial}"
        self.serial += 1

        def step() -> None:
            run([tool(self.bindir, "createdb"), *self.server, "-T", "template0", name])
            args = [tool(self.bindir, "pg_restore"), *self.server, "-d", name]
            if jobs > 1:
                args += ["-j", str(jobs)]
            if one_transaction:
                args += ["--single-transaction", "--exit-on-error"]
            run([*args, str(archive)])
        self.restored.append(name)
        return step

    def dbops_restore(self, manager: BackupManager, backup_id: str) -> Callable[[], object]:
        def step() -> None:
            result = manager.restore(backup_id)
            self.restored.append(result.database)
        return step

    def drop_restored(self) -> None:
        """Check every restored database's row counts against the source's, then drop it."""
        for name in self.restored:
            if _data(_counts_of(self.port, name)) != _data(self.counts):
                raise RuntimeError(f"restored database {name}: row counts differ")
        with connect(self.port) as conn:
            for name in self.restored:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        self.restored.clear()


def _data(counts: dict[str, int]) -> dict[str, int]:
    """The application's tables: dbops's own (its backup catalog, its audit) grow with every
    backup the bench takes."""
    return {name: rows for name, rows in counts.items() if not name.startswith("dbops.")}


def _counts_of(port: int, name: str) -> dict[str, int]:
    with connect(port, name) as conn:
        return backup_database.count_rows(conn)


def measure(bench: Bench, steps: dict[str, Callable[[], Callable[[], object]]],
            repeat: int, warm_up: int) -> dict[str, list[float]]:
    """Each step `warm_up` times untimed (the first reads of fresh data set hint bits and
    fill the page cache), then `repeat` times, the order rotated every repeat; a CHECKPOINT
    before each."""
    for _ in range(warm_up):
        for label, make in steps.items():
            checkpoint(bench.port)
            print(f"  {label:44} {timed(make()):7.2f}s (warm-up)")
        bench.drop_restored()
    times: dict[str, list[float]] = {label: [] for label in steps}
    labels = list(steps)
    for n in range(repeat):
        for label in labels[n % len(labels):] + labels[:n % len(labels)]:
            step = steps[label]()
            checkpoint(bench.port)
            seconds = timed(step)
            times[label].append(seconds)
            print(f"  {label:44} {seconds:7.2f}s")
        bench.drop_restored()
    return times


def components(bench: Bench) -> dict[str, float]:
    """What dbops adds to pg_dump, each part timed alone on the newest custom backup."""
    backup = bench.custom.list()[-1]
    with connect(bench.port, DATABASE) as conn:
        counting = timed(lambda: backup_database.count_rows(conn))
    def sha256() -> None:
        with backup.archive.open("rb") as handle:
            hashlib.file_digest(handle, "sha256")

    hashing = timed(sha256)
    listing = timed(lambda: run([tool(bench.bindir, "pg_restore"), "--list", str(backup.archive)]))
    verifying = timed(lambda: bench.custom.verify(backup.id))
    return {"row_counts_alone": counting, "sha256_of_archive": hashing,
            "pg_restore_list": listing, "verify_checksums": verifying,
            "archive_bytes": float(backup.size)}


def summary(times: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    return {label: {"seconds": [round(s, 3) for s in values],
                    "median": statistics.median(values), "min": min(values)}
            for label, values in times.items()}


def ratio(rows: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, float]:
    """a / b on medians, and on minimums (the runs least disturbed by anything else running on
    the machine)."""
    return {"median": float(rows[a]["median"] / rows[b]["median"]),
            "min": float(rows[a]["min"] / rows[b]["min"])}


def run_benchmark(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    load_before = os.getloadavg()
    cluster = Cluster(base / "data", port=free_port(), settings=pitr_settings(base))
    try:
        cluster.up()
        port = cluster.port
        project = write_project(base, port)
        with connect(port) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        print(f"PostgreSQL {version} on {HOST}:{port}")
        database = build(port, project, args.size_mb)
        from dbops.backup.dump import tool_path

        bindir = tool_path("pg_dump").parent
        bench = Bench(base, port, bindir, project)
        print("create")
        create = summary(measure(bench, {
            "pg_dump -Fc": lambda: bench.pg_dump("custom"),
            "dbops create (custom)": lambda: bench.dbops_create(bench.custom),
            "dbops create (custom), as a command": lambda: bench.dbops_command("bench-custom"),
            "pg_dump -Fd -j 2": lambda: bench.pg_dump("directory", 2),
            "dbops create (directory, 2 jobs)": lambda: bench.dbops_create(bench.directory),
        }, args.repeat, args.warm_up))
        parts = components(bench)
        custom_archive = sorted(bench.peer.glob("custom-*"))[-1]
        directory_archive = sorted(bench.peer.glob("directory-*"))[-1]
        custom_id = bench.custom.list()[-1].id
        directory_id = bench.directory.list()[-1].id
        print("restore")
        restore = summary(measure(bench, {
            "pg_restore (custom)": lambda: bench.pg_restore(custom_archive),
            "pg_restore -1 --exit-on-error (custom)":
                lambda: bench.pg_restore(custom_archive, one_transaction=True),
            "dbops restore (custom)": lambda: bench.dbops_restore(bench.custom, custom_id),
            "pg_restore -j 2 (directory)": lambda: bench.pg_restore(directory_archive, jobs=2),
            "dbops restore (directory, 2 jobs)":
                lambda: bench.dbops_restore(bench.directory, directory_id),
        }, args.repeat, args.warm_up))
        verified = bench.custom.verify(custom_id, restore_test=True)
        pitr = measure_pitr(bench, project, args)  # last: it ends with the simulated crash
        ratios = {
            "dbops create / pg_dump -Fc": ratio(create, "dbops create (custom)", "pg_dump -Fc"),
            "dbops create command / pg_dump -Fc":
                ratio(create, "dbops create (custom), as a command", "pg_dump -Fc"),
            "pg_dump -Fd -j 2 / pg_dump -Fc": ratio(create, "pg_dump -Fd -j 2", "pg_dump -Fc"),
            "dbops create directory 2 jobs / dbops create custom":
                ratio(create, "dbops create (directory, 2 jobs)", "dbops create (custom)"),
            "dbops create directory 2 jobs / pg_dump -Fd -j 2":
                ratio(create, "dbops create (directory, 2 jobs)", "pg_dump -Fd -j 2"),
            "dbops restore / pg_restore (custom)":
                ratio(restore, "dbops restore (custom)", "pg_restore (custom)"),
            "dbops restore / pg_restore -1 (custom)":
                ratio(restore, "dbops restore (custom)", "pg_restore -1 --exit-on-error (custom)"),
            "dbops restore / pg_restore -j 2 (directory)":
                ratio(restore, "dbops restore (directory, 2 jobs)", "pg_restore -j 2 (directory)"),
        }
        target = ratios["dbops create / pg_dump -Fc"]
        met = max(target.values()) <= TARGET_CREATE_VS_PG_DUMP
        return {
            "benchmark": "backup",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": {"size_mb": args.size_mb, "repeat": args.repeat,
                           "warm_up": args.warm_up},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "load_average_before": load_before,
                        "load_average_after": os.getloadavg()},
            "versions": {"postgresql": version, "python": platform.python_version(),
                         "pg_dump": subprocess.run([tool(bindir, "pg_dump"), "--version"],
                                                   capture_output=True, text=True).stdout.strip()},
            "database": database,
            "create": create,
            "restore": restore,
            "restore_test": {"restore_seconds": verified.restore_seconds,
                             "tables_compared": verified.tables_compared, "ok": verified.ok},
            "dbops_parts": parts,
            "pgbackrest": pitr,
            "ratios": ratios,
            "targets": [{"target": f"dbops create <= {TARGET_CREATE_VS_PG_DUMP} x pg_dump -Fc",
                         "ratio": target, "met": met}],
        }
    finally:
        cluster.down()


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['database']['bytes'] / 1024**2:.0f} MB TaskMaster database, "
          f"median of {report['parameters']['repeat']}")
    for section in ("create", "restore"):
        print(f"\n{section:46} {'median s':>9} {'min s':>7}")
        for label, row in report[section].items():
            print(f"{label:46} {row['median']:9.2f} {row['min']:7.2f}")
    print(f"\n{'ratios':54} {'median':>6} {'min':>6}")
    for label, value in report["ratios"].items():
        print(f"  {label:52} {value['median']:6.2f} {value['min']:6.2f}")
    parts = report["dbops_parts"]
    print(f"\ndbops's own parts, timed alone: row counts {parts['row_counts_alone']:.2f}s, "
          f"SHA-256 of the {parts['archive_bytes'] / 1024**2:.0f} MB archive "
          f"{parts['sha256_of_archive']:.2f}s, pg_restore --list {parts['pg_restore_list']:.2f}s, "
          f"verify {parts['verify_checksums']:.2f}s")
    print(f"restore test (verify --restore-test) recorded {report['restore_test']['restore_seconds']:.2f}s")
    pitr = report["pgbackrest"]
    print(f"\n{'pgbackrest':46} {'median s':>9} {'min s':>7}")
    for label, row in pitr["backup"].items():
        print(f"{label:46} {row['median']:9.2f} {row['min']:7.2f}")
    drill = pitr["restore_drill"]
    print(f"{'restore drill (pgbackrest restore + recovery)':46} {drill['median']:9.2f} "
          f"{drill['min']:7.2f}")
    crash = pitr["crash"]
    print(f"crash after {crash['rows_written']} one-row transactions in "
          f"{crash['seconds_of_writes']}s: rows lost with the last dump "
          f"{crash['rows_lost_with_last_dump']}, with PITR {crash['rows_lost_with_pitr']} "
          f"(recovered up to {crash['pitr_recovered_to'] or 'none of them'})")
    for target in report["targets"]:
        print(f"target: {target['target']}: {target['ratio']['median']:.2f} (median), "
              f"{target['ratio']['min']:.2f} (min) {'met' if target['met'] else 'MISSED'}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="database size to build")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool")
    parser.add_argument("--warm-up", type=int, default=1, help="untimed runs per tool first")
    parser.add_argument("--crash-seconds", type=int, default=20,
                        help="seconds of writes before the simulated crash")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the JSON results file")
    args = parser.parse_args(argv)
    if args.size_mb < 2 or args.repeat < 1 or args.warm_up < 0 or \
            not 1 <= args.crash_seconds <= 600:
        parser.error("--size-mb must be at least 2, --repeat positive, --warm-up not negative, "
                     "--crash-seconds 1 to 600")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dbops-bench-backup-"))
    base.chmod(0o755)  # the server runs as another OS user and must reach its data directory
    try:
        report = run_benchmark(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report)
    print(f"\nresults written to {args.output}")
    return 0 if all(t["met"] for t in report["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
