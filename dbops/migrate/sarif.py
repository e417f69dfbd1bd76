"""A lint report as SARIF 2.1.0 (the format GitHub code scanning reads): one run of the dbops
tool, its rules from the rule book, one result per finding, a finding the file accepts with
`-- dbops:ignore` as a result with an in-source suppression. Pure."""

from __future__ import annotations

import json
from typing import Any

from dbops.migrate.lint import LintReport
from dbops.migrate.rulebook import RULES, Rule

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
                           "estimate": list(report.estimates.get(
                               f"{finding.file}:{finding.line}", ()))},
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
    return json.dumps(document, indent=2)


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
