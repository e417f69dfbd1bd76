"""Helpers for the pool tests: endpoints of harness clusters, managers with short intervals,
the TaskMaster schema, and polling."""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import Project, TestDatabase
from harness import wait_until as wait_until  # the one wait helper, re-exported

from dbops.connect import Endpoint
from dbops.local import Cluster
from dbops.migrate.engine import MigrationEngine

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # examples/taskmaster is imported as a package from the repo root
    sys.path.insert(0, str(REPO))

# Background work at test speed: maintenance every 50 ms, replicas probed every 100 ms,
# an ejected replica probed again after 100 ms (doubling up to 400 ms).
FAST: dict[str, Any] = {
    "maintenance_interval": 0.05,
    "monitor_interval": 0.1,
    "eject_backoff": 0.1,
    "eject_backoff_max": 0.4,
    "acquire_timeout": 3.0,
    "retry_backoff": 0.005,
}


def endpoint(cluster: Cluster, dbname: str, name: str = "primary") -> Endpoint:
    return Endpoint(
        host=cluster.host,
        port=cluster.port,
        dbname=dbname,
        user="postgres",
        sslmode="disable",
        connect_timeout=timedelta(seconds=3),
        name=name,
    )


def db_endpoint(db: TestDatabase, name: str = "primary") -> Endpoint:
    return Endpoint(
        host=db.host,
        port=db.port,
        dbname=db.name,
        user="postgres",
        sslmode="disable",
        connect_timeout=timedelta(seconds=3),
        name=name,
    )


def install_taskmaster(project: Project) -> None:
    """The TaskMaster schema in the project's database, through dbops's own migrations."""
    for source in (REPO / "migrations").iterdir():
        shutil.copy(source, project.root / "migrations" / source.name)
    MigrationEngine.from_plan("test", root=project.root).run_migrations()


def server_port(row: Any) -> int:
    return int(row[0][0])
