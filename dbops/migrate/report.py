"""Migration status and run listings as text or JSON (what the CLI prints)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table

from dbops.migrate.engine import RunResult
from dbops.migrate.pending import MigrationStatus

_STYLE = {
    "applied": "green",
    "pending": "yellow",
    "modified": "bold red",
    "missing-file": "bold red",
    "partial": "magenta",
}


def status_json(rows: list[MigrationStatus]) -> str:
    def row(r: MigrationStatus) -> dict[str, Any]:
        data = asdict(r)
        data["applied_at"] = r.applied_at.isoformat() if r.applied_at else None
        return data

    return json.dumps({"format_version": 1, "migrations": [row(r) for r in rows]}, indent=2)


def status_table(rows: list[MigrationStatus], console: Console) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("version", "name", "state", "applied_at", "duration"):
        table.add_column(column)
    for r in rows:
        applied = f"{r.applied_at:%Y-%m-%d %H:%M:%S}" if r.applied_at else "-"
        duration = f"{r.duration_ms:.0f} ms" if r.duration_ms is not None else "-"
        state = f"[{_STYLE[r.state]}]{r.state}[/]"
        table.add_row(r.version, r.name, state, applied, duration)
    console.print(table)
    counts = {state: sum(1 for r in rows if r.state == state) for state in _STYLE}
    console.print(
        ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no migrations",
        highlight=False,
    )
    for r in rows:
        if r.detail and r.state != "pending":
            console.print(f"{r.version}: {r.detail}", highlight=False)


def dry_run_listing(result: RunResult) -> list[str]:
    """The exact statements and steps a run would execute."""
    verb = "apply" if result.direction == "up" else "roll back"
    if not result.executions:
        return [f"nothing to {verb}"]
    lines = [f"would {verb} {len(result.executions)} migration(s):"]
    for execution in result.executions:
        m = execution.migration
        mode = (
            "one transaction"
            if execution.mode == "transaction"
            else f"{len(execution.steps)} journaled steps"
        )
        lines.append(f"-- {m.version} {m.name} ({m.file}, {mode})")
        for step in execution.steps:
            if execution.mode == "steps":
                lines.append(f"--   {step.describe()}")
            lines += [f"{s.text};" for s in step.statements]
    return lines
