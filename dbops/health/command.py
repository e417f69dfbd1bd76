"""The pipeline behind `dbops health`: check once, watch, or serve the HTTP endpoints.

Each returns the last HealthReport (None: could not check, health checks being off in the plan);
the CLI maps it to an exit code (dbops.cli.exits).

`dbops health` and `--watch` only look: they record the history (for trends) but send no alerts
and take no recovery action. `--serve` is the long-running monitor: it alerts and recovers as the
plan says.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from dbops.config.model import Plan
from dbops.errors import DbopsError
from dbops.health import display
from dbops.health.exposure import Exposure, exposure
from dbops.health.listener import REQUEST_TIMEOUT, WORKERS
from dbops.health.monitor import HealthMonitor
from dbops.health.pool_checks import AttachedPool
from dbops.health.result import HealthReport
from dbops.health.server import HealthServer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

LOG = logging.getLogger("dbops.health.server")
WATCH_INTERVAL = 2.0
"""Seconds between redraws of --watch (or the plan's check_interval when shorter)."""
MIN_REDRAW = 0.2
"""The live view redraws (and checks) at most five times a second, whatever interval says."""

Echo = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def run_health(plan: Plan, fmt: str = "text", watch: bool = False, *, echo: Echo = _print,
               cycles: int | None = None, interval: float | None = None,
               pool: AttachedPool | None = None, live: bool | None = None,
               console: Console | None = None) -> HealthReport | None:
    """Check `plan`'s database and print the result; with `watch`, again every interval until
    interrupted (or `cycles` times). Returns the last cycle's report."""
    if not plan.health.enabled:
        echo("could not check: health checks are off in the plan (health.enabled: false)")
        return None
    pause = interval if interval is not None else min(
        WATCH_INTERVAL, plan.health.check_interval.total_seconds())
    monitor = HealthMonitor(plan, pool=pool, alerts=False, recover=False, operations=False)
    try:
        if not watch:
            return _once(monitor, fmt, echo)
        if live if live is not None else (fmt == "text" and sys.stdout.isatty()):
            return _live(monitor, pause, cycles, console)
        report, done = None, 0
        while cycles is None or done < cycles:
            if done:
                time.sleep(pause)
                if fmt == "text":
                    echo("")
            report = _once(monitor, fmt, echo, compact=True)
            done += 1
        return report
    except KeyboardInterrupt:
        return monitor.latest()
    finally:
        monitor.close()


def write_report(plan: Plan, path: Path, *, echo: Echo = _print) -> HealthReport | None:
    """Check once (recording the cycle), then write the HTML report of the recorded history to
    `path`. Returns the check's report."""
    # lazy: matplotlib (optional) only for --report
    from dbops.health.html_report import render_html

    if not plan.health.enabled:
        echo("could not check: health checks are off in the plan (health.enabled: false)")
        return None
    with HealthMonitor(plan, alerts=False, recover=False, operations=False) as monitor:
        report = monitor.check_now()
        history = monitor.history()
        page = render_html(monitor.summary(), history)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise DbopsError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    echo(f"wrote {path} ({len(history)} check cycles of history); {display.headline(report)}")
    return report


def _once(monitor: HealthMonitor, fmt: str, echo: Echo, *,
          compact: bool = False) -> HealthReport:
    report = monitor.check_now()
    summary = monitor.summary()
    if fmt == "json":
        echo(display.to_json(report, summary, indent=None if compact else 2))
    else:
        echo(display.text(report, summary))
    return report


def _live(monitor: HealthMonitor, pause: float, cycles: int | None,
          console: Console | None = None) -> HealthReport:
    # lazy: rich.live only for --watch
    from rich.live import Live

    def view(report: HealthReport) -> Table:
        return display.table(report, monitor.summary(),
                            monitor.history(display.SPARK_POINTS))

    report = monitor.check_now()
    done = 1
    with Live(view(report), auto_refresh=False, console=console) as screen:
        while cycles is None or done < cycles:
            time.sleep(max(pause, MIN_REDRAW))
            report = monitor.check_now()
            screen.update(view(report), refresh=True)
            done += 1
    return report


def serve(plan: Plan, address: str | Exposure, *, echo: Echo = _print,
          pool: AttachedPool | None = None, stop: threading.Event | None = None,
          started: Callable[[tuple[str, int]], None] | None = None,
          workers: int = WORKERS, request_timeout: float = REQUEST_TIMEOUT) -> None:
    """Monitor `plan` (alerts and recovery as the plan says) and serve /health, /ready and
    /metrics on `address` (a loopback HOST:PORT, or an Exposure with its token and TLS) until
    SIGINT/SIGTERM (or `stop` is set)."""
    where = address if isinstance(address, Exposure) else exposure(address)
    _log_to_stderr()
    monitor = HealthMonitor(plan, pool=pool)
    try:
        server = HealthServer(monitor, where, workers=workers, request_timeout=request_timeout)
    except OSError as exc:
        monitor.close()
        raise DbopsError(f"cannot listen on {where.host}:{where.port}: "
                         f"{exc.strerror or exc}") from None
    stop = stop or threading.Event()
    previous = _on_sigterm(stop)
    try:
        monitor.start_monitoring(force=True)
        server.start()
        bound = server.address
        if where.open_to_all:
            LOG.warning("serving health on %s without a token (--insecure): anyone who can reach "
                        "it sees the database's health and can make it check", bound[0])
        echo(f"serving /health, /ready and /metrics for {plan.environment} on "
             f"{where.scheme}://{bound[0]}:{bound[1]} (a check every {monitor.interval:g}s"
             f"{'; a bearer token required' if where.token else ''})")
        if started is not None:
            started(bound)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        monitor.stop_monitoring()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _log_to_stderr() -> None:
    """Alerts of the log channel, recovery audit lines and delivery failures to stderr, with a
    time stamp, unless the application configured logging itself."""
    health = logging.getLogger("dbops.health")
    if health.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    health.addHandler(handler)
    health.setLevel(logging.INFO)


_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def _on_sigterm(stop: threading.Event) -> _Handler:
    """Make SIGTERM a clean stop (only the main thread may install handlers); returns the
    handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return signal.signal(signal.SIGTERM, handle)
