"""Time `dbops plan` on a database with M applied migrations and S server settings declared,
beside `alembic current` on the equivalent alembic project; check that plan does not import pyinfra.

What it measures. One throwaway PostgreSQL cluster (dbops.local, server defaults, stopped and
removed at the end) holds two databases: one with M one-table migrations applied by
`dbops migrate up bench --yes` (after `dbops migrate hash`), one with the same M revisions applied
by `alembic upgrade head`. The projects, the databases and the checks after applying them are
bench_migrations.py's (its status set-up, reused here), as are the environment, the bytecode cache
and the timing: wall clock of the whole command run as a subprocess, Python start-up included,
with this interpreter and a warm bytecode cache in a private PYTHONPYCACHEPREFIX.

The dbops plan `plans/bench.yaml` then gets `pool: {instances: 1, min_size: 1, max_size: 4}` and
S real server settings under `settings:`: those pg_settings lists with context user, superuser or
sighup (never internal or postmaster) and vartype integer, real, bool or enum, outside the
developer and preset options, the first S by name. Each is declared at its current value as
PostgreSQL spells it (`current_setting(name)`: 4MB, 200ms, on), except C of them (default: every
other one, S/2) which are given another valid value (a boolean flipped, another enum value, a
number moved within its range), so the plan shows C setting changes, as after a real edit.

Timed, alternating which goes first, each after a CHECKPOINT: `python -m dbops plan bench` (cwd:
the dbops project) and `python -m alembic current` (cwd: the alembic project); both were run
once, untimed, beforehand (warm-up; for dbops it also fills the plan-validation cache, as any
earlier run of dbops on the same plan does). Every run is checked: dbops plan exits 0 and prints
its closing line with C changes ("Plan: 0 to add, C to change, ..."; "No changes. ..." when C is
0); alembic current prints the head revision. Then `python -X importtime -m dbops plan bench` runs
once: pyinfra must not appear among its imports (only `apply` needs it).

The issue's target: dbops plan under half of `alembic current`. Results: a table on stdout and
bench/results/plan.json (or --output). The exit status is 1 when a run failed or a check did not
hold (a missed time target is reported, not an error).

Run from the project root (PostgreSQL server binaries and alembic needed):

    python3 bench/bench_plan.py [--count 1000] [--settings 200] [--changed 100] [--repeat 5]
        [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from math import inf
from pathlib import Path
from typing import Any

import bench_migrations as bm  # bench/ is on sys.path when this file runs as a script

from dbops.changes import Summary
from dbops.local import HOST, Cluster, free_port
from dbops.render import NO_CHANGES

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "plan.json"
TARGET_VS_ALEMBIC = 0.5
POOL = {"instances": 1, "min_size": 1, "max_size": 4}
NAME_PATTERN = "^[a-z_][a-z0-9_.]*$"  # the plan schema's settings.propertyNames
SETTINGS_QUERY = """
    SELECT name, current_setting(name), setting, unit, vartype, min_val, max_val,
           coalesce(enumvals, '{}')
    FROM pg_settings
    WHERE context IN ('user', 'superuser', 'sighup')
      AND vartype IN ('integer', 'real', 'bool', 'enum')
      AND category NOT IN ('Developer Options', 'Preset Options')
      AND source NOT IN ('override', 'client', 'session', 'user', 'database')
      AND name ~ %s
    ORDER BY name
    LIMIT %s"""
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")
TOP_IMPORTS = 12


@dataclass(frozen=True)
class SettingRow:
    """One pg_settings row: what is needed to spell its current value and another valid one."""

    name: str
    shown: str  # current_setting(name): the value as PostgreSQL spells it, unit included
    raw: str  # pg_settings.setting: the value in the setting's unit
    unit: str | None  # pg_settings.unit: ms, s, min, kB, MB, 8kB, ...
    vartype: str
    min_val: str | None
    max_val: str | None
    enumvals: tuple[str, ...]


@dataclass(frozen=True)
class Declared:
    """A setting as the plan declares it."""

    name: str
    value: str
    current: str
    changed: bool


@dataclass(frozen=True)
class ImportCheck:
    modules: list[str]
    pyinfra_imported: bool
    total_us: int
    top_cumulative: list[dict[str, Any]]
    top_self: list[dict[str, Any]]
    by_package: list[dict[str, Any]]


def read_settings(server: bm.Server, count: int) -> list[SettingRow]:
    with server.connect() as conn:
        rows = conn.execute(SETTINGS_QUERY, (NAME_PATTERN, count)).fetchall()
    if len(rows) < count:
        raise bm.ToolFailed(f"only {len(rows)} settable settings in pg_settings, {count} wanted")
    return [SettingRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[7])) for r in rows]


def _spell(value: float, row: SettingRow) -> str:
    """A number as a plan would write it: with the setting's unit when it is a plain one
    (14400s, 8192kB), bare when it is a multiple (8kB pages) or there is none."""
    number = str(int(value)) if row.vartype == "integer" else f"{value:g}"
    plain_unit = row.unit is not None and not row.unit[0].isdigit()
    return f"{number}{row.unit}" if plain_unit else number


def other_value(row: SettingRow) -> str:
    """Another value PostgreSQL accepts for the setting: a boolean flipped, the first other enum
    value, a number doubled (or halved, or moved by one, within the setting's range)."""
    if row.vartype == "bool":
        return "off" if row.shown == "on" else "on"
    if row.vartype == "enum":
        others = [v for v in row.enumvals if v.lower() != row.shown.lower()]
        if not others:
            raise bm.ToolFailed(f"{row.name}: no other enum value than {row.shown}")
        return others[0]
    current = float(row.raw)
    low = float(row.min_val) if row.min_val is not None else -inf
    high = float(row.max_val) if row.max_val is not None else inf
    integer = row.vartype == "integer"
    for moved in (current * 2, current / 2, current + 1, current - 1):
        candidate = float(int(moved)) if integer else moved
        if low <= candidate <= high and candidate != current:
            return _spell(candidate, row)
    raise bm.ToolFailed(f"{row.name}: no other value in {row.min_val} .. {row.max_val}")


def is_changed(index: int, total: int, changed: int) -> bool:
    """Spread `changed` of `total` evenly: every other one when changed is half of total."""
    return (index + 1) * changed // total != index * changed // total


def declare(rows: Sequence[SettingRow], changed: int) -> list[Declared]:
    return [
        Declared(row.name, other_value(row) if flip else row.shown, row.shown, flip)
        for i, row in enumerate(rows)
        for flip in [is_changed(i, len(rows), changed)]
    ]


def plan_sections(settings: Sequence[Declared]) -> str:
    """The YAML appended to the generated plan; every value a double-quoted string (valid YAML,
    and `on` stays the string PostgreSQL spells, not YAML 1.1's boolean)."""
    pool = ", ".join(f"{key}: {value}" for key, value in POOL.items())
    lines = [f"pool: {{ {pool} }}", "settings:"]
    lines += [f'  {s.name}: "{s.value}"' for s in settings]
    return "\n".join(lines) + "\n"


def closing_line(changed: int) -> str:
    """What `dbops plan` must print: the summary line, or the no-changes line."""
    return str(Summary(add=0, change=changed, remove=0, restart=0)) if changed else NO_CHANGES


def check_plan_output(result: subprocess.CompletedProcess[str], changed: int) -> None:
    expected = closing_line(changed)
    lines = [line.strip() for line in result.stdout.splitlines()]
    if expected not in lines:
        raise bm.ToolFailed(f"`dbops plan` did not print {expected!r}", bm.tail(result.stdout))


def check_alembic_output(result: subprocess.CompletedProcess[str], head: str) -> None:
    if head not in result.stdout:
        raise bm.ToolFailed(f"`alembic current` did not print {head}", bm.tail(result.stdout))


def setup_alembic(server: bm.Server, workdir: Path, count: int) -> bm.Command:
    """`count` revisions applied and checked; `alembic current` run once (the warm-up)."""
    return bm.status_command(server, tool("alembic"), workdir, count)


def setup_dbops(
    server: bm.Server, workdir: Path, count: int, settings: Sequence[Declared]
) -> bm.Command:
    """`count` migrations applied and checked, the plan extended; `dbops plan` run once."""
    status = bm.status_command(server, tool("dbops"), workdir, count)
    plan_file = status.cwd / "plans" / "bench.yaml"
    with plan_file.open("a", encoding="utf-8") as out:
        out.write(plan_sections(settings))
    command = bm.Command(bm.python_tool("dbops", "plan", "bench"), status.cwd)
    check_plan_output(bm.run(command), sum(s.changed for s in settings))
    return command


def tool(label: str) -> bm.Tool:
    return next(t for t in bm.TOOLS if t.label == label)


@dataclass(frozen=True)
class Timed:
    """A command to time, and the check each of its runs must pass."""

    timings: bm.Timings
    command: bm.Command
    expect: str
    is_dbops: bool


def run_checked(server: bm.Server, item: Timed, changed: int) -> float:
    server.checkpoint()
    seconds, result = bm.timed(item.command)
    if item.is_dbops:
        check_plan_output(result, changed)
    else:
        check_alembic_output(result, item.expect)
    return seconds


def measure(server: bm.Server, items: Sequence[Timed], repeat: int, changed: int) -> None:
    """Time each command `repeat` times, alternating which goes first; check every run."""
    for round_ in range(repeat):
        for item in items if round_ % 2 == 0 else items[::-1]:
            if item.timings.error is not None:
                continue
            try:
                seconds = run_checked(server, item, changed)
            except bm.ToolFailed as exc:
                bm.record_failure(item.timings, exc)
                continue
            item.timings.seconds.append(seconds)
            print(f"  {bm.short(item.command):20} run {round_ + 1}: {seconds:6.2f}s", flush=True)


def parse_importtime(stderr: str) -> ImportCheck:
    """`-X importtime` lines: self and cumulative microseconds, the module, nested by indent."""
    entries = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            entries.append((module, int(self_us), int(cumulative_us), len(indent)))
    top_level = min((depth for *_, depth in entries), default=1)
    roots = [e for e in entries if e[3] == top_level]

    def row(entry: tuple[str, int, int, int]) -> dict[str, Any]:
        return {"module": entry[0], "self_ms": entry[1] / 1000, "cumulative_ms": entry[2] / 1000}

    packages: dict[str, int] = {}
    for module, self_us, *_ in entries:
        top = module.split(".")[0]
        packages[top] = packages.get(top, 0) + self_us
    modules = [e[0] for e in entries]
    return ImportCheck(
        modules=modules,
        pyinfra_imported=any(m == "pyinfra" or m.startswith("pyinfra.") for m in modules),
        total_us=sum(e[2] for e in roots),
        top_cumulative=[row(e) for e in sorted(roots, key=lambda e: -e[2])[:TOP_IMPORTS]],
        top_self=[row(e) for e in sorted(entries, key=lambda e: -e[1])[:TOP_IMPORTS]],
        by_package=[
            {"package": name, "self_ms": us / 1000}
            for name, us in sorted(packages.items(), key=lambda item: -item[1])[:TOP_IMPORTS]
        ],
    )


def check_imports(command: bm.Command, changed: int) -> ImportCheck:
    """Run `python -X importtime -m dbops plan ...` once; its stderr lists every import."""
    argv = [command.argv[0], "-X", "importtime", *command.argv[1:]]
    result = bm.run(bm.Command(argv, command.cwd))
    check_plan_output(result, changed)
    found = parse_importtime(result.stderr)
    if not found.modules:
        raise bm.ToolFailed("`-X importtime` listed no imports", bm.tail(result.stderr))
    return found


def import_report(found: ImportCheck | None, error: str | None) -> dict[str, Any]:
    if found is None:
        return {"pyinfra_imported": None, "error": error}
    return {
        "pyinfra_imported": found.pyinfra_imported,
        "modules_imported": len(found.modules),
        "top_level_imports_ms": found.total_us / 1000,
        "top_cumulative": found.top_cumulative,
        "top_self": found.top_self,
        "by_package": found.by_package,
        "error": None,
    }


def settings_report(settings: Sequence[Declared]) -> dict[str, Any]:
    return {
        "declared": len(settings),
        "equal": sum(not s.changed for s in settings),
        "different": sum(s.changed for s in settings),
        "values": {s.name: {"plan": s.value, "current": s.current} for s in settings},
    }


def all_versions(server: bm.Server) -> dict[str, str]:
    found = bm.versions(server)
    try:
        found["pyinfra"] = metadata.version("pyinfra")
    except metadata.PackageNotFoundError:
        found["pyinfra"] = "not installed"
    return found


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def time_commands(
    server: bm.Server, args: argparse.Namespace, workdir: Path, settings: Sequence[Declared]
) -> tuple[list[bm.Timings], ImportCheck | None, str | None]:
    """Set up both projects, time them, run the import check; failures are recorded, not raised."""
    alembic = bm.Timings("alembic current")
    dbops = bm.Timings("dbops plan")
    items: list[Timed] = []
    setups: list[tuple[bm.Timings, Callable[[], bm.Command]]] = [
        (alembic, lambda: setup_alembic(server, workdir, args.count)),
        (dbops, lambda: setup_dbops(server, workdir, args.count, settings)),
    ]
    for timings, make in setups:
        try:
            command = make()
        except bm.ToolFailed as exc:
            bm.record_failure(timings, exc)
            continue
        timings.command = str(command)
        items.append(Timed(timings, command, bm.alembic_revision(args.count), timings is dbops))
    print(f"timing, {args.repeat} runs each, alternating", flush=True)
    measure(server, items, args.repeat, args.changed)
    found, error = None, None
    dbops_item = next((item for item in items if item.is_dbops), None)
    if dbops_item is None:
        error = "dbops plan was not set up"
    else:
        try:
            found = check_imports(dbops_item.command, args.changed)
        except bm.ToolFailed as exc:
            error = str(exc)
            print(f"\nFAILED import check: {exc}\n  {exc.detail}", file=sys.stderr)
    return [alembic, dbops], found, error


def run_benchmark(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Start the cluster in `base`, set up, measure, stop it; return the report."""
    load_before = os.getloadavg()
    cluster = Cluster(base / "data", port=free_port())
    try:
        cluster.up()
        server = bm.Server(cluster)
        workdir = base / "projects"
        workdir.mkdir()
        print(f"PostgreSQL {server.version()} on {HOST}:{server.port}; applying "
              f"{args.count} migrations with alembic and dbops (untimed)", flush=True)  # fmt: skip
        settings = declare(read_settings(server, args.settings), args.changed)
        timings, found, import_error = time_commands(server, args, workdir, settings)
        return build_report(args, timings, found, import_error, settings) | {
            "machine": machine(load_before),
            "versions": all_versions(server),
        }
    finally:
        cluster.down()


def build_report(
    args: argparse.Namespace,
    timings: Sequence[bm.Timings],
    found: ImportCheck | None,
    import_error: str | None,
    settings: Sequence[Declared],
) -> dict[str, Any]:
    alembic, dbops = timings
    measured = bm.ratio(dbops.median, alembic.median)
    imports = import_report(found, import_error)
    pyinfra = imports["pyinfra_imported"]
    return {
        "benchmark": "plan",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            "count": args.count,
            "settings": args.settings,
            "changed": args.changed,
            "repeat": args.repeat,
            "pool": POOL,
        },
        "runs": [bm.summary(t) for t in timings],
        "ratio_dbops_vs_alembic": measured,
        "imports": imports,
        "settings": settings_report(settings),
        "targets": [
            bm.Target("plan < half of alembic current", TARGET_VS_ALEMBIC, False).judge(measured),
            {"target": "pyinfra not imported by plan", "pyinfra_imported": pyinfra,
             "met": None if pyinfra is None else not pyinfra},
        ],
    }  # fmt: skip


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]


def print_report(report: dict[str, Any]) -> None:
    params, declared = report["parameters"], report["settings"]
    print(
        f"\n`dbops plan` with {params['count']} applied migrations and {declared['declared']} "
        f"settings declared ({declared['equal']} at their current value, {declared['different']} "
        f"different); seconds of wall clock, median and min of {params['repeat']}"
    )
    print(f"{'command':20} {'median':>8} {'min':>8}")
    for row in report["runs"]:
        print(f"{bm.short(row['command'] or row['tool']):20} {bm.timing_columns(row)}")
    time_target, import_target = report["targets"]
    print(f"dbops / alembic: {bm.fmt(report['ratio_dbops_vs_alembic'], '.2f')}  "
          f"(target < {TARGET_VS_ALEMBIC}: {verdict(time_target['met'])})")  # fmt: skip
    imported = import_target["pyinfra_imported"]
    shown = {True: "YES", False: "no", None: "not checked"}[imported]
    print(f"pyinfra imported by plan: {shown}  ({verdict(import_target['met'])})")
    imports = report["imports"]
    if imports.get("by_package"):
        print(f"\nimports of `dbops plan` by package (-X importtime, one run, inflated by the "
              f"tracing; all: {imports['top_level_imports_ms']:.0f} ms)")  # fmt: skip
        for row in imports["by_package"][:8]:
            print(f"  {row['package']:24} {row['self_ms']:8.1f} ms")


def failures(report: dict[str, Any]) -> list[str]:
    failed = [row["command"] or row["tool"] for row in report["runs"] if row["failed"]]
    imports = report["imports"]
    if imports["pyinfra_imported"] is None:
        failed.append(f"import check: {imports['error']}")
    elif imports["pyinfra_imported"]:
        failed.append("pyinfra imported by plan")
    return failed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="migrations applied")
    parser.add_argument("--settings", type=int, default=200, help="settings declared in the plan")
    parser.add_argument(
        "--changed", type=int, default=None,
        help="declared settings given another value than the current one (default: half)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="the JSON results file")
    args = parser.parse_args(argv)
    if args.changed is None:
        args.changed = args.settings // 2
    if args.count < 1 or args.repeat < 1 or args.settings < 0:
        parser.error("--count and --repeat must be positive, --settings not negative")
    if not 0 <= args.changed <= args.settings:
        parser.error("--changed must be between 0 and --settings")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dbops-bench-plan-"))
    base.chmod(0o755)  # the server runs as another OS user and must reach its data directory
    bm.prepare_environment(base / "pycache")
    try:
        report = run_benchmark(args, base)
    except bm.ToolFailed as exc:
        print(f"FAILED: {exc}\n  {exc.detail}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_report(report)
    bm.write_results(report, args.output)
    print(f"\nresults written to {args.output}")
    failed = failures(report)
    if failed:
        print(f"failed: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
