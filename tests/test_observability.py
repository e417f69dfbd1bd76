"""The Prometheus rules and the Grafana dashboard under observability/: generated from the plan,
checked and unit-tested by promtool, and reading only metrics a real /metrics serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from harness import Project
from prometheus_client.parser import text_string_to_metric_families

from dbops import ledger
from dbops.config.load import load_plan
from dbops.health.command import serve
from dbops.local import Cluster
from dbops.migrate import files
from dbops.observability.prometheus_rules import metric_names
from dbops.pipeline import drift
from dbops.pool import PoolManager

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "observability" / "prometheus" / "dbops-rules.yml"
RULE_TESTS = REPO / "observability" / "prometheus" / "dbops-rules.test.yml"
DASHBOARD = REPO / "observability" / "grafana" / "dbops-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed "
                                    "(bin/bootstrap installs the prometheus package)")


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def _dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(f"{panel['title']} {target['refId']}", target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_checked_in_rules_are_what_the_command_generates() -> None:
    made = subprocess.run([sys.executable, "-m", "dbops", "observability", "rules", "production"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert made.stdout == RULES.read_text(), (
        "regenerate: dbops observability rules production > observability/prometheus/dbops-rules.yml")


def test_the_rules_take_their_thresholds_from_the_plan(project: Project) -> None:
    project.write_plan("health:\n  thresholds: { connection_utilization: 0.65, replication_lag: 42s }\n")
    made = project.run("observability", "rules", "test", "--runbook-base",
                       "https://example.org/dbops#")
    assert made.returncode == 0, made.stderr
    alerts = {r["alert"]: r for g in yaml.safe_load(made.stdout)["groups"] for r in g["rules"]
              if "alert" in r}
    assert alerts["DbopsConnectionUtilizationHigh"]["expr"] == (
        'dbops_connection_utilization_ratio > 0.65 and on (job, instance) '
        'dbops_health_info{environment="test"}')
    assert alerts["DbopsReplicationLagHigh"]["expr"].startswith(
        "dbops_replication_lag_seconds > 42 ")
    assert alerts["DbopsPoolLeaks"]["annotations"]["runbook_url"] == (
        "https://example.org/dbops##dbopspoolleaks")


@needs_promtool
def test_promtool_checks_the_rules_and_every_alert_fires_in_its_unit_test() -> None:
    checked = _promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    fired = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert {r["alert"] for r in _rules() if "alert" in r} <= fired


def test_every_runbook_url_leads_to_a_readme_heading() -> None:
    headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in (REPO / "README.md").read_text().splitlines() if line.startswith("#")}
    anchors = {r["annotations"]["runbook_url"].partition("#")[2] for r in _rules() if "alert" in r}
    assert anchors and anchors <= headings, sorted(anchors - headings)


@needs_promtool
def test_the_dashboard_is_a_grafana_model_whose_expressions_parse(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert {"Health", "Pool", "Replication", "Migrations and applies", "Backups",
            "Drift"} <= titles
    wrapped = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{n}",
         "expr": expr.replace("$instance", ".*").replace("$environment", "production")}
        for n, (_, expr) in enumerate(_dashboard_targets())]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(wrapped))
    checked = _promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_dashboard_targets())} rules found" in checked.stdout


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def _exists_on(cluster: Cluster, name: str) -> bool:
    with psycopg.connect(host=cluster.host, port=cluster.port, user="postgres",
                         dbname="postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def test_a_real_metrics_endpoint_serves_every_metric_the_rules_and_dashboard_read(
        project: Project, pg_replica: Cluster) -> None:
    project.write_plan(
        "backup: { directory: backups, schedule: \"0 3 * * *\", before_migrate: false }\n"
        "health: { check_interval: 1s }\n",
        database=f"  replicas:\n    - {{ name: replica1, host: 127.0.0.1, port: {pg_replica.port} }}\n")
    (project.root / "migrations" / "20250101000000_tasks.sql").write_text(
        "-- migrate:up\nCREATE TABLE tasks (id int);\n-- migrate:down\nDROP TABLE tasks;\n")
    files.write_sum(project.root / "migrations")
    for command in (("migrate", "up", "test", "--yes"), ("backup", "create", "test")):
        made = project.run(*command)
        assert made.returncode == 0, made.stderr
    plan = load_plan("test", root=project.root, environ={})
    with project.database.connect() as conn:  # what a failed apply leaves in the audit log
        ledger.ensure_schema(conn)
        conn.execute("INSERT INTO dbops.apply_audit (client_host, dbops_version, environment,"
                     " plan_hash, changes, result) VALUES ('ci', '0', 'test', 'x', '[]', 'failed')")
    deadline = time.monotonic() + 30
    while not _exists_on(pg_replica, project.database.name) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = drift(plan)

    stop, bound = threading.Event(), threading.Event()
    at: list[int] = []

    def started(where: tuple[str, int]) -> None:
        at.append(where[1])
        bound.set()

    with PoolManager.from_plan(plan) as pool:
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        thread = threading.Thread(target=serve, args=(plan, "127.0.0.1:0"), kwargs={
            "pool": pool, "stop": stop, "started": started, "echo": lambda line: None})
        thread.start()
        try:
            assert bound.wait(15)
            text = ""
            deadline = time.monotonic() + 20
            while "dbops_rollback_ratio " not in text and time.monotonic() < deadline:
                time.sleep(0.3)
                text = _scrape(at[0])
        finally:
            stop.set()
            thread.join(15)
    samples = {s.name: s.value for family in text_string_to_metric_families(text)
               for s in family.samples}
    wanted = set().union(*(metric_names(r["expr"]) for r in _rules()),
                         *(metric_names(expr) for _, expr in _dashboard_targets()))
    assert wanted - set(samples) == set(), text
    assert samples["dbops_apply_failures_total"] == 1
    assert samples["dbops_applies_total"] == 1
    assert samples["dbops_backups"] == 1
    assert samples["dbops_backup_verification_failures"] == 0
    assert samples["dbops_backup_overdue"] == 0
    assert abs(samples["dbops_backup_last_success_timestamp_seconds"] - time.time()) < 120
    assert samples["dbops_drift_out_of_band_items"] == len(found.active("out-of-band"))
    assert samples["dbops_drift_pending_items"] == len(found.active("pending"))
    assert samples["dbops_migrations_applied"] == 1
