"""Migration status and run listings as text or JSON (what the CLI prints)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from dbops.migrate.engine import RunResult
from dbops.migrate.expand.state import Expansion
from dbops.migrate.pending import MigrationStatus
from dbops.style import styled

_STYLE = {"applied": "green", "pending": "yellow", "modified": "red", "missing-file": "red",
          "partial": "magenta"}
_ALARM = {"modified", "missing-file"}


def status_json(rows: list[MigrationStatus], expansions: list[Expansion] | None = None) -> str:
    def row(r: MigrationStatus) -> dict[str, Any]:
        data = asdict(r)
        data["applied_at"] = r.applied_at.isoformat() if r.applied_at else None
        return data

    out: dict[str, Any] = {"format_version": 1, "migrations": [row(r) for r in rows]}
    if expansions:
        out["expansions"] = [{"version": e.version, "name": e.name, "phase": e.phase,
                              "started_at": e.started_at.isoformat(), "backfill": e.backfill,
                              "next": e.next_phase} for e in expansions]
    return json.dumps(out, indent=2)


def expansion_lines(expansions: list[Expansion]) -> list[str]:
    """One line per expand/contract migration in flight: phase, since when, backfill, next."""
    return [f"expansion {e.version} {e.name}: {e.phase} since {e.started_at:%Y-%m-%d %H:%M:%S}, "
            f"backfill {e.progress()}; next: {e.next_phase}" for e in expansions]


def status_table(rows: list[MigrationStatus], *, color: bool) -> list[str]:
    """Aligned columns; plain string formatting because a status of thousands of rows must be
    instant (a rich Table takes about a millisecond a row)."""
    cells = [
        (r.version, r.name, r.state,
         f"{r.applied_at:%Y-%m-%d %H:%M:%S}" if r.applied_at else "-",
         f"{r.duration_ms:.0f} ms" if r.duration_ms is not None else "-")
        for r in rows
    ]
    header = ("version", "name", "state", "applied_at", "duration")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]

    def line(values: tuple[str, ...], state: str | None = None) -> str:
        padded = [v.ljust(w) for v, w in zip(values, widths, strict=True)]
        if color and state:
            padded[2] = styled(padded[2], f"bold {_STYLE[state]}" if state in _ALARM else _STYLE[state])
        return "  ".join(padded).rstrip()

    lines = [line(header)] + [line(c, r.state) for c, r in zip(cells, rows, strict=True)]
    counts = {state: sum(1 for r in rows if r.state == state) for state in _STYLE}
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no migrations")
    lines += [f"{r.version}: {r.detail}" for r in rows if r.detail and r.state != "pending"]
    return lines


def dry_run_listing(result: RunResult) -> list[str]:
    """The exact statements and steps a run would execute."""
    verb = "apply" if result.direction == "up" else "roll back"
    if not result.executions:
        return [f"nothing to {verb}"]
    lines = [f"would {verb} {len(result.executions)} migration(s):"]
    for execution in result.executions:
        m = execution.migration
        if m.expand is not None and result.direction == "up":
            from dbops.migrate.expand.analysis import describe

            lines.append(f"-- {m.version} {m.name} ({m.file}, expand/contract: expand now, "
                         f"version schema {m.expand.version_schema(m.version)})")
            lines += [f"--   {describe(op)}" for op in m.expand.operations]
            lines += [s.terminated for step in execution.steps for s in step.statements]
            continue
        mode = (
            "one transaction"
            if execution.mode == "transaction"
            else f"{len(execution.steps)} journaled steps"
        )
        lines.append(f"-- {m.version} {m.name} ({m.file}, {mode})")
        for step in execution.steps:
            if execution.mode == "steps":
                lines.append(f"--   {step.describe()}")
            lines += [s.terminated for s in step.statements]
    return lines
