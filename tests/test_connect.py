"""connect.py: parameters from a plan, real connections, and masking of secrets."""

from __future__ import annotations

import pytest
from harness import Project

from dbops import connect
from dbops.config.load import load_plan
from dbops.errors import ConnectFailed

SENTINEL = "Sentinel-Pw-7f3a9"


def test_mask_hides_password_fields_and_uris() -> None:
    text = (
        "host=db password=abc123 user=x; postgresql://app:s3cr%40t@db:5432/tm; "
        "PGPASSWORD='quoted pw' psql; password = 'with spaces'"
    )
    masked = connect.mask(text)
    for secret in ("abc123", "s3cr%40t", "quoted pw", "with spaces"):
        assert secret not in masked
    assert "postgresql://app:***@db:5432/tm" in masked
    assert "host=db" in masked


def test_connection_carries_application_name_and_timeouts(project: Project) -> None:
    plan = load_plan("test", environ={"DB_PASSWORD": SENTINEL})
    with connect.connection(
        plan,
        command="status",
        statement_timeout=plan.migrations.lock_timeout * 5,
        lock_timeout=plan.migrations.lock_timeout,
    ) as conn:
        row = conn.execute(
            "SELECT current_setting('application_name'), current_setting('lock_timeout'),"
            " current_setting('statement_timeout'), current_database()"
        ).fetchone()
    assert row == ("dbops/status", "2s", "10s", project.database.name)


def test_failed_connection_is_masked_and_names_the_endpoint(project: Project) -> None:
    plan = load_plan("test", environ={"DB_PASSWORD": SENTINEL, "DB_PORT": "1"})
    with pytest.raises(ConnectFailed) as caught, connect.connection(plan, command="status"):
        pass
    message = str(caught.value)
    assert message.startswith(f"cannot connect to postgres@127.0.0.1:1/{project.database.name}:")
    assert SENTINEL not in message
    assert "\n" not in message


def test_a_revealed_password_is_masked_where_it_is_a_credential_only(project: Project) -> None:
    plan = load_plan("test", environ={"DB_PASSWORD": "127"})
    assert connect.endpoint(plan).password == "127"
    assert connect.mask("host=127.0.0.1 password=127") == "host=127.0.0.1 password=***"


def test_a_kept_session_is_one_session_and_comes_back_after_the_server_drops_it(
        project: Project) -> None:
    """An apply's bookkeeping runs on one KeptSession: the same backend each time, a new one
    when the server dropped it (as a restart does), and an error that is not a lost session is
    raised, not retried."""
    import psycopg

    plan = load_plan("test", environ={"DB_PASSWORD": SENTINEL})
    kept = connect.KeptSession(connect.endpoint(plan), command="apply")
    try:
        def pid(conn: psycopg.Connection[object]) -> int:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            return int(row[0])

        first = kept.run(pid)
        assert kept.run(pid) == first
        with project.database.connect() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        again = kept.run(pid)
        assert again != first and kept.run(pid) == again
        calls = []

        def failing(conn: psycopg.Connection[object]) -> None:
            calls.append(1)
            conn.execute("SELECT 1/0")

        with pytest.raises(psycopg.errors.DivisionByZero):
            kept.run(failing)
        assert calls == [1] and kept.run(pid) == again
    finally:
        kept.close()
