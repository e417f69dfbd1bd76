"""`dbops health ENV --report FILE.html`: one self-contained HTML page (no external assets, plots
inline as SVG made with matplotlib) of the recorded history: utilisation, response time, error
rate, replication lag and transaction-ID age against their thresholds, each trend forecast drawn
as a line to its threshold.

matplotlib is an optional dependency (`pip install 'dbops[report]'`); without it the command
says so in one line.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dbops.connect import mask
from dbops.errors import DbopsError
from dbops.health.monitor import HealthSummary
from dbops.health.result import HealthReport
from dbops.health.trends import RATIOS, Trend, label

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_POINTS = 2880
"""Points a plot draws at most (the newest): the monitor's in-memory history size."""
PLOTTED = (("connection_utilization", "Connection utilisation"),
           ("connectivity", "Response time (round trip)"),
           ("error_rate", "Error rate (rollbacks)"),
           ("replication_lag", "Replication lag"),
           ("xid_wraparound", "Transaction-ID age (share of wraparound)"))
_COLOURS = {"ok": "#2e7d32", "warning": "#f9a825", "critical": "#c62828"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3em 0.5em; text-align: left; }
.status { font-weight: bold; } .ok { color: #2e7d32; } .warning { color: #b26a00; }
.critical { color: #c62828; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
"""


@dataclass(frozen=True)
class Series:
    check: str
    points: tuple[tuple[datetime, float], ...]
    threshold: float | None


def series(history: Sequence[HealthReport], kind: str) -> list[Series]:
    """Every check of `kind` (one per replica for replication_lag) through the history."""
    found: dict[str, list[tuple[datetime, float]]] = {}
    thresholds: dict[str, float | None] = {}
    for report in history[-MAX_POINTS:]:
        for result in report.results:
            if result.kind != kind or result.value is None:
                continue
            found.setdefault(result.name, []).append((report.checked_at, float(result.value)))
            thresholds[result.name] = result.threshold
    return [Series(name, tuple(points), thresholds[name]) for name, points in found.items()]


def _svg(title: str, lines: Sequence[Series], trends: Sequence[Trend], now: datetime) -> str:
    # lazy: matplotlib is optional (dbops[report]) and slow to import
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.2), layout="constrained")
    axes: Axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=11)
    forecasts = {t.check: t for t in trends}
    for line in lines:
        times = [_days(t) for t, _ in line.points]
        values = [v for _, v in line.points]
        axes.plot(times, values, marker="." if len(values) < 60 else "", linewidth=1.4,
                  label=label(line.check))
        trend = forecasts.get(line.check)
        if trend is not None:
            reached = now + timedelta(seconds=trend.eta)
            axes.plot([_days(now), _days(reached)], [trend.current, trend.threshold], linestyle=":",
                      linewidth=1.6, color="#6a1b9a", label=f"forecast: {trend.message}")
        if line.threshold is not None:
            axes.axhline(line.threshold, color=_COLOURS["critical"], linestyle="--",
                         linewidth=1, label=f"threshold {_spell(line.check, line.threshold)}")
    if any(line.check.partition(".")[0] in RATIOS for line in lines):
        axes.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    else:
        axes.set_ylabel("seconds")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg"):]


def _days(moment: datetime) -> float:
    """matplotlib's date number: days since its default epoch, 1970-01-01 UTC."""
    return moment.timestamp() / 86400.0


def _spell(check: str, value: float) -> str:
    return f"{value:.0%}" if check.partition(".")[0] in RATIOS else f"{value:g}s"


def render_html(summary: HealthSummary, history: Sequence[HealthReport]) -> str:
    """The page for `summary` (the latest cycle, trends) and `history` (oldest first)."""
    try:
        # lazy: probes the optional matplotlib
        import matplotlib  # noqa: F401
    except ImportError:
        raise DbopsError("the HTML report needs matplotlib: pip install 'dbops[report]'") from None
    now = datetime.now(UTC)
    esc = html.escape
    current = summary.current
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>dbops health: {esc(summary.environment)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>dbops health: {esc(summary.environment)} "
        f'<span class="status {summary.status}">{summary.status}</span></h1>',
        f"<p>Generated {now:%Y-%m-%d %H:%M UTC} from {len(history)} recorded check cycles"
        + (f", {history[0].checked_at:%Y-%m-%d %H:%M} to {history[-1].checked_at:%Y-%m-%d %H:%M}"
           " UTC" if history else "") + ".</p>",
    ]
    if summary.trends:
        parts.append("<h2>Trends</h2><ul>")
        parts += [f"<li>{esc(t.message)}</li>" for t in summary.trends]
        parts.append("</ul>")
    parts.append("<h2>History</h2>")
    for kind, title in PLOTTED:
        lines = series(history, kind)
        if lines:
            parts.append(f'<figure id="{kind}">{_svg(title, lines, summary.trends, now)}</figure>')
        else:
            parts.append(f'<p id="{kind}">{esc(title)}: not recorded.</p>')
    if current is not None:
        parts.append("<h2>Latest check</h2><table><tr><th>status</th><th>check</th>"
                     "<th>explanation</th></tr>")
        parts += [f'<tr><td class="status {r.status}">{r.status}</td><td>{esc(r.name)}</td>'
                  f"<td>{esc(r.message)}</td></tr>" for r in current.results]
        parts.append("</table>")
    parts.append("</body></html>\n")
    return mask("\n".join(parts))
