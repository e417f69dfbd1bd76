"""`dbops local up|down|status`: the embedded development database, driven through the CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from harness import child_env

REPO = Path(__file__).resolve().parents[1]


def dbops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env()
    return subprocess.run(
        [sys.executable, "-m", "dbops", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def checkout(scratch_dir: Path) -> Iterator[Path]:
    root = scratch_dir / "checkout"
    shutil.copytree(REPO / "plans", root / "plans")
    try:
        yield root
    finally:
        dbops(root, "local", "down")


def running_port(output: str) -> int:
    match = re.search(r"running: PostgreSQL \S+ on 127\.0\.0\.1:(\d+) \(pid (\d+)", output)
    assert match, output
    return int(match.group(1))


def test_up_twice_status_down_up_again(checkout: Path) -> None:
    first = dbops(checkout, "local", "up")
    assert first.returncode == 0, first.stderr
    port = running_port(first.stdout)
    assert "created database taskmaster_db" in first.stdout

    second = dbops(checkout, "local", "up")
    assert second.returncode == 0, second.stderr
    assert running_port(second.stdout) == port
    assert "created database" not in second.stdout

    status = dbops(checkout, "local", "status")
    assert running_port(status.stdout) == port
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="taskmaster_db") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)

    down = dbops(checkout, "local", "down")
    assert down.returncode == 0 and down.stdout.startswith("stopped: ")
    assert dbops(checkout, "local", "status").stdout.startswith("stopped: ")
    assert dbops(checkout, "local", "down").returncode == 0

    again = dbops(checkout, "local", "up")
    assert again.returncode == 0, again.stderr
    assert running_port(again.stdout) == port  # remembered, and still free


def test_status_before_anything_exists(checkout: Path) -> None:
    result = dbops(checkout, "local", "status")
    assert result.returncode == 0
    assert result.stdout.startswith("not created: ")
