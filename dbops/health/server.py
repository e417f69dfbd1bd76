"""/health, /ready and /metrics over HTTP, served from a running HealthMonitor.

- `GET /health`: the latest cycle as JSON (a fresh one when it is older than the check
  interval; `?fresh=1` forces one); 200 when ok or warning, 503 when critical or not checkable.
- `GET /ready[?lag=5s][&replica=NAME]`: 200 when the primary answers and accepts writes and, with
  `lag`, every replica (or the one named) streams and is at most that far behind; else 503 with
  the reasons. Judged on a cycle at most a second old, so a readiness probe sees a recent truth.
- `GET /metrics`: Prometheus text format (see metrics.py).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from dbops.config.units import parse_duration
from dbops.health.metrics import HealthCollector, exposition, registry_for
from dbops.health.monitor import HealthMonitor
from dbops.health.result import HealthReport

LOG = logging.getLogger("dbops.health.server")
READY_MAX_AGE = 1.0


def readiness(report: HealthReport, *, lag: float | None = None,
              replica: str | None = None) -> list[str]:
    """Why the database is not ready (empty: ready)."""
    reasons = [report.error] if report.error else []
    for name in ("connectivity", "writable", "health_query"):
        result = report.result(name)
        if name == "connectivity" and result is None:
            reasons.append("the primary was not checked")
        elif result is not None and result.status == "critical":
            reasons.append(f"{name}: {result.message}")
    if lag is not None:
        replicas = [r for r in report.results if r.kind == "replication_lag"
                    and (replica is None or r.subject == replica)]
        if replica is not None and not replicas:
            reasons.append(f"no replica named {replica} in the plan")
        for result in replicas:
            if (result.value is None or result.value > lag
                    or result.details.get("streaming") is False):
                reasons.append(f"{result.name}: {result.message}")
    return reasons


class HealthServer:
    """A threaded HTTP server for one monitor; `start()` returns once it listens."""

    def __init__(self, monitor: HealthMonitor, host: str, port: int) -> None:
        self.monitor = monitor
        self.registry = registry_for(HealthCollector(monitor))
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="dbops-health-http")
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET."""
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, exposition(self.registry)
        if path == "/health":
            fresh = query.get("fresh", ["0"])[0] not in ("0", "", "false")
            report = self.monitor.get_current_health(
                max_age=0.0 if fresh else self.monitor.interval)
            code = 503 if report.status == "critical" or report.error else 200
            return code, "application/json", _json(report.to_dict())
        if path == "/ready":
            lag = None
            if "lag" in query:
                try:
                    lag = parse_duration(query["lag"][0]).total_seconds()
                except ValueError as exc:
                    return 400, "application/json", _json({"error": str(exc)})
            report = self.monitor.get_current_health(max_age=READY_MAX_AGE)
            reasons = readiness(report, lag=lag, replica=query.get("replica", [None])[0])
            body = {"ready": not reasons, "status": report.status,
                    "checked_at": report.checked_at.isoformat(), "reasons": reasons}
            return (503 if reasons else 200), "application/json", _json(body)
        return 404, "application/json", _json(
            {"error": "not found", "endpoints": ["/health", "/ready", "/metrics"]})


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _handler(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dbops-health"

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            try:
                code, kind, body = server.respond(url.path, urllib.parse.parse_qs(url.query))
            except Exception:  # one bad request must not take the endpoint down
                LOG.exception("GET %s failed", url.path)
                code, kind, body = 500, "application/json", _json({"error": "internal error"})
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("%s %s", self.address_string(), format % args)

    return Handler
