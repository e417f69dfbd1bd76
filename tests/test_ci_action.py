"""The GitHub Action (action.yml, drift/action.yml): its steps are the shell scripts in
ci/github, run here as GitHub runs them (its environment variables, a pull_request event) against
a real server, with a small HTTP server standing in for GitHub's REST API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from harness import Project, child_env
from psycopg import sql

REPOSITORY = Path(__file__).resolve().parents[1]
SCRIPTS = REPOSITORY / "ci" / "github"
TOKEN = "ghs_not-a-real-token-0123456789"


@dataclass
class FakeGitHub:
    """The three issue-comment endpoints the action calls; records every request."""

    comments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, str, dict[str, Any] | None]] = field(default_factory=list)
    url: str = ""

    def handle(self, method: str, path: str, auth: str, body: dict[str, Any] | None
               ) -> tuple[int, Any]:
        self.requests.append((method, path, auth, body))
        if auth != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}
        route = path.split("?")[0]
        if method == "GET" and route == "/repos/octo/app/issues/7/comments":
            return 200, self.comments
        if method == "POST" and route == "/repos/octo/app/issues/7/comments" and body:
            comment = {"id": 1000 + len(self.comments), "body": body["body"],
                       "user": {"login": "github-actions[bot]", "type": "Bot"}}
            comment["html_url"] = f"https://github.example/octo/app/pull/7#c{comment['id']}"
            self.comments.append(comment)
            return 201, comment
        if method == "PATCH" and route.startswith("/repos/octo/app/issues/comments/") and body:
            wanted = int(route.rsplit("/", 1)[1])
            for comment in self.comments:
                if comment["id"] == wanted:
                    comment["body"] = body["body"]
                    return 200, comment
        return 404, {"message": "Not Found"}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(comments=[{"id": 1, "body": "Looks good to me", "html_url": "x",
                                 "user": {"login": "reviewer", "type": "User"}}])

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, self.path,
                                         self.headers.get("Authorization", ""), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def runner_environment(project: Project, github: FakeGitHub, tmp: Path) -> dict[str, str]:
    """What GitHub sets for a step of a pull_request job, and `dbops` on PATH (this checkout)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "dbops"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dbops "$@"\n')
    shim.chmod(0o755)
    event = tmp / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 7,
                                 "pull_request": {"number": 7, "head": {"sha": "abc"}}}))
    (tmp / "output").touch()
    (tmp / "summary.md").touch()
    env = child_env(drop=("DB_", "GITHUB_"))
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "octo/app",
            "GITHUB_API_URL": github.url, "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": "42", "GITHUB_TOKEN": TOKEN,
            "GITHUB_OUTPUT": str(tmp / "output"), "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
            "DBOPS_ENVIRONMENT": "test", "DBOPS_COMMENT": "true"}


def run(script: str, project: Project, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPTS / script)], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def outputs(tmp: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp / "output").read_text().splitlines())


def write_migration(project: Project, index: str) -> None:
    (project.root / "migrations" / "20250101000002_index.sql").write_text(
        f"-- migrate:up\n{index} items_note ON items (note);\n"
        "-- migrate:down\nDROP INDEX CONCURRENTLY IF EXISTS items_note;\n")
    assert project.run("migrate", "hash").returncode == 0


def test_pull_request_step_comments_lint_findings_then_updates_the_same_comment(
        project: Project, github: FakeGitHub, tmp_path: Path) -> None:
    project.write_plan("migrations: { zero_downtime: false, lint: { fail_on: info } }\n")
    with project.database.connect() as conn:
        conn.execute("CREATE TABLE items AS SELECT g AS id, 'n' AS note "
                     "FROM generate_series(1, 10) g")
    write_migration(project, "CREATE INDEX")  # blocks writes: lint refuses it
    env = runner_environment(project, github, tmp_path)

    first = run("plan-comment.sh", project, env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "::error title=dbops migrate lint failed::" in first.stdout
    posts = [r for r in github.requests if r[0] == "POST"]
    assert len(posts) == 1 and posts[0][1] == "/repos/octo/app/issues/7/comments"
    body = github.comments[-1]["body"]
    assert body.startswith("<!-- dbops-plan -->\n<!-- dbops-environment: test -->\n")
    assert "- migrate lint: **failed** (exit 1)" in body
    assert "index-not-concurrent" in body
    assert "### dbops plan for test" in body and "migration.20250101000002" in body
    assert outputs(tmp_path) == {"validate-exit-code": "0", "lint-exit-code": "1",
                                 "plan-exit-code": "2",
                                 "comment-url": "https://github.example/octo/app/pull/7#c1001"}
    assert "index-not-concurrent" in (tmp_path / "summary.md").read_text()
    assert TOKEN not in first.stdout + first.stderr

    write_migration(project, "CREATE INDEX CONCURRENTLY IF NOT EXISTS")  # the fix, pushed
    (tmp_path / "output").write_text("")
    second = run("plan-comment.sh", project, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert [r[0] for r in github.requests] == ["GET", "POST", "GET", "PATCH"]
    assert github.requests[-1][1] == "/repos/octo/app/issues/comments/1001"
    assert len(github.comments) == 2 and github.comments[0]["body"] == "Looks good to me"
    assert "- migrate lint: passed" in github.comments[1]["body"]
    assert {r[2] for r in github.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN not in second.stdout + second.stderr


def test_read_only_role_runs_the_pull_request_check_and_drift(
        project: Project, github: FakeGitHub, tmp_path: Path, server_reset: None) -> None:
    """The grants the README's "CI" section documents, exactly, suffice for plan --diff,
    migrate lint --env and drift."""
    project.write_plan("settings:\n  work_mem: 24MB\n")
    role = "ci_" + project.database.name.removeprefix("t_")
    with project.database.connect() as conn:  # before an apply: drift does not report it
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    assert project.run("apply", "test", "--yes").returncode == 0
    grants = (REPOSITORY / "ci" / "read-only-role.sql").read_text()
    with project.database.connect() as conn:
        code = "\n".join(ln for ln in grants.splitlines() if not ln.startswith("--"))
        for statement in filter(str.strip, code.split(";")):
            conn.execute(statement.replace("dbops_ci", role)
                         .replace("app_db", project.database.name).encode())
    try:
        plan = project.plan.read_text()
        project.plan.write_text(plan.replace(f"  user: {project.database.user}\n",
                                             f"  user: {role}\n"))
        (project.root / "migrations" / "20250101000001_more.sql").write_text(
            "-- migrate:up\nCREATE TABLE more (id int);\n-- migrate:down\nDROP TABLE more;\n")
        assert project.run("migrate", "hash").returncode == 0
        env = runner_environment(project, github, tmp_path)
        check = run("plan-comment.sh", project, env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert outputs(tmp_path)["plan-exit-code"] == "2"
        assert "migration.20250101000001" in github.comments[-1]["body"]
        drift = run("drift.sh", project, {**env, "DBOPS_DRIFT_REPORT": str(tmp_path / "d.json")})
        assert drift.returncode == 0, drift.stderr
        assert outputs(tmp_path)["exit-code"] == "3", drift.stdout  # pending, no drift
        assert json.loads((tmp_path / "d.json").read_text())
        as_role = project.database.conninfo.replace(f"user={project.database.user}",
                                                    f"user={role}")
        with psycopg.connect(as_role) as conn, pytest.raises(
                psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE dbops.nope (id int)")
    finally:
        with project.database.connect() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_actions_and_scaffold_call_the_scripts() -> None:
    action = yaml.safe_load((REPOSITORY / "action.yml").read_text())
    runs = [s.get("run", "") for s in action["runs"]["steps"]]
    assert '"$GITHUB_ACTION_PATH/ci/github/plan-comment.sh"' in runs
    assert {"environment", "working-directory", "comment", "dbops-version"} <= set(action["inputs"])
    drift = yaml.safe_load((REPOSITORY / "drift" / "action.yml").read_text())
    assert '"$GITHUB_ACTION_PATH/../ci/github/drift.sh"' in [
        s.get("run", "") for s in drift["runs"]["steps"]]
    for script in SCRIPTS.glob("*.sh"):
        text = script.read_text()
        assert "set -euo pipefail" in text and "set -x" not in text, script.name
