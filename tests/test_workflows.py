"""The CI examples in .github/workflows run exactly the commands tested here, against a real
server: the pull-request check and the scheduled drift detection."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from harness import Project

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def commands(workflow: str, environment: str = "") -> list[list[str]]:
    """Every `dbops ...` command line of a workflow's run steps, output redirection removed and
    the matrix environment filled in."""
    document = yaml.safe_load((WORKFLOWS / workflow).read_text())
    found = []
    for job in document["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                line = line.strip().replace("${{ matrix.environment }}", environment)
                if line.startswith("dbops "):
                    found.append(shlex.split(re.sub(r"\s*>.*$", "", line))[1:])
    return found


def prepare(project: Project) -> None:
    for environment in ("production", "staging"):
        project.write_plan("settings:\n  work_mem: 24MB\n", environment=environment)
    (project.root / "migrations" / "20250101000001_items.sql").write_text(
        "-- migrate:up\nCREATE TABLE items (id int);\n-- migrate:down\nDROP TABLE items;\n"
    )
    project.run("migrate", "hash")


def test_pull_request_check(project: Project, server_reset: None) -> None:
    prepare(project)
    found = commands("dbops-pr.yml")
    assert [c[:2] for c in found] == [["validate"], ["migrate", "validate"], ["plan", "production"]]
    for command in found[:2]:
        result = project.run(*command)
        assert result.returncode == 0, result.stderr
    plan = project.run(*found[2])
    assert plan.returncode == 2  # changes: the job posts them and passes
    assert plan.stdout.startswith("### dbops plan for production")
    assert project.run("apply", "production", "--yes").returncode == 0
    assert project.run(*found[2]).returncode == 0


def test_scheduled_drift(project: Project, server_reset: None) -> None:
    prepare(project)
    matrix = yaml.safe_load((WORKFLOWS / "dbops-drift.yml").read_text())
    environments = next(iter(matrix["jobs"].values()))["strategy"]["matrix"]["environment"]
    assert environments == ["staging", "production"]
    for environment, before_apply in zip(environments, (3, 0), strict=True):
        [args] = commands("dbops-drift.yml", environment)
        assert args == ["drift", environment, "--format", "json"]
        # staging first: pending configuration only; production then finds the server as planned
        assert project.run(*args).returncode == before_apply
        assert project.run("apply", environment, "--yes").returncode == 0
        assert project.run(*args).returncode == 0
    with project.database.connect() as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '8MB'")
        conn.execute("SELECT pg_reload_conf()")
    assert project.run(*commands("dbops-drift.yml", "staging")[0]).returncode == 2
