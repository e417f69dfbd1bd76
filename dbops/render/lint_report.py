"""A LintReport (`dbops migrate lint`) as text for a terminal, JSON for machines, and SARIF
2.1.0 (the format GitHub code scanning reads: one run of the dbops tool, its rules from the rule
book, one result per finding; a finding the file accepts with `-- dbops:ignore` is a result with
an in-source suppression). Pure."""

from __future__ import annotations

import json as jsonlib
from typing import Any

from dbops.migrate.analyze import Finding
from dbops.migrate.lint import LintReport
from dbops.migrate.rulebook import RULES, Rule

FORMAT_VERSION = 1


def lines(report: LintReport) -> list[str]:
    """Each finding with its rule's page and what it does to the live tables, then the counts."""
    out = []
    for finding in report.findings:
        out.append(f"{finding} [{finding.rule_url}]" if finding.rule_url else str(finding))
        out += [f"    {line}" for line in _estimate(report, finding)]
    counts = {level: sum(1 for f in report.findings if f.severity == level and not f.suppressed)
              for level in ("error", "warning", "info")}
    ignored = sum(1 for f in report.findings if f.suppressed)
    out.append(f"{counts['error']} error(s), {counts['warning']} warning(s), "
               f"{counts['info']} info, {ignored} ignored; failing at {report.fail_on}")
    return out


def text(report: LintReport) -> str:
    return "\n".join(lines(report))


def json(report: LintReport) -> str:
    return jsonlib.dumps({"format_version": FORMAT_VERSION, "fail_on": report.fail_on,
                          "failing": len(report.failing()),
                          "findings": [_entry(report, f) for f in report.findings]}, indent=2)


def _estimate(report: LintReport, finding: Finding) -> tuple[str, ...]:
    return report.estimates.get(f"{finding.file}:{finding.line}", ())


def _entry(report: LintReport, finding: Finding) -> dict[str, Any]:
    return {"rule": finding.rule, "severity": finding.severity, "level": finding.level,
            "file": finding.file, "line": finding.line, "message": finding.message,
            "relation": finding.relation, "suppressed": finding.suppressed,
            "estimate": list(_estimate(report, finding)),
            "lock": finding.lock, "estimated_blocking_seconds": finding.blocking_seconds,
            "rule_url": finding.rule_url}


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def sarif(report: LintReport) -> str:
    rules = sorted({f.rule for f in report.findings} & RULES.keys())
    index = {rule: number for number, rule in enumerate(rules)}
    results = []
    for finding in report.findings:
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "level": _LEVELS[finding.severity],
            "message": {"text": finding.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": finding.file},
                "region": {"startLine": max(finding.line, 1)}}}],
            "properties": {"lock": finding.lock,
                           "estimated_blocking_seconds": finding.blocking_seconds,
                           "rule_url": finding.rule_url,
                           "estimate": list(_estimate(report, finding))},
        }
        if finding.rule in index:
            result["ruleIndex"] = index[finding.rule]
        if finding.suppressed:
            result["suppressions"] = [{"kind": "inSource", "justification": finding.suppressed}]
        results.append(result)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "dbops", "rules": [_rule(RULES[r]) for r in rules]}},
            "results": results,
        }],
    }
    return jsonlib.dumps(document, indent=2)


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "shortDescription": {"text": rule.doc.split(": ")[0].split(". ")[0]},
        "fullDescription": {"text": rule.doc},
        "help": {"text": f"{rule.doc} Safe recipe: {rule.fix}. See {rule.url}.",
                 "markdown": f"{rule.doc}\n\n**Safe recipe:** {rule.fix}\n\nSee `{rule.url}`."},
        "defaultConfiguration": {"level": _LEVELS[rule.severity]},
        "properties": {"lock": rule.lock or None, "rule_url": rule.url},
    }
