"""dbops.local against real clusters in each test's own scratch directory."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

from dbops.errors import LocalClusterError
from dbops.local import Cluster, development_cluster, free_port
from dbops.pgbin import find_bindir


def test_find_bindir_holds_the_server_binaries() -> None:
    bindir = find_bindir()

    assert (bindir / "initdb").is_file()
    assert (bindir / "pg_ctl").is_file()
    assert (bindir / "postgres").is_file()


def test_free_port_can_be_bound() -> None:
    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert port != 5432


def test_a_never_initialised_cluster_reports_and_stops_quietly(scratch_dir: Path) -> None:
    cluster = Cluster(scratch_dir / "nothing")

    status = cluster.status()
    assert (status.initialized, status.running, status.port, status.pid) == (
        False,
        False,
        None,
        None,
    )
    assert cluster.down() == status
    with pytest.raises(LocalClusterError, match=r"has no port yet: start it with up\(\) first"):
        _ = cluster.port


def test_up_down_up_lifecycle(scratch_dir: Path) -> None:
    cluster = Cluster(scratch_dir / "data")

    first = cluster.up()
    again = cluster.up()

    assert first.running and first.initialized
    assert first.port is not None and first.pid is not None
    assert (again.port, again.pid, again.running) == (first.port, first.pid, True)
    assert cluster.port == first.port
    binary = subprocess.run(
        [str(find_bindir() / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    assert first.version is not None and f" {first.version}" in binary.stdout

    stopped = cluster.down()
    assert (stopped.running, stopped.pid, stopped.initialized) == (False, None, True)
    assert cluster.status().running is False
    assert cluster.down().running is False

    restarted = cluster.up()
    assert restarted.running and restarted.port == first.port  # the port is remembered
    with psycopg.connect(
        host="127.0.0.1", port=restarted.port, user="postgres", dbname="postgres", connect_timeout=5
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ensure_database_creates_once(scratch_dir: Path) -> None:
    cluster = Cluster(scratch_dir / "data")
    cluster.up()

    assert cluster.ensure_database("app dev") is True
    assert cluster.ensure_database("app dev") is False
    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user="postgres", dbname="app dev", connect_timeout=5
    ) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("app dev",)


def test_data_dir_below_a_regular_file_is_refused(scratch_dir: Path) -> None:
    blocker = scratch_dir / "not-a-dir"
    blocker.write_text("")

    with pytest.raises(LocalClusterError) as raised:
        Cluster(blocker / "data").up()

    assert str(raised.value) == (
        f"cannot create data directory {blocker / 'data'}: {blocker} exists and is not a "
        "directory; choose another data directory"
    )


def test_a_port_in_use_is_reported(scratch_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        with pytest.raises(LocalClusterError, match=f"127.0.0.1:{port} is already in use"):
            Cluster(scratch_dir / "data", port=port).up()


def test_settings_must_be_single_line_identifiers() -> None:
    with pytest.raises(LocalClusterError, match="invalid PostgreSQL setting"):
        Cluster(Path("/nonexistent"), settings={"work_mem = 1\nfsync": "off"})


def test_the_development_cluster_lives_under_dot_dbops(tmp_path: Path) -> None:
    assert development_cluster(tmp_path).data_dir == tmp_path / ".dbops" / "postgres"
