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
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_sentinel_password_never_printed(project: Project, args: tuple[str, ...]) -> None:
    result = project.run(*args, env={"DB_PASSWORD": SENTINEL})
    assert SENTINEL not in result.stdout + result.stderr
