"""What lint gives people and tools: any SQL file or standard input, text with `ignored`
findings, JSON with lock and blocking estimate, SARIF 2.1.0, the rule book, down sections, and
the pre-commit hook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from harness import child_env

from dbops.migrate import files
from dbops.migrate.lint import lint
from dbops.migrate.rulebook import RULES, page
from dbops.render import lint_report
from dbops.render.lint_report import sarif
from dbops.schema_facts import TableStats

REPO = Path(__file__).resolve().parents[1]
FLYWAY = """-- Flyway: add an index and a column
BEGIN;
CREATE INDEX tasks_name_idx ON tasks (name);
-- dbops:ignore drop-breaks-clients the column was retired in release 42
ALTER TABLE tasks DROP COLUMN legacy;
COMMIT;
"""


def dbops(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbops", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=60, check=False,
                          env=child_env(drop=()))


def test_any_sql_file_or_standard_input_is_linted_as_one_up_section(tmp_path: Path) -> None:
    (tmp_path / "V2__add_index.sql").write_text(FLYWAY)
    from_file = dbops("migrate", "lint", "V2__add_index.sql", cwd=tmp_path)
    assert from_file.returncode == 1
    lines = from_file.stdout.splitlines()
    assert lines[0].startswith("V2__add_index.sql:3: error: index-not-concurrent: CREATE INDEX ")
    assert lines[0].endswith("[docs/rules/index-not-concurrent.md]")
    assert lines[1] == ("V2__add_index.sql:5: ignored: drop-breaks-clients: dropping column "
                        "tasks.legacy (the column was retired in release 42) "
                        "[docs/rules/drop-breaks-clients.md]")
    from_stdin = dbops("migrate", "lint", "-", "--format", "json", cwd=tmp_path, stdin=FLYWAY)
    findings = json.loads(from_stdin.stdout)["findings"]
    assert [(f["file"], f["line"], f["level"]) for f in findings] == [
        ("<stdin>", 3, "error"), ("<stdin>", 5, "ignored")]


def test_json_carries_lock_blocking_estimate_and_rule_url(tmp_path: Path) -> None:
    path = tmp_path / "change.sql"
    path.write_text("CREATE INDEX i ON tasks (name);\nUPDATE tasks SET attempt = 0;\n")
    stats = {"tasks": TableStats("tasks", 2_000_000, 500 * 1024 * 1024, 40.0)}
    report = lint([files.parse_any(path)], zero_downtime=False, fail_on="error", stats=stats)
    [index, update] = json.loads(lint_report.json(report))["findings"]
    assert (index["rule"], index["lock"], index["estimated_blocking_seconds"], index["rule_url"]) \
        == ("index-not-concurrent", "SHARE", 10.0, "docs/rules/index-not-concurrent.md")
    assert (update["rule"], update["lock"], update["severity"]) == \
        ("update-whole-table", "ROW EXCLUSIVE", "error")
    assert {"file", "line", "message", "relation", "suppressed", "estimate"} <= index.keys()


def test_sarif_is_2_1_0_with_rules_locations_and_suppressions(tmp_path: Path) -> None:
    path = tmp_path / "V2__add_index.sql"
    path.write_text(FLYWAY)
    report = lint([files.parse_any(path)], zero_downtime=False, fail_on="error")
    document = json.loads(sarif(report))
    assert document["version"] == "2.1.0" and document["$schema"].endswith("sarif-2.1.0.json")
    [run] = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "dbops"
    assert [r["id"] for r in driver["rules"]] == ["drop-breaks-clients", "index-not-concurrent"]
    assert all(r["shortDescription"]["text"] and r["defaultConfiguration"]["level"]
               in ("error", "warning", "note") for r in driver["rules"])
    [index, drop] = run["results"]
    assert index["ruleId"] == "index-not-concurrent" and index["level"] == "error"
    assert driver["rules"][index["ruleIndex"]]["id"] == "index-not-concurrent"
    assert index["message"]["text"]
    assert index["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": report.findings[0].file}, "region": {"startLine": 3}}
    assert "suppressions" not in index
    assert drop["suppressions"] == [{"kind": "inSource",
                                     "justification": "the column was retired in release 42"}]


def test_every_rule_has_its_page_in_the_rule_book() -> None:
    for rule in RULES.values():
        book = REPO / rule.url
        assert book.read_text() == page(rule), f"{book} is stale: regenerate it from page()"
        assert f"-- dbops:ignore {rule.id} <reason>" in book.read_text()
    assert sorted(p.stem for p in (REPO / "docs/rules").glob("*.md") if p.stem != "README") == \
        sorted(RULES)


def test_down_sections_are_linted_and_rewritten_online(tmp_path: Path) -> None:
    path = tmp_path / "20250101000001_index.sql"
    path.write_text("-- index\n-- migrate:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON tasks "
                    "(name);\n-- migrate:down\nDROP INDEX i;\n")
    migration = files.parse(path)
    report = lint([migration], zero_downtime=False, fail_on="warning", downs=True)
    assert [(f.line, f.rule) for f in report.failing()] == [(5, "drop-index-not-concurrent")]
    from dbops.migrate.runner import prepare

    down = prepare(migration, "down", zero_downtime=True)
    assert [s.text for step in down.steps for s in step.statements] == [
        'DROP INDEX CONCURRENTLY IF EXISTS "i"']


def test_the_pre_commit_hook() -> None:
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["entry"], hook["types"]) == ("dbops-lint", "dbops migrate lint",
                                                          ["sql"])
