"""Lint and explain: findings of the analysis rules per migration, made concrete by live table
statistics when they are given, and the exact steps a migration will run. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from dbops.errors import MigrationError
from dbops.migrate.analyze import (
    DEFAULT_MAX_BLOCKING,
    RULES,
    SEVERITY_ORDER,
    Finding,
    StatementAnalysis,
    analyze,
    estimate,
    lint_text,
    parse_ahead,
    tracked_after,
    with_live_severity,
)
from dbops.migrate.files import Migration
from dbops.migrate.runner import Execution
from dbops.migrate.runstate import RunState, starting
from dbops.migrate.strategy import refuses
from dbops.schema_facts import TableStats

# Hazards the online rewrites remove: with zero-downtime on, they are information, not errors.
REWRITTEN = ("index-not-concurrent", "drop-index-not-concurrent", "reindex-not-concurrent",
             "constraint-not-valid", "set-not-null", "unique-builds-index")


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    estimates: dict[str, tuple[str, ...]]  # "file:line" -> what it does to the live tables
    fail_on: str

    def failing(self) -> list[Finding]:
        if self.fail_on == "never":
            return []
        floor = SEVERITY_ORDER[self.fail_on]  # type: ignore[index]
        return [f for f in self.findings
                if not f.suppressed and SEVERITY_ORDER[f.severity] >= floor]


def lint(migrations: Sequence[Migration], *, zero_downtime: bool, fail_on: str,
         stats: Mapping[str, TableStats] | None = None,
         states: Sequence[RunState] | None = None,
         max_blocking: float = DEFAULT_MAX_BLOCKING, downs: bool = False) -> LintReport:
    """Findings of every migration, and of its down section too with `downs` (the lint
    command; a run is never refused for its rollback). `states` (one per migration, from
    `run_states`) judges a pending run's migrations against what the earlier ones leave behind;
    without it each migration is judged on its own against the live statistics. A hazard
    estimated to block for less than `max_blocking` seconds is information."""
    findings: list[Finding] = []
    estimates: dict[str, tuple[str, ...]] = {}
    alone = starting(stats, max_blocking)
    parse_ahead((m for m in migrations if not m.baseline), downs=downs)
    for number, migration in enumerate(migrations):
        if migration.baseline:
            continue  # pg_dump's picture of a schema that already exists: nothing to judge
        state = states[number] if states is not None else alone
        # A YAML migration's sql operations run as written, in the expansion's first transaction.
        online = ((zero_downtime or migration.zero_downtime) and not migration.foreign
                  and migration.expand is None)
        for rule, _ in migration.ignores:
            if rule not in RULES:
                findings.append(Finding("unknown-rule", "error", migration.file, 1,
                                        f"dbops:ignore names an unknown rule '{rule}' "
                                        f"(rules: {', '.join(sorted(RULES))})"))
        if migration.expand is not None:
            from dbops.migrate.expand.analysis import findings as expand_findings

            findings += expand_findings(migration, stats)
        elif migration.up.empty:
            findings.append(Finding("empty-migration", "info", migration.file, migration.up.line,
                                    "the '-- migrate:up' section is empty: recorded as applied, "
                                    "nothing runs"))
        sections = [("up", state)]
        if downs and migration.down is not None and _parses(migration):
            # The down section undoes the up: the tables the up created are new to it.
            created, _ = tracked_after(migration, frozenset(), frozenset())
            sections.append(("down", replace(alone, new=alone.new | created)))
        for direction, judged_by in sections:
            for analysis in analyze(migration, direction=direction, new=judged_by.new,
                                    empty=judged_by.empty, columns=judged_by.columns,
                                    rows=judged_by.rows, checks=judged_by.checks,
                                    keys=judged_by.keys):
                for finding in analysis.findings:
                    findings.append(_judge(finding, online, judged_by))
                if stats:
                    lines = estimate(analysis, stats)
                    if lines:
                        estimates[f"{migration.file}:{analysis.statement.line}"] = tuple(lines)
    return LintReport(tuple(findings), estimates, fail_on)


def _parses(migration: Migration) -> bool:
    """Whether the down section parses (one that does not is reported when a rollback runs it,
    as before: linting must not refuse the up section for it)."""
    assert migration.down is not None
    try:
        migration.down.statements(migration.path)
    except MigrationError:
        return False
    return True


def _judge(finding: Finding, online: bool, state: RunState) -> Finding:
    if online and refuses(finding, state):
        return replace(finding, severity="error",
                       message=f"{finding.message} (zero-downtime refuses it, "
                               f"{state.basis(finding.relation)}: {RULES[finding.rule].fix})")
    if state.stats:
        finding = with_live_severity(finding, state.stats, state.max_blocking)
    if online and finding.rule in REWRITTEN and finding.severity != "info":
        return replace(finding, severity="info",
                       message=f"{finding.message} (zero-downtime: run online instead)")
    return finding


def explain(execution: Execution, stats: Mapping[str, TableStats] | None = None) -> list[str]:
    """The steps a migration will run, each statement with its lock and, given live statistics,
    what it will do to the tables it touches."""
    migration = execution.migration
    lines = [f"{migration.version} {migration.name} ({migration.file}): {len(execution.steps)} "
             f"step(s), {'one transaction' if execution.mode == 'transaction' else 'journaled'}"]
    for step in execution.steps:
        lines.append(f"  {step.describe()}")
        for statement in step.statements:
            analysis = _statement(statement.text, migration)
            lock = analysis.strongest_lock if analysis else None
            where = ", ".join(r for r, _ in analysis.locks) if analysis and analysis.locks else ""
            lines.append(f"    {statement.terminated}")
            if lock:
                lines.append(f"      lock: {lock}{' on ' + where if where else ''}")
            if analysis and stats:
                lines += [f"      {line}" for line in estimate(analysis, stats)]
    return lines


def _statement(text: str, migration: Migration) -> StatementAnalysis | None:
    analyses = lint_text(text, migration.file)
    return analyses[0] if analyses else None


def tables_of(migrations: list[Migration]) -> list[str]:
    """Every table the migrations' statements lock (to read live statistics for)."""
    names: list[str] = []
    for migration in migrations:
        if migration.expand is not None:  # expand/contract tables: for the backfill estimate
            names += [t for t in migration.expand.tables if t not in names]
        for analysis in analyze(migration):
            names += [relation for relation, _ in analysis.locks if relation not in names]
    return names


def planned_of(migrations: list[Migration]) -> list[tuple[str, str]]:
    """(table, statement) of every UPDATE and DELETE with a WHERE clause in the migrations'
    up sections: the planner estimates the rows each touches."""
    planned: list[tuple[str, str]] = []
    for migration in migrations:
        for analysis in analyze(migration):
            statement = analysis.statement
            if statement.kind in ("UpdateStmt", "DeleteStmt") and not analysis.scans \
                    and analysis.locks:
                planned.append((analysis.locks[0][0], statement.text))
    return planned

