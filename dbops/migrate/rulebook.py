"""The lint rule book: each rule's default severity, the lock PostgreSQL takes for the statement it
flags (checked against `pg_locks` by the tests), how its cost grows, what goes wrong and the safe
recipe. The rules themselves are data, one row a rule in `dbops/data/rules.toml`;
`docs/rules/<id>.md` explains each one at length (`page`). Pure."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Literal, get_args

Severity = Literal["error", "warning", "info"]
SEVERITY_ORDER: dict[Severity, int] = {"info": 0, "warning": 1, "error": 2}

# How a finding's cost grows: "table" with the table's size (a scan, a rewrite, an index build,
# rows changed), "brief" not at all (a catalog change: the lock is held for milliseconds once
# granted), "clients" is no lock hazard at all (clients break, data goes, the statement fails),
# "none" for findings about the migration itself.
Cost = Literal["table", "brief", "clients", "none"]

RULE_BOOK = "docs/rules"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    lock: str  # the lock mode the flagged statement takes on its table ("" when none)
    cost: Cost
    doc: str
    fix: str
    example: str = ""  # a statement it flags, on the rule book's example schema ("" for none)

    @property
    def url(self) -> str:
        return f"{RULE_BOOK}/{self.id}.md"


def _load() -> dict[str, Rule]:
    """The rule book shipped in `dbops/data/rules.toml`, in its order."""
    book = tomllib.loads((resources.files("dbops") / "data" / "rules.toml").read_text())
    rules = {entry["id"]: Rule(**entry) for entry in book["rule"]}
    for rule in rules.values():  # the file is dbops' own: a wrong value is a bug, caught by tests
        assert rule.severity in SEVERITY_ORDER and rule.cost in get_args(Cost), rule
    return rules


RULES: dict[str, Rule] = _load()


def page(rule: Rule) -> str:
    """The rule book's page for `rule` (docs/rules/<id>.md), in Markdown."""
    lock = (f"`{rule.lock}` on the table the statement names (the tests check it against "
            "`pg_locks` on a real server)." if rule.lock else "None: this rule is about the "
            "migration itself, not a lock.")
    cost = {"table": "The time grows with the table: a scan, a rewrite or an index build holds "
                     "the lock while it works through every row. Below `lint.max_blocking` "
                     "(plan setting, default 1s) of estimated blocking time on the live table "
                     "the finding is `info` and never refuses the migration.",
            "brief": "The lock is held briefly once granted, but while it waits in the lock "
                     "queue every later query of the table waits behind it. dbops' "
                     "`lock_timeout` and retries bound that wait; with live statistics the "
                     "finding is `info`.",
            "clients": "Not a matter of size: running clients break, data goes, or the statement "
                       "fails, whatever the table holds.",
            "none": "Not a lock hazard."}[rule.cost]
    example = f"\n## Example\n\n```sql\n{rule.example};\n```\n" if rule.example else ""
    return (f"# {rule.id}\n\nDefault severity: **{rule.severity}**\n\n## What\n\n{rule.doc}\n\n"
            f"## The lock\n\n{lock}\n\n## Why it hurts\n\n{cost}\n{example}\n"
            f"## Safe recipe\n\n{rule.fix}.\n\n## Suppress\n\nWhen you know it is safe here, "
            f"say why in the migration file:\n\n```sql\n-- dbops:ignore {rule.id} <reason>\n```\n\n"
            "The finding is then reported as `ignored` with your reason, and never fails lint.\n")
