"""No password appears in any output of any command: every command runs with a sentinel password."""

from __future__ import annotations

import pytest
from harness import Project

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
]


def add_migration(project: Project) -> None:
    (project.root / "migrations" / "20250101000001_a.sql").write_text(
        "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n"
    )


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_sentinel_password_never_printed(project: Project, args: tuple[str, ...]) -> None:
    add_migration(project)
    project.run("migrate", "hash")
    result = project.run(*args, env={"DB_PASSWORD": SENTINEL})
    assert SENTINEL not in result.stdout + result.stderr


@pytest.mark.parametrize("args", [c for c in COMMANDS if len(c) > 2], ids=" ".join)
def test_sentinel_password_not_printed_when_the_server_is_unreachable(
    project: Project, args: tuple[str, ...]
) -> None:
    add_migration(project)
    project.run("migrate", "hash")
    result = project.run(*args, env={"DB_PASSWORD": SENTINEL, "DB_PORT": "1"})
    assert result.returncode == 1
    assert "cannot connect to postgres@127.0.0.1:1/" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
