"""`dbops health --serve` facing a network: a token beyond loopback, TLS, at most one check cycle
a second however many requests, slow clients dropped, a bounded number of threads, and 400 for
every bad parameter. Served against the test database."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trustme
from harness import Project

from dbops.config.load import load_plan
from dbops.health.command import serve
from dbops.health.exposure import Exposure, exposure

TOKEN = "health-token-0123456789abcdef"


class Served:
    def __init__(self, project: Project, where: Exposure | str, **kwargs: Any) -> None:
        self.project = project
        self.plan = load_plan("test", root=project.root, environ={})
        self.stop, self.bound = threading.Event(), threading.Event()
        self.lines: list[str] = []
        self.at: tuple[str, int] = ("", 0)
        self.thread = threading.Thread(target=serve, args=(self.plan, where), kwargs={
            "stop": self.stop, "started": self._started, "echo": self.lines.append, **kwargs})

    def _started(self, where: tuple[str, int]) -> None:
        self.at = where
        self.bound.set()

    def __enter__(self) -> Served:
        self.thread.start()
        assert self.bound.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()

    @property
    def port(self) -> int:
        return self.at[1]

    def cycles(self) -> int:
        """Check cycles run so far, from the history on disk (one line a cycle)."""
        path = self.project.root / ".dbops" / "health" / "test.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0


def get(url: str, token: str | None = None,
        context: ssl.SSLContext | None = None) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.fixture
def quiet(project: Project) -> Iterator[Served]:
    """Served on loopback with a background cycle only every hour: requests cause the cycles."""
    project.write_plan("health:\n  check_interval: 1h\n")
    with Served(project, "127.0.0.1:0") as served:
        yield served


def test_a_flood_of_forced_checks_runs_at_most_one_cycle_a_second(quiet: Served) -> None:
    base = f"http://127.0.0.1:{quiet.port}"
    assert get(f"{base}/health")[0] == 200
    before, answered = quiet.cycles(), []
    deadline = time.monotonic() + 3.0

    def hammer(_: int) -> None:
        while time.monotonic() < deadline:
            answered.append(get(f"{base}/health?fresh=1")[0])

    started = time.monotonic()
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(hammer, range(12)))
    elapsed = time.monotonic() - started
    ran = quiet.cycles() - before
    assert len(answered) > 50 and set(answered) == {200}
    assert 1 <= ran <= elapsed + 1, f"{ran} cycles for {len(answered)} requests in {elapsed:.1f}s"


def test_every_bad_parameter_is_a_400(quiet: Served) -> None:
    base = f"http://127.0.0.1:{quiet.port}"
    for path, error in [
        ("/ready?lag=99999999999999999d", "not a duration"),
        ("/ready?lag=30d", "at most 7d"),
        ("/ready?lag=soon", "not a duration"),
        ("/ready?lag=1s&lag=2s", "given twice"),
        ("/ready?replica=a%20b", "not a replica name"),
        ("/health?fresh=maybe", "use 1 or 0"),
        ("/health?fresh", "malformed query string"),
        ("/health?verbose=1", "unknown parameter 'verbose' (accepted: fresh)"),
        ("/metrics?x=1", "unknown parameter 'x' (accepted: none)"),
        ("/health?" + "&".join(f"a{n}=1" for n in range(100)), "malformed query string"),
    ]:
        code, _, body = get(base + path)
        assert code == 400 and error in body["error"], (path, body)
    assert get(f"{base}/ready?lag=5s")[0] == 200


def test_slow_clients_are_dropped_after_the_timeout_with_bounded_threads(
    project: Project,
) -> None:
    project.write_plan("health:\n  check_interval: 1h\n")
    with Served(project, "127.0.0.1:0", request_timeout=0.5, workers=4) as quiet:
        slow_clients_are_dropped(quiet)


def slow_clients_are_dropped(quiet: Served) -> None:
    threads = threading.active_count()
    slow = [socket.create_connection(("127.0.0.1", quiet.port)) for _ in range(40)]
    for n, client in enumerate(slow):
        client.sendall(b"GET /health HTTP/1.1\r\n" if n % 2 else b"GE")
        client.settimeout(3)
    dripping = socket.create_connection(("127.0.0.1", quiet.port))
    started = time.monotonic()
    for byte in b"GET /health HTTP/1.0\r\nHost: x\r\n":  # a byte at a time, never the end
        try:
            dripping.sendall(bytes([byte]))
        except OSError:
            break
        if time.monotonic() - started > 2:
            break
        time.sleep(0.05)
    assert threading.active_count() <= threads + 1  # the four workers existed already
    for client in [*slow, dripping]:
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(1024) == b""  # closed by the server, not answered
        client.close()
    assert time.monotonic() - started < 3
    assert get(f"http://127.0.0.1:{quiet.port}/ready")[0] == 200


def test_a_non_loopback_bind_needs_a_token(project: Project) -> None:
    result = project.run("health", "test", "--serve", "0.0.0.0:0")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: --serve 0.0.0.0:0: 0.0.0.0 is not a loopback address, so the endpoints need a "
        "bearer token: set DBOPS_HEALTH_TOKEN (or pass --insecure to serve them to anyone who "
        "can reach the port)"]
    short = project.run("health", "test", "--serve", "0.0.0.0:0",
                        env={"DBOPS_HEALTH_TOKEN": "short"})
    assert short.returncode == 1 and len(short.stderr.splitlines()) == 1
    assert "DBOPS_HEALTH_TOKEN must be 16 to 512 printable characters" in short.stderr


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return ca, cert, key


def test_a_token_and_tls_on_a_network_address(
    project: Project, certificate: tuple[trustme.CA, Path, Path]
) -> None:
    ca, cert, key = certificate
    project.write_plan("health:\n  check_interval: 1h\n")
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    where = exposure("0.0.0.0:0", token=TOKEN, tls_cert=cert, tls_key=key)
    assert TOKEN not in repr(where)
    with Served(project, where, request_timeout=1.0, workers=2) as served:
        assert served.lines[0].startswith("serving /health, /ready and /metrics for test on "
                                          "https://0.0.0.0:")
        assert served.lines[0].endswith("; a bearer token required)")
        base = f"https://127.0.0.1:{served.port}"
        for path in ("/health", "/metrics", "/ready?lag=5s"):
            code, headers, body = get(base + path, context=trusted) if path != "/ready?lag=5s" \
                else get(base + path, token="wrong-token-0123456789", context=trusted)
            assert code == 401 and body == {"error": "a bearer token is required"}
            assert headers["WWW-Authenticate"] == 'Bearer realm="dbops-health"'
        assert get(f"{base}/ready", context=trusted)[::2] == (200, {"ready": True})
        code, _, body = get(f"{base}/health", token=TOKEN, context=trusted)
        assert code == 200 and body["status"] == "ok"
        code, _, body = get(f"{base}/ready?lag=5s", token=TOKEN, context=trusted)
        assert code == 200 and body["ready"] and body["reasons"] == []
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(f"{base}/ready", context=ssl.create_default_context())
        with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
            get(f"http://127.0.0.1:{served.port}/ready")  # plain http is not spoken there
