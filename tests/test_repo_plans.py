"""Every plan in plans/ converges: plan -> apply -> plan is empty, against a real server (its own
cluster, since production's shared_buffers needs a restart, done through pyinfra)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from harness import child_env

from dbops.local import Cluster

REPO = Path(__file__).resolve().parents[1]
SENTINEL = "Sentinel-Converge-31"


@pytest.fixture
def cluster(scratch_dir: Path) -> Cluster:
    cluster = Cluster(scratch_dir / "converge")
    cluster.up()
    cluster.ensure_database("taskmaster_db")
    return cluster  # scratch_dir stops it


def dbops(root: Path, cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env.update(
        DB_HOST=cluster.host,
        DB_PORT=str(cluster.port),
        DB_NAME="taskmaster_db",
        DB_USER="postgres",
        DB_PASSWORD=SENTINEL,
        DB_SSL_MODE="disable",
    )
    overrides = [
        "--set",
        "inventory=inventories/test.py",
        "--set",
        "database.replicas=[]",
        "--set",
        "database.embedded=false",
        "--set",
        "health.gates.settle=0s",
    ]
    return subprocess.run(
        [sys.executable, "-m", "dbops", *args, *overrides],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_plan_converges(cluster: Cluster, tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    for folder in ("plans", "migrations"):
        shutil.copytree(REPO / folder, root / folder)
    restart = shlex.quote(
        "from pathlib import Path; from dbops.local import Cluster; "
        f"c = Cluster(Path({str(cluster.data_dir)!r})); c.down(); c.up()"
    )
    (root / "inventories").mkdir()
    (root / "inventories" / "test.py").write_text(
        f"primary = [('@local', {{'pg_restart_command': {sys.executable + ' -c ' + restart!r}}})]\n"
    )
    environments = ["development", "staging", "production"]  # the order changes are promoted in
    assert sorted(environments) == sorted(
        p.stem for p in (REPO / "plans").glob("*.yaml") if p.stem != "base"
    )
    for environment in environments:
        applied = dbops(root, cluster, "apply", environment, "--yes", "--allow-restart")
        assert applied.returncode == 0, f"{environment}: {applied.stderr}{applied.stdout}"
        again = dbops(root, cluster, "plan", environment, "--diff")
        assert again.returncode == 0, f"{environment} does not converge:\n{again.stdout}"
        assert SENTINEL not in applied.stdout + applied.stderr + again.stdout
    with psycopg.connect(
        host=cluster.host, port=cluster.port, user="postgres", dbname="taskmaster_db"
    ) as conn:
        assert conn.execute("SHOW shared_buffers").fetchone() == ("2GB",)
        assert conn.execute(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'taskmaster_app'"
        ).fetchone() == (130,)
        applied_results = conn.execute("SELECT result FROM dbops.apply_audit").fetchall()
    assert applied_results == [("applied",)] * 3
    assert SENTINEL not in (root / ".dbops" / "logs" / "pyinfra.log").read_text()


@pytest.mark.parametrize("environment", ["development", "staging", "production"])
def test_shipped_inventory_maps_every_server_of_its_plan(environment: str) -> None:
    """Each shipped inventory, loaded with its plan, names a host for the primary and for every
    replica the plan declares, in the host data keys apply reads."""
    from dbops.config.load import load_plan
    from dbops.execute import load_targets

    plan = load_plan(environment, root=REPO, environ={})
    assert plan.inventory == REPO / "inventories" / f"{environment}.py"
    targets = load_targets(plan)
    servers = sorted(t.server for t in targets)
    assert servers == sorted(["primary", *(r.name for r in plan.database.replicas)])
    for target in targets:
        assert target.data["pg_name"] == target.server
        assert target.host == "@local" or target.data["pg_restart_command"]
