"""A health report for people (text, a live table) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from dbops.connect import mask
from dbops.health.monitor import HealthSummary
from dbops.health.result import HealthReport

_STYLES = {"ok": "green", "warning": "yellow", "critical": "bold red"}
SPARK_POINTS = 40
"""Checks a sparkline of --watch shows at most (the newest)."""
_BARS = "▁▂▃▄▅▆▇█"


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


def sparkline(values: Sequence[float | None], ceiling: float | None = None) -> str:
    """The newest SPARK_POINTS values as block characters, from 0 to the larger of their maximum
    and `ceiling` (the threshold, so a line near the top means near it); a gap where a cycle
    had no value."""
    shown = list(values)[-SPARK_POINTS:]
    top = max([v for v in shown if v is not None] + [ceiling or 0.0])
    if top <= 0:
        return "".join(" " if v is None else _BARS[0] for v in shown)
    last = len(_BARS) - 1
    return "".join(" " if v is None else _BARS[max(0, min(last, round(v / top * last)))]
                   for v in shown)


def table(report: HealthReport, summary: HealthSummary | None = None,
          history: Sequence[HealthReport] = ()) -> Table:
    """The live table `dbops health --watch` redraws on a terminal; with `history`, a sparkline
    of each check's last SPARK_POINTS values."""
    grid = Table(title=mask(headline(report)), title_justify="left", expand=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("check", no_wrap=True)
    if history:
        grid.add_column(f"last {min(len(history), SPARK_POINTS)}", no_wrap=True)
    grid.add_column("explanation", overflow="fold")
    recent = list(history)[-SPARK_POINTS:]
    for r in report.results:
        cells: list[Text | str] = [Text(r.status, style=_STYLES[r.status]), r.name]
        if history:
            values = [_value(h, r.name) for h in recent]
            cells.append(Text(sparkline(values, r.threshold), style=_STYLES[r.status]))
        grid.add_row(*cells, mask(r.message))
    notes = [t.message for t in summary.trends] if summary is not None else []
    notes += list(report.actions)
    if notes:
        grid.caption = mask("\n".join(notes))
        grid.caption_justify = "left"
    return grid


def _value(report: HealthReport, name: str) -> float | None:
    found = report.result(name)
    return None if found is None or found.value is None else float(found.value)
