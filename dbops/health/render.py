"""A health report for people (text, a live table) and for programs (JSON)."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from dbops.connect import mask
from dbops.health.monitor import HealthSummary
from dbops.health.result import HealthReport

_STYLES = {"ok": "green", "warning": "yellow", "critical": "bold red"}


def headline(report: HealthReport) -> str:
    state = f"could not check ({report.error})" if report.error else report.status
    count = len(report.results)
    checks = "1 check" if count == 1 else f"{count} checks"
    return (f"{report.environment}: {state} ({checks} in {report.duration * 1000:.1f} ms, "
            f"{report.queries} queries)")


def text(report: HealthReport, summary: HealthSummary | None = None) -> str:
    lines = [headline(report)]
    width = max((len(r.name) for r in report.results), default=0)
    lines += [f"  {r.status:<8}  {r.name:<{width}}  {r.message}" for r in report.results]
    if summary is not None and summary.trends:
        lines.append("Trends:")
        lines += [f"  {t.message}" for t in summary.trends]
    if report.actions:
        lines.append("Recovery:")
        lines += [f"  {line}" for line in report.actions]
    return mask("\n".join(lines))


def to_json(report: HealthReport, summary: HealthSummary | None = None, *,
            indent: int | None = 2) -> str:
    data: dict[str, Any] = report.to_dict()
    data["trends"] = [t.to_dict() for t in summary.trends] if summary is not None else []
    return mask(json.dumps(data, indent=indent))


def table(report: HealthReport, summary: HealthSummary | None = None) -> Table:
    """The live table `dbops health --watch` redraws on a terminal."""
    grid = Table(title=mask(headline(report)), title_justify="left", expand=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("check", no_wrap=True)
    grid.add_column("explanation", overflow="fold")
    for r in report.results:
        grid.add_row(Text(r.status, style=_STYLES[r.status]), r.name, mask(r.message))
    notes = [t.message for t in summary.trends] if summary is not None else []
    notes += list(report.actions)
    if notes:
        grid.caption = mask("\n".join(notes))
        grid.caption_justify = "left"
    return grid
