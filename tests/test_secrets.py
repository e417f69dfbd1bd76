"""No password appears in any output of any command: every command runs with a sentinel password."""

from __future__ import annotations

import re

import pytest
from harness import Project

from dbops.connect import environment_endpoint, mask
from dbops.errors import ConnectFailed

SENTINEL = "Sentinel-Pw-5b1e7d"

COMMANDS = [
    ("validate",),
    ("validate", "test"),
    ("validate", "missing-env"),
    ("local", "status"),
    ("migrate", "hash"),
    ("migrate", "status", "test"),
    ("migrate", "status", "test", "--format", "json"),
    ("migrate", "validate", "test"),
    ("migrate", "up", "test", "--dry-run"),
    ("migrate", "up", "test", "--yes"),
    ("rollback", "test", "--dry-run"),
    ("rollback", "test", "--yes"),
    ("migrate", "baseline", "test", "--version", "20250101000001", "--yes"),
    ("plan", "test"),
    ("plan", "test", "--format", "json"),
    ("plan", "test", "--format", "markdown"),
    ("plan", "test", "--diff", "--out", "saved.json"),
    ("apply", "test", "--dry-run"),
    ("apply", "test", "--yes"),
    ("drift", "test"),
    ("drift", "test", "--format", "json"),
    ("health", "test"),
    ("health", "test", "--format", "json"),
]


def add_migration(project: Project) -> None:
    project.write_plan("settings:\n  work_mem: 20MB\n")
    (project.root / "migrations" / "20250101000001_a.sql").write_text(
        "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n"
    )


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_sentinel_password_never_printed(
    project: Project, args: tuple[str, ...], server_reset: None
) -> None:
    add_migration(project)
    project.run("migrate", "hash")
    result = project.run(*args, env={"DB_PASSWORD": SENTINEL})
    assert SENTINEL not in result.stdout + result.stderr
    for written in (project.root / "saved.json", project.root / ".dbops" / "logs" / "pyinfra.log"):
        if written.exists():
            assert SENTINEL not in written.read_text()


def test_apply_writes_pyinfra_log_without_the_password(
    project: Project, server_reset: None
) -> None:
    add_migration(project)
    project.run("migrate", "hash")
    result = project.run("apply", "test", "--yes", env={"DB_PASSWORD": SENTINEL})
    assert result.returncode == 0, result.stderr
    log = (project.root / ".dbops" / "logs" / "pyinfra.log").read_text()
    assert "Starting operation: setting.work_mem on primary" in log
    assert SENTINEL not in log


@pytest.mark.parametrize(
    "args", [c for c in COMMANDS if len(c) > 2 or c[0] in ("plan", "drift", "health")], ids=" ".join
)
def test_sentinel_password_not_printed_when_the_server_is_unreachable(
    project: Project, args: tuple[str, ...]
) -> None:
    add_migration(project)
    project.run("migrate", "hash")
    result = project.run(*args, env={"DB_PASSWORD": SENTINEL, "DB_PORT": "1"})
    if args[0] == "health":  # an unreachable database is the health check's critical verdict
        assert result.returncode == 3
        assert "cannot connect to postgres@127.0.0.1:1/" in result.stdout
    else:
        assert result.returncode == 1
        assert "cannot connect to postgres@127.0.0.1:1/" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr


def test_masking_is_no_oracle_for_a_password_found_elsewhere_in_the_text(project: Project) -> None:
    result = project.run("health", "test", env={"DB_PASSWORD": "127", "DB_PORT": "1"})
    assert result.returncode == 3
    assert "cannot connect to postgres@127.0.0.1:1/" in result.stdout
    assert "***" not in result.stdout + result.stderr


@pytest.mark.parametrize(("text", "masked"), [
    ("host=127.0.0.1 password=127 user=x", "host=127.0.0.1 password=*** user=x"),
    ("password = 'a b\\' c' host=h", "password = *** host=h"),
    ('PGPASSWORD="s e" psql', "PGPASSWORD=*** psql"),
    ("postgresql://app:p%40ss@127.0.0.1:5432/db", "postgresql://app:***@127.0.0.1:5432/db"),
    ("https://hooks.example.com:8443/p:q@r", "https://hooks.example.com:8443/p:q@r"),
    ('{"user": "app", "password": "x\\"y"}', '{"user": "app", "password": "***"}'),
    ("postgres://app@127.0.0.1/db?password=127&x=1", "postgres://app@127.0.0.1/db?password=***"),
    ("127.0.0.1 and 127 stay", "127.0.0.1 and 127 stay"),
])
def test_mask_hides_credentials_where_they_are_credentials(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_a_dsn_error_never_quotes_the_password() -> None:
    with pytest.raises(ConnectFailed) as caught:
        environment_endpoint({}, "postgresql://app:Se%zzcret@127.0.0.1/db")
    assert "Se%zzcret" not in str(caught.value) and "zz" not in str(caught.value)


@pytest.mark.parametrize("env", [{}, {"DB_PASSWORD": SENTINEL}], ids=["no DB_PASSWORD", "DB_PASSWORD set"])
def test_literal_password_refused_whatever_the_environment_has(
    project: Project, env: dict[str, str]
) -> None:
    project.plan.write_text(project.plan.read_text().replace("${DB_PASSWORD:-}", "hunter2"))
    result = project.run("validate", "test", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "plans/test.yaml:8:13: database.password: a literal password is refused outside "
        "development: reference it instead, e.g. ${DB_PASSWORD}"]
    assert "hunter2" not in result.stdout + result.stderr


def test_apply_prompt_names_the_environment_once(project: Project) -> None:
    """On a terminal the question is asked once, naming the environment once; without one, the
    refusal reads the same way."""
    import os
    import pty
    import subprocess
    import sys

    project.write_plan("settings:\n  work_mem: 20MB\n")
    refused = project.run("apply", "test")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: refusing to apply these changes on test without --yes (no terminal to ask)")
    leader, follower = pty.openpty()
    os.write(leader, b"n\n")
    try:
        asked = subprocess.run(
            [sys.executable, "-m", "dbops", "apply", "test"], cwd=project.root, stdin=follower,
            input=None, capture_output=True, text=True, timeout=60, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("DB_")})
    finally:
        os.close(follower)
        os.close(leader)
    assert "apply these changes on test? [y/N]" in asked.stdout
    assert "test on test" not in asked.stdout + asked.stderr
    assert asked.returncode == 1 and asked.stderr.strip() == "error: cancelled"


@pytest.mark.parametrize("args", [
    ("validate", "test"), ("plan", "test"), ("apply", "test", "--yes"), ("drift", "test"),
    ("migrate", "status", "test"), ("local", "status"), ("doctor", "test"),
], ids=" ".join)
def test_no_output_prints_none(
    project: Project, args: tuple[str, ...], server_reset: None
) -> None:
    add_migration(project)
    project.run("migrate", "hash")
    result = project.run(*args)
    assert result.returncode in (0, 2, 3), result.stderr
    assert not re.search(r"\bNone\b", result.stdout + result.stderr), result.stdout + result.stderr
