"""Progress on long work (dbops.progress): a line at each step's start and end when no terminal
is attached, rich's live view on one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

from harness import Project, child_env


def test_apply_without_a_terminal_prints_each_step_start_and_end_with_its_duration(
        project: Project) -> None:
    project.write_plan("backup: { directory: backups }\nmigrations: { rehearse: never }\n")
    (project.root / "migrations" / "20250101000001_slow.sql").write_text(
        "-- migrate:up\nSELECT pg_sleep(1);\nCREATE TABLE items (id int);\n"
        "-- migrate:down\nDROP TABLE items;\n")
    project.run("migrate", "hash")
    result = project.run("apply", "test", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(r"started  migration\.20250101000001 up \(.*\)", ln) for ln in lines)
    finished = [m for ln in lines if (m := re.fullmatch(
        r"finished migration\.20250101000001 up \(.*\) in (\d+(?:\.\d+)?)s", ln))]
    assert len(finished) == 1 and 1.0 <= float(finished[0][1]) < 10, result.stdout
    assert any(ln.startswith("started  take the before-migrate backup") for ln in lines)
    assert any(re.fullmatch(r"finished backup \S+: pg_dump of \S+ in [\d.]+m?s, [\d.]+ kB", ln)
               for ln in lines), result.stdout
    assert any(re.fullmatch(r"finished take the before-migrate backup .* in [\d.]+m?s", ln)
               for ln in lines), result.stdout


def test_backup_on_a_terminal_shows_the_live_view(project: Project) -> None:
    project.write_plan("backup: { directory: backups }\n")
    leader, follower = pty.openpty()
    env = child_env()
    process = subprocess.Popen(
        [sys.executable, "-m", "dbops", "backup", "create", "test"], cwd=project.root,
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        code = process.wait(timeout=60)
    text = output.decode(errors="replace")
    assert code == 0, text
    assert re.search(r"backup \S+: pg_dump of \S+", text), text
    assert re.search(r"\d:\d\d:\d\d", text), text  # rich's elapsed-time column
    assert "backup " in text and "created" in text
