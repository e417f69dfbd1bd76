"""Plan files are untrusted input (a pull request's): every file costs bounded time and memory,
and every bad one is refused with file:line:col and exit 1, never a traceback."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import child_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbops.cli import main

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {p.name: p.read_bytes() for p in sorted((REPO / "plans").glob("*.yaml"))}
LOCATED = re.compile(r"^\S+:\d+:\d+: ", re.MULTILINE)
# The 1 KB bomb: nine levels of nine aliases, 387 million values once expanded.
BOMB = "apiVersion: dbops/v1\na0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 9))


@pytest.fixture(autouse=True)
def no_plan_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("DB_", "DBOPS_")):
            monkeypatch.delenv(name)


def validate(root: Path, name: str, data: bytes) -> tuple[int, str]:
    """`dbops validate` on one file written into a project, run in this process."""
    (root / "plans" / name).write_bytes(data)
    result = CliRunner().invoke(main, ["-C", str(root), "validate", f"plans/{name}"],
                                catch_exceptions=False)
    return result.exit_code, result.stderr


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project of the shipped plans, as the working directory."""
    monkeypatch.chdir(tmp_path)
    for part in ("plans", "migrations", "inventories"):
        shutil.copytree(REPO / part, tmp_path / part)
    return tmp_path


def test_the_alias_bomb_is_refused_quickly_in_little_memory(tmp_path: Path) -> None:
    plan = tmp_path / "bomb.yaml"
    plan.write_text(BOMB)
    assert len(BOMB) < 1100

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dbops", "-C", str(tmp_path), "validate",
                           str(plan)], capture_output=True, text=True, timeout=60,
                          preexec_fn=limit_memory, env=child_env(drop=()))
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert re.match(r"^\S*bomb\.yaml:\d+:\d+: .*more than 100000 values once aliases are "
                    r"expanded", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_a_device_or_huge_file_is_refused_at_the_size_limit(root: Path) -> None:
    result = CliRunner().invoke(main, ["-C", str(root), "plan", "/dev/zero"])
    assert result.exit_code == 1
    assert result.stderr == "/dev/zero: plan file is larger than 1 MiB (the limit for plan files)\n"
    code, err = validate(root, "big.yaml", b"apiVersion: dbops/v1\n" + b"# padding\n" * 120_000)
    assert (code, err) == (1, "plans/big.yaml: plan file is larger than 1 MiB "
                              "(the limit for plan files)\n")


def test_bytes_that_are_not_utf8_are_located(root: Path) -> None:
    code, err = validate(root, "latin1.yaml", b"apiVersion: dbops/v1\nenvironment: caf\xe9\n")
    assert (code, err) == (1, "plans/latin1.yaml:2:17: not UTF-8 text (byte 0xe9)\n")
    code, err = validate(root, "nul.yaml", b"apiVersion: dbops/v1\nenvironment: a\x00\n")
    assert (code, err) == (1, "plans/nul.yaml:2:15: YAML syntax error: control character U+0000 "
                              "is not allowed\n")
    (root / ".env").write_bytes(b"DB_NAME=caf\xe9\n")
    code, err = validate(root, "development.yaml", SHIPPED["development.yaml"])
    assert (code, err) == (1, ".env:1:12: not UTF-8 text (byte 0xe9)\n")


def test_an_environment_override_out_of_range_is_refused(root: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SLOW_QUERY_THRESHOLD", "99999999999999999999")
    code, err = validate(root, "development.yaml", SHIPPED["development.yaml"])
    assert code == 1
    assert err == ("environment DB_SLOW_QUERY_THRESHOLD: pool.slow_query_threshold: must be at "
                   "most 36500d (got '99999999999999999999ms')\n")


def test_a_bug_is_one_line_not_a_traceback(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last resort: an exception dbops did not expect (here forced into validate) is one
    line and exit 1; DBOPS_DEBUG=1 lets the traceback through for a bug report."""
    import dbops.cli.plans

    def explode(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(dbops.cli.plans, "validate_file", explode)
    result = CliRunner().invoke(main, ["validate"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr == ("error: internal error: RecursionError: maximum recursion depth "
                             "exceeded (a dbops bug; DBOPS_DEBUG=1 shows the traceback)\n")
    monkeypatch.setenv("DBOPS_DEBUG", "1")
    with pytest.raises(RecursionError):
        CliRunner().invoke(main, ["validate"], catch_exceptions=False)


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, remove, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + remove:]
    return data


YAML_BYTES = st.sampled_from([b"&a ", b"*a", b"<<: *a", b"!vault ", b".nan", b".inf", b"\t",
                              b"\n  ", b": ", b"- ", b"[", b"]", b"{", b"}", b"'", b'"', b"\\",
                              b"${X}", b"99999999999999999999", b"0s", b"\xff", b"\x00", b"#",
                              b"%YAML 1.1\n", b"---\n", b"? ", b"|\n", b"!!python/name:os.system"])
EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 40),
                           YAML_BYTES | st.binary(max_size=8)), min_size=1, max_size=6)


@settings(max_examples=150, deadline=3000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SHIPPED)), edits=EDITS)
def test_mutated_shipped_plans_fail_cleanly(root: Path, name: str,
                                            edits: list[tuple[int, int, bytes]]) -> None:
    code, err = validate(root, name, _mutate(SHIPPED[name], edits))
    assert code in (0, 1)
    assert "Traceback" not in err and "internal error" not in err
    if code == 1:
        assert LOCATED.search(err), err


@settings(max_examples=100, deadline=3000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_random_bytes_fail_cleanly(root: Path, data: bytes) -> None:
    code, err = validate(root, "random.yaml", data)
    assert code == 1
    assert "Traceback" not in err and "internal error" not in err
    assert LOCATED.search(err), err

