"""Real migration histories as projects ship them: crates.io's 285 Diesel migrations (converted by
tests/histories/convert_crates_io.py) applied to a fresh database with the shipped base plan's
migration defaults, against the schema psql makes from the same files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from harness import Project, TestDatabase, fresh_database

from dbops.local import Cluster
from dbops.migrate import files
from dbops.pgbin import find_bindir

REPO = Path(__file__).resolve().parents[1]
CRATES_IO = REPO / "tests" / "histories" / "crates_io" / "migrations"


def concatenated(directory: Path) -> str:
    """The history as one psql file: each migration's up section in its own transaction, the
    ones marked `-- dbops:transaction off` (CREATE INDEX CONCURRENTLY) without one."""
    parts = []
    for migration in files.load(directory):
        body = f"{migration.up.text}\n;\n"
        parts.append(f"BEGIN;\n{body}COMMIT;\n" if migration.transaction else body)
    return "\n".join(parts)


def schema(database: TestDatabase) -> str:
    dump = subprocess.run(
        [str(find_bindir() / "pg_dump"), "--schema-only", "--exclude-schema=dbops",
         "-h", database.host, "-p", str(database.port), "-U", database.user, database.name],
        capture_output=True, text=True, check=True)
    # pg_dump 15.14+ guards its output with a random \restrict key, different in every dump.
    return re.sub(r"^\\(un)?restrict .*$", "", dump.stdout, flags=re.M)


def test_crates_io_history_applies_with_the_base_plan_and_matches_psql(
    project: Project, pg_primary: Cluster
) -> None:
    shutil.copytree(CRATES_IO, project.root / "migrations", dirs_exist_ok=True)
    base = yaml.safe_load((REPO / "plans" / "base.yaml").read_text())["migrations"]
    assert base["zero_downtime"] is True and base["lint"]["fail_on"] == "error"
    project.write_plan(f"migrations: {json.dumps(base)}\n")
    count = len(files.load(project.root / "migrations"))
    assert count >= 150

    plan = project.run("plan", "test")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert " error " not in plan.stdout and "refuses" not in plan.stdout
    up = project.run("migrate", "up", "test", "--yes")
    assert up.returncode == 0, up.stderr[-2000:]
    assert f"{count} migration(s) applied" in up.stdout + up.stderr
    with project.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM dbops.migration_history").fetchone() == (count,)

    with fresh_database(pg_primary) as reference:
        psql = subprocess.run(
            [str(find_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", reference.host, "-p", str(reference.port), "-U", reference.user,
             "-d", reference.name],
            input=concatenated(project.root / "migrations"), capture_output=True, text=True,
            check=False)
        assert psql.returncode == 0, psql.stderr[-2000:]
        assert schema(project.database) == schema(reference)
