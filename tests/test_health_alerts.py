"""Alerts: raised on a status change, repeated at most once per cooldown, resolved when the check
recovers; a webhook that fails or times out is retried and logged while monitoring goes on."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import Project, idle_for, wait_until

from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.errors import PlanError
from dbops.health.alerts import AlertDispatcher, AlertEvent, Channel, DeliveryFailed, channel
from dbops.health.monitor import HealthMonitor
from dbops.health.result import CheckResult, HealthReport
from dbops.levels import Status

TOKEN = "Sentinel-Token-41d9"


class Hook:
    """A webhook receiver on 127.0.0.1: answers 200, 500, or only after `delay` seconds."""

    def __init__(self, mode: str = "ok", delay: float = 1.0, location: str = "") -> None:
        self.mode, self.delay, self.location = mode, delay, location
        self.bodies: list[dict[str, Any]] = []
        self.hits = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.hits += 1
                if hook.mode == "sleep":
                    time.sleep(hook.delay)
                if hook.mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", hook.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 500 if hook.mode == "500" else 200
                if code == 200:
                    hook.bodies.append(json.loads(body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{TOKEN}"

    @property
    def shown(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/***"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Callable[..., Hook]]:
    made: list[Hook] = []

    def make(mode: str = "ok", delay: float = 1.0, location: str = "") -> Hook:
        made.append(Hook(mode, delay, location))
        return made[-1]

    yield make
    for h in made:
        h.close()


def alert_plan(project: Project, hook: Hook, *, retries: int, thresholds: str) -> Plan:
    project.write_plan(
        "health:\n"
        f"  thresholds: {{ {thresholds} }}\n"
        "  alerts:\n    - { type: log }\n"
        f"    - {{ type: webhook, url: \"{hook.url}\", allow_http: true, timeout: 200ms, "
        f"retries: {retries} }}\n")
    return load_plan("test", root=project.root, environ={})


def test_webhook_answering_500_is_retried_and_logged_while_monitoring_goes_on(
    project: Project, hook: Callable[..., Hook], caplog: pytest.LogCaptureFixture
) -> None:
    failing = hook("500")
    plan = alert_plan(project, failing, retries=2, thresholds="connection_utilization: 0.001, error_rate: 1")
    caplog.set_level(logging.INFO, logger="dbops.health")
    monitor = HealthMonitor(plan, persist=False, recover=False, interval=0.1)
    try:
        monitor.start_monitoring()
        wait_until(lambda: "gave up on alert" in caplog.text)
        assert monitor.running and monitor.cycles >= 3
    finally:
        monitor.stop_monitoring()
    assert failing.hits == 3
    assert (f"alert connection_utilization/firing to webhook {failing.shown} failed (attempt 1 of "
            "3): HTTP 500 Internal Server Error") in caplog.text
    assert "(attempt 3 of 3)" in caplog.text
    assert (f"gave up on alert connection_utilization/firing to webhook {failing.shown} after 3 "
            "attempt(s)") in caplog.text
    assert "[test] critical: connection_utilization: " in caplog.text  # the log channel
    assert TOKEN not in caplog.text
    assert monitor.alert_stats()["given_up"] == 1


def test_webhook_that_times_out_is_retried_and_monitoring_goes_on(
    project: Project, hook: Callable[..., Hook], caplog: pytest.LogCaptureFixture
) -> None:
    slow = hook("sleep", delay=1.0)
    plan = alert_plan(project, slow, retries=1, thresholds="connection_utilization: 0.001, error_rate: 1")
    caplog.set_level(logging.WARNING, logger="dbops.health.alerts")
    monitor = HealthMonitor(plan, persist=False, recover=False, interval=0.1)
    try:
        monitor.start_monitoring()
        wait_until(lambda: "failed (attempt 1 of 2)" in caplog.text)
        cycles = monitor.cycles
        wait_until(lambda: "gave up on alert" in caplog.text)
        assert monitor.cycles >= cycles + 3  # cycles ran while the webhook was retried
        assert monitor.running
    finally:
        monitor.stop_monitoring()
    assert "failed (attempt 1 of 2): no answer within 0.2s" in caplog.text
    assert "failed (attempt 2 of 2): no answer within 0.2s" in caplog.text
    assert TOKEN not in caplog.text


def test_webhook_gets_the_alert_and_then_the_resolved_notice(
    project: Project, hook: Callable[..., Hook]
) -> None:
    receiver = hook("ok")
    plan = alert_plan(project, receiver, retries=0, thresholds="idle_in_transaction: 200ms")
    with HealthMonitor(plan, persist=False, recover=False) as monitor:
        monitor.force_health_check()
        with psycopg.connect(project.database.conninfo, application_name="forgetful") as idler:
            idler.execute("SELECT 1")
            wait_until(lambda: idle_for(project.database, idler.info.backend_pid) > 0.2,
                       what="the session to be idle in a transaction past 200ms")
            monitor.force_health_check()
            monitor.force_health_check()  # still critical: within the cooldown, not repeated
        monitor.force_health_check()
        wait_until(lambda: len(receiver.bodies) >= 2)
    firing, resolved = receiver.bodies
    assert (firing["check"], firing["state"], firing["status"], firing["previous_status"]) == (
        "idle_in_transaction", "firing", "critical", "ok")
    assert firing["message"].startswith("1 session(s) idle in a transaction; oldest: pid ")
    assert firing["environment"] == "test" and firing["threshold"] == 0.2
    assert (resolved["check"], resolved["state"], resolved["status"]) == (
        "idle_in_transaction", "resolved", "ok")
    assert resolved["message"] == "no session is idle in a transaction"


class Recorder(Channel):
    kind = "recorder"
    threaded = False

    def __init__(self, cooldown: float) -> None:
        super().__init__(timeout=1, retries=0, cooldown=cooldown)
        self.events: list[AlertEvent] = []

    def deliver(self, event: AlertEvent) -> None:
        self.events.append(event)


def report(status: Status) -> HealthReport:
    check = CheckResult("long_query", 1.0, 0.5, status, f"it is {status}")
    return HealthReport("test", datetime.now(UTC), 0.0, 2, (check,))


def test_status_changes_alert_repeats_wait_for_the_cooldown_and_recovery_resolves() -> None:
    recorder = Recorder(cooldown=0.3)
    now = [100.0]
    dispatcher = AlertDispatcher("test", [recorder], clock=lambda: now[0])
    for status in ("ok", "critical", "critical"):
        dispatcher.observe(report(status))  # type: ignore[arg-type]
    now[0] += 0.35  # the cooldown has passed
    for status in ("critical", "warning", "ok", "ok"):
        dispatcher.observe(report(status))  # type: ignore[arg-type]
    assert [(e.state, e.status, e.repeat) for e in recorder.events] == [
        ("firing", "critical", False),
        ("firing", "critical", True),
        ("firing", "warning", False),
        ("resolved", "ok", False),
    ]
    assert recorder.events[1].summary() == "[test] critical (still): long_query: it is critical"


def test_command_channel_gets_the_alert_on_stdin_and_its_failure_is_logged(
    project: Project, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "alert.json"
    project.write_plan(
        "health:\n  thresholds: { connection_utilization: 0.001 }\n  alerts:\n"
        f"    - {{ type: command, command: \"cat > {out}\" }}\n"
        "    - { type: command, command: \"echo refused >&2; exit 3\", retries: 0 }\n")
    plan = load_plan("test", root=project.root, environ={})
    caplog.set_level(logging.WARNING, logger="dbops.health.alerts")
    with HealthMonitor(plan, persist=False, recover=False) as monitor:
        monitor.force_health_check()
        wait_until(lambda: out.exists() and out.read_text() and "gave up" in caplog.text)
    sent = json.loads(out.read_text())
    assert (sent["check"], sent["status"], sent["state"]) == (
        "connection_utilization", "critical", "firing")
    assert "to command echo failed (attempt 1 of 1): exit 3: refused" in caplog.text


def test_command_channel_child_gets_only_path_home_lang_and_what_it_declares(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "env.txt"
    for name, value in {"DB_PASSWORD": "Sentinel-Pw-c0ffee", "PGPASSWORD": "Sentinel-Pg-c0ffee",
                        "HOOK_URL": "https://127.0.0.1:9/Sentinel-Hook-c0ffee",
                        "DBOPS_HEALTH_TOKEN": "Sentinel-Token-c0ffee", "PAGER_ROUTE": "db-oncall",
                        "UNRELATED": "Sentinel-Other-c0ffee", "LANG": "C.UTF-8"}.items():
        monkeypatch.setenv(name, value)
    project.write_plan(
        "health:\n  thresholds: { connection_utilization: 0.001 }\n  alerts:\n"
        "    - { type: webhook, url: \"${HOOK_URL}\", timeout: 100ms, retries: 0 }\n"
        f"    - {{ type: command, command: \"env > {out}\", env: [PAGER_ROUTE, NOT_SET] }}\n")
    plan = load_plan("test", root=project.root)
    assert {"DB_PASSWORD", "HOOK_URL"} <= plan.secret_variables
    with HealthMonitor(plan, persist=False, recover=False) as monitor:
        monitor.force_health_check()
        wait_until(lambda: out.exists() and "DBOPS_ALERT_CHECK" in out.read_text())
    text = out.read_text()
    child = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert "Sentinel" not in text
    assert child["PAGER_ROUTE"] == "db-oncall" and child["LANG"] == "C.UTF-8" and child["PATH"]
    assert child["DBOPS_ALERT_CHECK"] == "connection_utilization"
    assert not [name for name in child if name.startswith("PG") or name.startswith("DB_")]
    assert set(child) <= {"PATH", "HOME", "LANG", "PAGER_ROUTE", "PWD", "SHLVL", "_",
                          *(n for n in child if n.startswith("DBOPS_ALERT_"))}


def test_a_plan_cannot_pass_a_secret_to_a_command(project: Project) -> None:
    project.write_plan(
        "health:\n  alerts:\n"
        "    - { type: webhook, url: \"${HOOK_URL}\" }\n"
        "    - { type: command, command: \"true\", env: [DB_PASSWORD, PGSERVICE, HOOK_URL, OK] }\n")
    with pytest.raises(PlanError) as caught:
        load_plan("test", root=project.root, environ={"HOOK_URL": "https://127.0.0.1:9/x"})
    lines = [p.split(": ", 1)[1] for p in str(caught.value).splitlines()]
    assert lines == [f"health.alerts[1].env[{n}]: {name} holds a secret: it is never passed to a "
                     "command" for n, name in enumerate(["DB_PASSWORD", "PGSERVICE", "HOOK_URL"])]


def test_webhook_needs_https_outside_development_unless_the_plan_allows_http(
    project: Project,
) -> None:
    alert = "health:\n  alerts:\n    - { type: webhook, url: \"${HOOK_URL}\"%s }\n"
    environ = {"HOOK_URL": f"http://127.0.0.1:9/hooks/{TOKEN}"}
    project.write_plan(alert % "")
    with pytest.raises(PlanError) as caught:
        load_plan("test", root=project.root, environ=environ)
    assert str(caught.value).endswith("health.alerts[0].url: a webhook outside development needs "
                                      "https:// (or allow_http: true on this alert)")
    assert TOKEN not in str(caught.value)
    project.write_plan(alert % "", environment="development")
    assert load_plan("development", root=project.root, environ=environ).health.alerts
    project.write_plan(alert % ", allow_http: true")
    assert load_plan("test", root=project.root, environ=environ).health.alerts[0].allow_http
    project.write_plan(alert % "")
    with pytest.raises(PlanError, match="a webhook URL starts with https://"):
        load_plan("test", root=project.root, environ={"HOOK_URL": "file:///etc/passwd"})


def test_webhook_does_not_follow_a_redirect_to_another_host(
    project: Project, hook: Callable[..., Hook]
) -> None:
    elsewhere = hook("ok")
    other = f"http://localhost:{elsewhere.server.server_address[1]}/stolen"
    redirecting = hook("redirect", location=other)
    plan = alert_plan(project, redirecting, retries=0, thresholds="connection_utilization: 0.9")
    webhook = channel(plan.health.alerts[1], plan.secret_variables)
    event = AlertEvent("test", "connectivity", "firing", "critical", "ok", None, None, "down",
                       datetime.now(UTC))
    with pytest.raises(DeliveryFailed) as caught:
        webhook.deliver(event)
    assert str(caught.value) == (f"HTTP 307: redirected to http://localhost:"
                                 f"{elsewhere.server.server_address[1]}/***, another host: "
                                 "not followed")
    assert redirecting.hits == 1 and elsewhere.hits == 0
