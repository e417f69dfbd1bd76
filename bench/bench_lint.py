"""Score dbops' lint and squawk on the lint corpus (tests/lint_corpus/), side by side.

What it measures. Every case is a SQL file with its expected verdict on a large or a small table
(tests/lint_corpus/cases.yaml). A throwaway PostgreSQL cluster (dbops.local, free port, removed
at the end) gets two databases built by the corpus's schema.sql and fill.sql: `large` (orders,
events_2025 and events_2026 ~74 MB each: over lint.max_blocking 1s of estimated blocking) and
`small` (100 rows). Then

  dbops    `dbops migrate lint FILES --env <size> --format json` (one call per size, the plan's
           zero_downtime off so the SQL is judged as written), with live statistics: a hazard is
           a finding shown at error or warning whose rule is not housekeeping, and it counts
           only under the rule the case expects
  squawk   `squawk --reporter json FILES` (static: no table sizes; the same verdict on both
           sizes): a hazard is any violation except its style and housekeeping rules (SKIPPED)

Per tool: right verdicts, missed hazards, false alarms, and the cases squawk gets wrong. Results
land in bench/results/lint.json (or --output). Run from the project root (PostgreSQL server
binaries and `pip install squawk-cli` needed):

    python3 bench/bench_lint.py [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from lint_corpus.corpus import (  # noqa: E402  (tests/ is put on the path just above)
    Case,
    Size,
    Verdict,
    build,
    cases,
    dbops_verdicts,
    judged,
)

from dbops.local import HOST, SUPERUSER, Cluster, free_port  # noqa: E402

# squawk rules about style or the migration's own robustness, not what the file does to a
# running application: counted for neither tool (dbops sets lock_timeout itself; its own
# housekeeping findings are left out the same way).
SKIPPED = ("require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts",
           "prefer-text-field", "prefer-bigint-over-int", "prefer-bigint-over-smallint",
           "prefer-identity", "prefer-timestamptz", "ban-char-field")


def plan(name: str, port: int) -> str:
    return (f"apiVersion: dbops/v1\nenvironment: {name}\ndatabase:\n  host: {HOST}\n"
            f"  port: {port}\n  name: corpus_{name}\n  user: {SUPERUSER}\n  sslmode: disable\n"
            "pool: { instances: 1, min_size: 1, max_size: 4 }\n"
            "migrations:\n  zero_downtime: false\n")


def run_dbops(project: Path, size: Size, files: list[Path]) -> dict[str, tuple[Verdict, set[str]]]:
    done = subprocess.run([sys.executable, "-m", "dbops", "migrate", "lint", *map(str, files),
                           "--env", size, "--format", "json"], cwd=project, capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode not in (0, 1):
        raise SystemExit(f"dbops lint failed:\n{done.stderr}")
    return dbops_verdicts(json.loads(done.stdout)["findings"])


def run_squawk(files: list[Path]) -> dict[str, set[str]]:
    done = subprocess.run(["squawk", "--reporter", "json", f"--exclude={','.join(SKIPPED)}",
                           *map(str, files)], capture_output=True, text=True, timeout=300,
                          check=False)
    rules: dict[str, set[str]] = {file.name: set() for file in files}
    for violation in json.loads(done.stdout or "[]"):
        rules[Path(violation["file"]).name].add(violation["rule_name"])
    return rules


def squawk_version() -> str:
    return subprocess.run(["squawk", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def score(verdicts: Mapping[str, Verdict], corpus: Sequence[Case]) -> dict[str, Any]:
    missed = [c.id for c in corpus if c.verdict == "hazard" and verdicts[c.id] == "safe"]
    alarms = [c.id for c in corpus if c.verdict == "safe" and verdicts[c.id] == "hazard"]
    return {"right": len(corpus) - len(missed) - len(alarms), "cases": len(corpus),
            "missed_hazards": missed, "false_alarms": alarms}


def measure(base: Path) -> dict[str, Any]:
    corpus = cases()
    cluster = Cluster(base / "data", port=free_port())
    try:
        cluster.up()
        project = base / "project"
        (project / "plans").mkdir(parents=True)
        (project / "migrations").mkdir()
        ours: dict[str, Verdict] = {}
        for size in ("large", "small"):
            cluster.ensure_database(f"corpus_{size}")
            with psycopg.connect(host=HOST, port=cluster.port, user=SUPERUSER,
                                 dbname=f"corpus_{size}", autocommit=True) as conn:
                build(conn, size)
            (project / "plans" / f"{size}.yaml").write_text(plan(size, cluster.port))
            chosen = [c for c in corpus if c.size == size]
            verdicts = run_dbops(project, size, sorted({c.file for c in chosen}))
            ours |= {c.id: judged(c, verdicts) for c in chosen}
        with psycopg.connect(host=HOST, port=cluster.port, user=SUPERUSER,
                             dbname="postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
            server = str(row[0]) if row else "?"
    finally:
        cluster.down()
    flagged = run_squawk(sorted({c.file for c in corpus}))
    theirs: dict[str, Verdict] = {c.id: "hazard" if flagged[c.file.name] else "safe"
                                  for c in corpus}
    squawk_wrong = [{"id": c.id, "expected": c.verdict,
                     "squawk": sorted(flagged[c.file.name]) or "nothing"}
                    for c in corpus if theirs[c.id] != c.verdict]
    return {"benchmark": "lint",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "versions": {"postgresql": server, "squawk": squawk_version(),
                         "python": platform.python_version()},
            "dbops": score(ours, corpus), "squawk": score(theirs, corpus),
            "squawk_wrong": squawk_wrong}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "lint.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dbops-bench-lint-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        report = measure(base)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| tool | right | missed hazards | false alarms |\n|---|---|---|---|")
    for tool in ("dbops", "squawk"):
        result = report[tool]
        print(f"| {tool} | {result['right']}/{result['cases']} | "
              f"{len(result['missed_hazards'])} | {len(result['false_alarms'])} |")
    print(f"\n{report['versions']}\nsquawk wrong:")
    for wrong in report["squawk_wrong"]:
        print(f"  {wrong['id']}: expected {wrong['expected']}, squawk {wrong['squawk']}")
    print(f"dbops wrong: {report['dbops']['missed_hazards'] + report['dbops']['false_alarms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
