"""The `dbops health` pipeline (called directly until cli.py wires it): formats, exit codes,
--watch, --serve with /health, /ready and /metrics, and no secret in any output."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from harness import Project
from prometheus_client.parser import text_string_to_metric_families

from dbops.cli import exits
from dbops.config.load import load_plan
from dbops.config.model import Plan
from dbops.errors import DbopsError
from dbops.health.command import run_health, serve
from dbops.health.exposure import parse_address

SENTINEL = "Sentinel-Pw-77ab"


def plan_of(project: Project, extra: str = "", environ: dict[str, str] | None = None) -> Plan:
    project.write_plan(extra)
    return load_plan("test", root=project.root, environ=environ or {})


def run(plan: Plan, fmt: str = "text", **kwargs: Any) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = exits.health(run_health(plan, fmt, echo=lines.append, **kwargs))
    return code, lines


def test_text_and_json_of_a_healthy_database_exit_0(project: Project) -> None:
    plan = plan_of(project)
    code, lines = run(plan)
    assert code == 0, lines
    assert lines[0].startswith("test: ok (13 checks in ")
    assert "  ok        connectivity            connected in " in lines[0]
    code, lines = run(plan, "json")
    data = json.loads(lines[0])
    assert code == 0 and data["status"] == "ok" and data["format_version"] == 1
    assert data["error"] is None and data["queries"] == 2
    assert {c["name"] for c in data["checks"]} >= {"connectivity", "long_transaction"}
    assert data["trends"] == []


def test_exit_codes_warning_critical_and_could_not_check(project: Project) -> None:
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_key ON t (id)")
    assert run(plan_of(project))[0] == 2
    with psycopg.connect(project.database.conninfo) as idler:
        idler.execute("SELECT 1")
        code, lines = run(plan_of(project, "health:\n  thresholds: { long_transaction: 1ms }\n"))
    assert code == 3
    assert "critical  long_transaction" in lines[0]
    code, lines = run(plan_of(project, "health:\n  enabled: false\n"))
    assert (code, lines) == (1, ["could not check: health checks are off in the plan "
                                 "(health.enabled: false)"])


def test_unreachable_database_is_critical_and_never_shows_the_password(project: Project) -> None:
    project.write_plan()
    project.plan.write_text(project.plan.read_text().replace(
        f"port: {project.database.port}", "port: 1"))
    plan = load_plan("test", root=project.root, environ={"DB_PASSWORD": SENTINEL})
    for fmt in ("text", "json"):
        code, lines = run(plan, fmt)
        assert code == 3
        assert SENTINEL not in "\n".join(lines)
    assert "cannot connect to postgres@127.0.0.1:1/" in lines[0]


def test_sentinel_password_not_in_any_output_or_history(project: Project) -> None:
    plan = plan_of(project, environ={"DB_PASSWORD": SENTINEL})
    for fmt in ("text", "json"):
        code, lines = run(plan, fmt, watch=True, cycles=2, interval=0.05)
        assert code == 0 and SENTINEL not in "\n".join(lines)
    history = project.root / ".dbops" / "health" / "test.jsonl"
    assert SENTINEL not in history.read_text()


def test_watch_prints_every_cycle_and_redraws_a_live_table(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_of(project)
    code, lines = run(plan, "json", watch=True, cycles=3, interval=0.05)
    assert code == 0 and len(lines) == 3
    assert all(json.loads(line)["status"] == "ok" for line in lines)
    code, lines = run(plan, "text", watch=True, cycles=2, interval=0.05)
    assert code == 0 and lines[1] == "" and lines[2].startswith("test: ok")
    assert exits.health(run_health(plan, "text", watch=True, cycles=2, interval=0.05,
                                   live=True)) == 0
    screen = capsys.readouterr().out
    assert "connectivity" in screen and "explanation" in screen


@pytest.fixture
def served(project: Project) -> Iterator[tuple[str, Project]]:
    project.write_plan("health:\n  check_interval: 1s\n  thresholds: { long_transaction: 300ms }\n")
    plan = load_plan("test", root=project.root, environ={})
    stop, bound, lines = threading.Event(), threading.Event(), []
    address: dict[str, tuple[str, int]] = {}

    def started(where: tuple[str, int]) -> None:
        address["at"] = where
        bound.set()

    thread = threading.Thread(target=serve, args=(plan, "127.0.0.1:0"),
                              kwargs={"stop": stop, "started": started, "echo": lines.append})
    thread.start()
    try:
        assert bound.wait(10)
        host, port = address["at"]
        assert lines == [f"serving /health, /ready and /metrics for test on http://{host}:{port} "
                         "(a check every 1s)"]
        yield f"http://{host}:{port}", project
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_health_ready_and_metrics(served: tuple[str, Project]) -> None:
    base, project = served
    code, body = get(f"{base}/health")
    report = json.loads(body)
    assert code == 200 and report["status"] == "ok" and report["environment"] == "test"
    code, body = get(f"{base}/ready?lag=5s")
    assert (code, json.loads(body)["ready"]) == (200, True)
    code, body = get(f"{base}/ready?lag=5s&replica=nope")
    assert code == 503 and json.loads(body)["reasons"] == ["no replica named nope in the plan"]
    assert get(f"{base}/ready?lag=soon")[0] == 400
    assert get(f"{base}/nowhere")[0] == 404

    code, body = get(f"{base}/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert {"dbops_up", "dbops_round_trip_seconds", "dbops_connection_utilization_ratio",
            "dbops_oldest_transaction_age_seconds", "dbops_xid_wraparound_ratio",
            "dbops_health_status", "dbops_health_checks", "dbops_deadlocks"} <= set(families)
    assert families["dbops_deadlocks"].type == "counter"
    assert families["dbops_up"].samples[0].value == 1.0
    statuses = {s.labels["check"]: s.value for s in families["dbops_health_status"].samples}
    assert statuses["connectivity"] == 0.0
    assert all(name.startswith("dbops_") for name in families)

    with psycopg.connect(project.database.conninfo) as idler:
        idler.execute("SELECT 1")
        time.sleep(1.5)  # fresh=1: a cycle at most a second old, so one begun after 0.5s
        code, body = get(f"{base}/health?fresh=1")
        fresh = json.loads(body)
        assert code == 503 and fresh["status"] == "critical"
        assert fresh["checked_at"] > report["checked_at"]
        assert get(f"{base}/ready")[0] == 200  # a long transaction does not make it unready


def test_serve_refuses_a_bad_address_or_a_taken_port(served: tuple[str, Project]) -> None:
    base, project = served
    plan = load_plan("test", root=project.root, environ={})
    with pytest.raises(DbopsError, match="use HOST:PORT"):
        serve(plan, "localhost")
    with pytest.raises(DbopsError, match=r"cannot listen on 127\.0\.0\.1:"):
        serve(plan, base.removeprefix("http://"))
    assert parse_address(":9187") == ("127.0.0.1", 9187)
    assert parse_address("[::1]:9187") == ("::1", 9187)
