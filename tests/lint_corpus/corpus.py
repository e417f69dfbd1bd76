"""The lint corpus as data: its cases (cases.yaml), the two databases they are judged on, and a
verdict from a linter's findings. Shared by tests/test_lint_corpus.py and bench/bench_lint.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
import yaml

HERE = Path(__file__).resolve().parent
Size = Literal["large", "small"]
Verdict = Literal["hazard", "safe"]
# Rows of orders, events_2025 and events_2026: ~74 MB each with indexes on the large database
# (about 1.5 s of estimated blocking, over lint.max_blocking 1s; a 1.1 kB payload makes that
# cheaper to build than 2 million narrow rows), a hundred rows on the small one.
ROWS: dict[Size, int] = {"large": 60_000, "small": 100}
# dbops findings about the migration's own bookkeeping, not a hazard to the application (like
# squawk's prefer-robust-stmts / require-lock-timeout, left out on its side).
HOUSEKEEPING = frozenset({"not-idempotent-outside-transaction", "concurrently-in-transaction",
                          "empty-migration"})


@dataclass(frozen=True)
class Case:
    id: str
    file: Path
    size: Size
    verdict: Verdict
    rule: str | None = None  # the dbops rule that names the hazard
    known_miss: str = ""  # why dbops gets this verdict wrong ("" when it gets it right)


def cases() -> list[Case]:
    """Every case of cases.yaml, in its order."""
    document = yaml.safe_load((HERE / "cases.yaml").read_text())
    return [Case(c["id"], HERE / c["file"], c["size"], c["verdict"], c.get("rule"),
                 c.get("known_miss", "")) for c in document["cases"]]


def build(conn: psycopg.Connection[Any], size: Size) -> None:
    """schema.sql and fill.sql on an empty database, with the rows of `size` (autocommit)."""
    conn.execute(f"SET corpus.rows = {ROWS[size]}")
    conn.execute((HERE / "schema.sql").read_text())
    conn.execute((HERE / "fill.sql").read_text())


def dbops_verdicts(findings: Iterable[Mapping[str, Any]]) -> dict[str, tuple[Verdict, set[str]]]:
    """Per file (by name), dbops' verdict from its JSON findings: a hazard when a finding is
    shown at error or warning (not info, not ignored) and is not housekeeping; with its rules."""
    rules: dict[str, set[str]] = {}
    for finding in findings:
        name = Path(finding["file"]).name
        rules.setdefault(name, set())
        if finding["level"] in ("error", "warning") and finding["rule"] not in HOUSEKEEPING:
            rules[name].add(finding["rule"])
    return {name: ("hazard" if found else "safe", found) for name, found in rules.items()}


def judged(case: Case, verdicts: Mapping[str, tuple[Verdict, set[str]]]) -> Verdict:
    """dbops' verdict on `case`: a hazard counts only under the expected rule (a hazard reported
    for another reason is a wrong verdict on a safe case, and a miss on a hazard)."""
    verdict, rules = verdicts.get(case.file.name, ("safe", set()))
    if case.verdict == "hazard" and verdict == "hazard" and case.rule not in rules:
        return "safe"
    return verdict
