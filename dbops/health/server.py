"""/health, /ready and /metrics over HTTP, served from a running HealthMonitor.

- `GET /health[?fresh=1]`: the latest cycle as JSON (a fresh one when it is older than the check
  interval; `fresh=1` asks for one at most a second old); 200 when ok or warning, 503 when
  critical or not checkable.
- `GET /ready[?lag=5s][&replica=NAME]`: 200 when the primary answers and accepts writes and, with
  `lag`, every replica (or the one named) streams and is at most that far behind; else 503 with
  the reasons. Judged on a cycle at most a second old, so a readiness probe sees a recent truth.
- `GET /metrics`: Prometheus text format (see metrics.py).

However many requests arrive, they cause at most one check cycle per second: a request finds the
latest cycle, or waits for the one under way. With a token (see exposure.py) every endpoint
needs `Authorization: Bearer TOKEN`, except /ready, which without it answers only
`{"ready": true|false}`. Every bad parameter is a 400.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from dbops.config.units import parse_duration
from dbops.health.exposure import Exposure
from dbops.health.listener import (
    BACKLOG,
    REQUEST_TIMEOUT,
    WORKERS,
    BoundedHTTPServer,
    DeadlineHandler,
)
from dbops.health.metrics import HealthCollector, exposition, registry_for
from dbops.health.monitor import HealthMonitor
from dbops.health.result import HealthReport

LOG = logging.getLogger("dbops.health.server")
READY_MAX_AGE = 1.0
MIN_CYCLE_GAP = 1.0
"""Requests never cause more than one check cycle per this many seconds."""
MAX_LAG = 7 * 86400.0
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_PARAMETERS = {"/health": {"fresh"}, "/ready": {"lag", "replica"}, "/metrics": set[str]()}
_FLAGS = {"1": True, "true": True, "0": False, "false": False}
JSON = "application/json"


class BadRequest(ValueError):
    """A request the endpoints refuse with 400; the message says why."""


@dataclass(frozen=True)
class Reply:
    code: int
    kind: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


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


def parameters(path: str, query: str) -> dict[str, str]:
    """The query of a request to `path`, each parameter once and known; raises BadRequest."""
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True,
                                       max_num_fields=8)
    except ValueError:
        raise BadRequest("malformed query string") from None
    accepted = _PARAMETERS.get(path, set())
    found: dict[str, str] = {}
    for key, value in pairs:
        if key not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            raise BadRequest(f"unknown parameter {key[:40]!r} (accepted: {known})")
        if key in found:
            raise BadRequest(f"parameter {key!r} given twice")
        found[key] = value
    return found


def _flag(name: str, text: str) -> bool:
    if text.lower() not in _FLAGS:
        raise BadRequest(f"{name}={text[:40]!r}: use 1 or 0")
    return _FLAGS[text.lower()]


def _lag(text: str) -> float:
    try:
        seconds = parse_duration(text[:40]).total_seconds()
    except (ValueError, OverflowError):
        raise BadRequest(f"lag={text[:40]!r}: not a duration (use e.g. 500ms, 5s, 2m)") from None
    if len(text) > 40 or seconds > MAX_LAG:
        raise BadRequest(f"lag={text[:40]!r}: at most {MAX_LAG / 86400:g}d")
    return seconds


class HealthServer:
    """The endpoints of one monitor on a bounded HTTP server; `start()` returns once it listens."""

    def __init__(self, monitor: HealthMonitor, exposure: Exposure, *, workers: int = WORKERS,
                 backlog: int = BACKLOG, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.monitor = monitor
        self.exposure = exposure
        self.registry = registry_for(HealthCollector(monitor))
        self.httpd = BoundedHTTPServer((exposure.host, exposure.port), _handler(self),
                                       workers=workers, backlog=backlog,
                                       request_timeout=request_timeout, tls=exposure.tls)
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

    def respond(self, path: str, query: str, authorization: str | None = None) -> Reply:
        """The answer to a GET of `path?query` with that Authorization header."""
        known = path in _PARAMETERS
        if not known:
            return Reply(404, JSON, _json({"error": "not found",
                                           "endpoints": sorted(_PARAMETERS)}))
        trusted = self.exposure.authorized(authorization)
        if not trusted and (path != "/ready" or authorization is not None):
            return Reply(401, JSON, _json({"error": "a bearer token is required"}),
                         (("WWW-Authenticate", 'Bearer realm="dbops-health"'),))
        try:
            given = parameters(path, query)
            if path == "/metrics":
                return Reply(200, CONTENT_TYPE_LATEST, exposition(self.registry))
            if path == "/health":
                return self._health(_flag("fresh", given["fresh"]) if "fresh" in given else False)
            lag = _lag(given["lag"]) if "lag" in given else None
            replica = given.get("replica")
            if replica is not None and not _NAME.match(replica):
                raise BadRequest(f"replica={replica[:40]!r}: not a replica name")
        except BadRequest as exc:
            return Reply(400, JSON, _json({"error": str(exc)}))
        return self._ready(lag, replica, full=trusted)

    def _health(self, fresh: bool) -> Reply:
        wanted = MIN_CYCLE_GAP if fresh else max(self.monitor.interval, MIN_CYCLE_GAP)
        report = self.monitor.current(max_age=wanted)
        code = 503 if report.status == "critical" or report.error else 200
        return Reply(code, JSON, _json(report.to_dict()))

    def _ready(self, lag: float | None, replica: str | None, *, full: bool) -> Reply:
        report = self.monitor.current(max_age=max(READY_MAX_AGE, MIN_CYCLE_GAP))
        reasons = readiness(report, lag=lag, replica=replica)
        body: dict[str, Any] = {"ready": not reasons}
        if full:
            body |= {"status": report.status, "checked_at": report.checked_at.isoformat(),
                     "reasons": reasons}
        return Reply(503 if reasons else 200, JSON, _json(body))


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _handler(server: HealthServer) -> type[DeadlineHandler]:
    class Handler(DeadlineHandler):
        server_version = "dbops-health"

        def do_GET(self) -> None:
            self.begin_response()
            url = urllib.parse.urlsplit(self.path)
            try:
                reply = server.respond(url.path, url.query, self.headers.get("Authorization"))
            except Exception:  # one bad request must not take the endpoint down
                LOG.exception("GET %s failed", url.path[:200])
                reply = Reply(500, JSON, _json({"error": "internal error"}))
            self.send_response(reply.code)
            self.send_header("Content-Type", reply.kind)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("%s %s", self.address_string(), format % args)

    return Handler
