"""`dbops health ENV --report FILE.html`: a self-contained page of the recorded history with plots
and trend forecasts, opened in a real headless browser; and the sparklines of `--watch`."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import Project
from rich.console import Console

from dbops.cli import exits
from dbops.config.load import load_plan
from dbops.health.command import run_health
from dbops.health.display import SPARK_POINTS, sparkline
from dbops.health.html_report import render_html
from dbops.health.monitor import HealthSummary
from dbops.health.result import CheckResult, HealthReport
from dbops.health.timeline import HealthHistory, history_path
from dbops.health.trends import trends

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "observability" / "health-report.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _recorded(environment: str, cycles: int = 40) -> list[HealthReport]:
    """An hour of cycles in which connections, lag and transaction-ID age climb steadily."""
    now = datetime.now(UTC)
    out = []
    for n in range(cycles):
        share = n / cycles
        out.append(HealthReport(
            environment=environment, checked_at=now - timedelta(minutes=cycles - n),
            duration=0.01, queries=2, results=(
                CheckResult("connectivity", 0.002 + 0.001 * (n % 3), 5.0, "ok", ""),
                CheckResult("connection_utilization", 0.2 + 0.4 * share, 0.8, "ok", ""),
                CheckResult("error_rate", 0.01 * (n % 4), 0.05, "ok", ""),
                CheckResult("replication_lag.replica1", 1.0 + 6 * share, 10.0, "ok", ""),
                CheckResult("xid_wraparound", 0.1 + 0.2 * share, 0.5, "ok", ""),
            )))
    return out


def test_the_report_draws_the_history_and_each_forecast_to_its_threshold() -> None:
    history = _recorded("test")
    now = datetime.now(UTC)
    found = tuple(trends(history, now.timestamp()))
    summary = HealthSummary("test", now, history[-1], (), found, (), (), len(history), 0, False)
    page = render_html(summary, history)
    assert [t.check for t in found][:1] and "connection_utilization" in [t.check for t in found]
    assert page.count("<svg") == 5
    plain = html.unescape(page)
    for trend in found:
        assert f"<li>{trend.message}</li>" in plain
        assert f"forecast: {trend.message}" in plain  # the forecast's line, in its plot's legend
    assert "threshold 80%" in page and "threshold 10s" in page
    # Self-contained: no scripts, stylesheets, images or fonts fetched from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b|src=|url\((?!#)|@import", page)
    assert set(re.findall(r'href="([^"]*)"', page)) <= {
        h for h in re.findall(r'href="(#[^"]*)"', page)}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_report_command_writes_a_page_a_browser_shows(project: Project,
                                                        tmp_path: Path) -> None:
    plan = load_plan("test", root=project.root, environ={})
    recorded = HealthHistory("test", history_path(plan))
    for report in _recorded("test"):
        recorded.add(report)
    page = tmp_path / "health.html"
    made = project.run("health", "test", "--report", str(page))
    assert made.returncode in (0, 2, 3), made.stderr
    assert made.stdout.startswith(f"wrote {page} (41 check cycles of history); test: ")
    text = page.read_text()
    assert text.count("<svg") == 5 and "<h2>Latest check</h2>" in text
    shot = tmp_path / "health.png"
    shown = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--disable-dev-shm-usage", "--no-first-run", f"--screenshot={shot}",
         "--window-size=1100,1500", "--virtual-time-budget=2000", page.as_uri()],
        capture_output=True, text=True, timeout=90, check=False, cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)})
    assert shown.returncode == 0, shown.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a blank page is ~5 kB
    if os.environ.get("DBOPS_UPDATE_SCREENSHOT"):
        SCREENSHOT.write_bytes(png)


def test_sparklines_scale_to_the_threshold_and_keep_the_newest_points() -> None:
    assert sparkline([0.0, 0.4, 0.8], 0.8) == "▁▅█"
    assert sparkline([0.1, None, 0.2], 0.8) == "▂ ▃"
    assert sparkline([0.0, 0.0], None) == "▁▁"
    assert len(sparkline([float(n) for n in range(500)], None)) == SPARK_POINTS


def test_watch_draws_a_sparkline_per_check_on_a_terminal(project: Project) -> None:
    plan = load_plan("test", root=project.root, environ={})
    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    assert exits.health(run_health(plan, "text", watch=True, cycles=3, interval=0.01, live=True,
                                   console=console)) in (0, 2)
    screen = console.export_text()
    assert "last 3" in screen
    line = [row for row in screen.splitlines() if " connection_utilization " in row][-1]
    assert re.search(r"[▁▂▃▄▅▆▇█]{3}", line), line
