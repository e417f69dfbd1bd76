"""Plan loading: the broken-plan corpus, precedence, interpolation, extends, profiles, secrets."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbops.cli import main
from dbops.config.load import load_plan, read_dotenv
from dbops.config.model import Secret
from dbops.connect import endpoint
from dbops.errors import ConnectFailed, PlanError

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "plans" / "broken"
BROKEN = sorted(p for p in CORPUS.glob("*.yaml") if "# expect: " in p.read_text())


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("DB_", "DBOPS_", "ALERT_")):
            monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's plans in a scratch project directory, as the working directory."""
    shutil.copytree(REPO / "plans", tmp_path / "plans")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def expectations(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect: ")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def test_corpus_is_large_enough() -> None:
    assert len(BROKEN) >= 25


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_plan_reports_exact_lines(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(main, ["validate", path.name])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == expectations(path)
    assert result.stdout == ""


def test_every_repository_plan_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.stderr
    assert "4 plan(s) valid" in result.stdout


def test_unknown_environment_lists_known_ones(project: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "prod"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "plans/prod.yaml: unknown environment 'prod' "
        "(known environments: development, production, staging)"
    )


def test_environment_name_and_paths_resolve_to_the_same_plan(project: Path) -> None:
    by_name = load_plan("staging", environ={})
    assert load_plan("staging.yaml", environ={}).source == project / "plans" / "staging.yaml"
    assert load_plan("plans/staging.yaml", environ={}).pool == by_name.pool


def test_extends_merges_beneath_the_file(project: Path) -> None:
    plan = load_plan("staging", environ={})
    assert plan.roles["taskmaster_app"].connection_limit == 40  # from staging.yaml
    assert plan.roles["taskmaster_app"].settings["statement_timeout"] == "30s"  # from base.yaml
    assert plan.database.name == "taskmaster_db"


def test_precedence_flag_over_environment_over_file_over_profile(project: Path) -> None:
    plan = load_plan("staging", environ={})
    assert plan.pool.max_size == 10  # the file
    assert plan.pool.acquire_timeout == timedelta(seconds=5)  # the oltp profile
    plan = load_plan("staging", environ={"DB_POOL_MAX": "12", "DB_WORKLOAD_PROFILE": "analytics"})
    assert plan.pool.max_size == 12
    assert plan.pool.acquire_timeout == timedelta(seconds=60)  # analytics profile default
    plan = load_plan("staging", environ={"DB_POOL_MAX": "12"}, overrides={"pool.max_size": "14"})
    assert plan.pool.max_size == 14


def test_seed_environment_variables_are_typed(project: Path) -> None:
    plan = load_plan(
        "staging",
        environ={
            "DB_HOST": "db.example",
            "DB_PORT": "6543",
            "DB_NAME": "tm",
            "DB_USER": "ops",
            "DB_SSL_MODE": "verify-ca",
            "DB_POOL_MIN": "1",
            "DB_HEALTH_CHECK_ENABLED": "false",
            "DB_MONITORING_ENABLED": "0",
            "DB_SLOW_QUERY_THRESHOLD": "1500",
            "DB_LOG_QUERIES": "true",
            "DB_LOG_SLOW_QUERIES": "off",
        },
    )
    db, pool = plan.database, plan.pool
    assert (db.host, db.port, db.name, db.user, db.sslmode) == (
        "db.example",
        6543,
        "tm",
        "ops",
        "verify-ca",
    )
    assert (pool.min_size, pool.log_queries, pool.log_slow_queries) == (1, True, False)
    assert pool.slow_query_threshold == timedelta(milliseconds=1500)
    assert (plan.health.enabled, plan.health.monitoring) == (False, False)


def test_bad_environment_override_names_the_variable(project: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("staging", environ={"DB_POOL_MAX": "lots"})
    assert str(caught.value) == (
        "environment DB_POOL_MAX: pool.max_size: must be integer, got string 'lots'"
    )


def test_unknown_override_is_refused(project: Path) -> None:
    with pytest.raises(PlanError, match=r"--set pool.max_szie: pool.max_szie: unknown setting"):
        load_plan("staging", environ={}, overrides={"pool.max_szie": "3"})


def test_dotenv_is_read_beneath_the_process_environment(project: Path) -> None:
    (project / ".env").write_text("# local overrides\nexport DB_HOST=from-dotenv\nDB_PORT='7000'\n")
    assert read_dotenv(project / ".env") == {"DB_HOST": "from-dotenv", "DB_PORT": "7000"}
    plan = load_plan("staging", environ={"DB_PORT": "7001"})
    assert (plan.database.host, plan.database.port) == ("from-dotenv", 7001)


def test_interpolation_default_and_escape(project: Path) -> None:
    (project / "plans" / "qa.yaml").write_text(
        "apiVersion: dbops/v1\nenvironment: qa\ndatabase:\n"
        "  name: app\n  host: ${QA_HOST:-qa.internal}\n  port: ${QA_PORT}\n"
        "  user: pay$$roll\n"
    )
    plan = load_plan("qa", environ={"QA_PORT": "5999"})
    assert (plan.database.host, plan.database.port, plan.database.user) == (
        "qa.internal",
        5999,
        "pay$roll",
    )


def test_password_is_resolved_only_when_connecting(project: Path) -> None:
    plan = load_plan("production", environ={})
    assert plan.database.password is not None
    with pytest.raises(ConnectFailed) as caught:
        endpoint(plan)
    assert str(caught.value) == (
        "plans/production.yaml:10:13: database.password: "
        "environment variable DB_PASSWORD is not set"
    )
    plan = load_plan("production", environ={"DB_PASSWORD": "s3cret-value"})
    assert "s3cret-value" not in repr(plan)
    assert endpoint(plan).password == "s3cret-value"
    assert "s3cret-value" not in repr(endpoint(plan))


def test_secret_never_prints() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in f"{secret} {secret!r}"
    assert secret.reveal() == "hunter2"


def test_abstract_plan_cannot_be_loaded_as_an_environment(project: Path) -> None:
    with pytest.raises(PlanError, match="abstract"):
        load_plan("plans/base.yaml", environ={})


def test_budget_checked_with_environment_override(project: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("production", environ={"DB_POOL_MAX": "25"})
    assert str(caught.value).endswith(
        "pool.max_size: connection budget: 6 instances × 25 + 5 reserve = 155 "
        "exceeds roles.taskmaster_app.connection_limit (130)"
    )


def test_validation_cache_never_hides_a_new_problem(project: Path) -> None:
    load_plan("staging", environ={})
    seals = list((project / ".dbops" / "cache" / "valid-plans").iterdir())
    assert len(seals) == 1
    path = project / "plans" / "staging.yaml"
    path.write_text(path.read_text().replace("instances: 2", "instances: two"))
    with pytest.raises(PlanError, match=r"pool.instances: must be integer, got string 'two'"):
        load_plan("staging", environ={})
