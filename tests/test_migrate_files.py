"""Migration files without a database: parsing, metadata, statements, checksums, dbops.sum, order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbops.errors import MigrationError
from dbops.migrate import files
from dbops.migrate.engine import create_migration
from dbops.migrate.sql import SqlSyntaxError, split

REPO = Path(__file__).resolve().parents[1]


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def simple(
    version: str,
    body: str = "CREATE TABLE t (id int);",
    *,
    header: str = "",
    down: str | None = "DROP TABLE t;",
) -> str:
    down_part = f"\n-- migrate:down\n{down}\n" if down is not None else ""
    return f"-- {version}\n{header}\n-- migrate:up\n{body}\n{down_part}"


def test_metadata_and_sections_are_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "20250610120000_index_tasks.sql",
        (
            "-- Index the queue\n-- dbops:requires 20250527100000 20250603090000\n"
            "-- dbops:risk medium\n-- dbops:estimated-duration 30s\n-- dbops:zero-downtime\n"
            "-- dbops:transaction off\n\n-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n\n"
            "-- migrate:down\nDROP INDEX CONCURRENTLY i;\n"
        ),
    )
    m = files.parse(path)
    assert (m.version, m.name, m.description) == (
        "20250610120000",
        "index_tasks",
        "Index the queue",
    )
    assert m.requires == ("20250527100000", "20250603090000")
    assert (m.risk, m.estimated_duration, m.zero_downtime, m.transaction) == (
        "medium",
        "30s",
        True,
        False,
    )
    assert m.up.line == 9 and m.down is not None and m.down.line == 12
    assert m.checksum == files.checksum("CREATE INDEX CONCURRENTLY i ON t (a);")


def test_checksum_ignores_line_endings_and_outer_blank_lines() -> None:
    assert files.checksum("\nSELECT 1;\r\nSELECT 2;\n\n") == files.checksum(
        "SELECT 1;\nSELECT 2;"
    )
    assert files.checksum("SELECT 1;") != files.checksum("SELECT 2;")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "20250101000000_empty.sql",
            "  \n",
            "20250101000000_empty.sql: the migration file is empty",
        ),
        (
            "20250101000000_no_up.sql",
            "-- nothing\nCREATE TABLE t (id int);\n",
            "20250101000000_no_up.sql: no '-- migrate:up' section",
        ),
        (
            "20250101000000_typo.sql",
            "-- dbops:riks high\n-- migrate:up\nSELECT 1;\n",
            "20250101000000_typo.sql:1: unknown directive 'dbops:riks'",
        ),
        (
            "20250101000000_risk.sql",
            "-- dbops:risk extreme\n-- migrate:up\nSELECT 1;\n",
            "20250101000000_risk.sql:1: dbops:risk must be low, medium or high (got 'extreme')",
        ),
        ("2025_bad_name.sql", "-- migrate:up\nSELECT 1;\n", "2025_bad_name.sql: file name must be"),
        (
            "20251399000000_bad_date.sql",
            "-- migrate:up\nSELECT 1;\n",
            "20251399000000_bad_date.sql: version 20251399000000 is not a UTC timestamp",
        ),
        (
            "20250101000000_two_ups.sql",
            "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n",
            "20250101000000_two_ups.sql:3: second '-- migrate:up' (first at line 1)",
        ),
    ],
)
def test_bad_files_are_refused_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "migrations", name, text)
    with pytest.raises(MigrationError) as caught:
        files.load(Path("migrations"))
    assert str(caught.value).startswith(f"migrations/{message}")


def test_duplicate_versions_name_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "migrations", "20250101000000_a.sql", simple("a"))
    write(tmp_path / "migrations", "20250101000000_b.sql", simple("b"))
    with pytest.raises(
        MigrationError,
        match=r"^duplicate version 20250101000000: "
        r"migrations/20250101000000_a.sql and migrations/20250101000000_b.sql$",
    ):
        files.load(Path("migrations"))


def test_unknown_dependency_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "migrations",
        "20250101000000_a.sql",
        simple("a", header="-- dbops:requires 20240101000000"),
    )
    with pytest.raises(
        MigrationError,
        match=r"^migrations/20250101000000_a.sql: requires unknown "
        r"version 20240101000000$",
    ):
        files.load(Path("migrations"))


def test_dependency_cycle_names_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "migrations"
    write(d, "20250101000000_a.sql", simple("a", header="-- dbops:requires 20250102000000"))
    write(d, "20250102000000_b.sql", simple("b", header="-- dbops:requires 20250101000000"))
    write(d, "20250103000000_c.sql", simple("c"))
    with pytest.raises(MigrationError) as caught:
        files.load(Path("migrations"))
    assert str(caught.value) == (
        "dependency cycle: migrations/20250101000000_a.sql -> migrations/20250102000000_b.sql"
        " -> migrations/20250101000000_a.sql"
    )


def test_dependencies_come_first_then_versions(tmp_path: Path) -> None:
    write(tmp_path, "20250101000000_a.sql", simple("a", header="-- dbops:requires 20250103000000"))
    write(tmp_path, "20250102000000_b.sql", simple("b"))
    write(tmp_path, "20250103000000_c.sql", simple("c"))
    order = [m.version for m in files.load(tmp_path)]
    assert order == ["20250102000000", "20250103000000", "20250101000000"]


def test_repository_migrations_parse_and_have_down_sections() -> None:
    migrations = files.load(REPO / "migrations")
    assert len(migrations) >= 4
    for m in migrations:
        assert m.down is not None, m.file
        m.up.statements(m.path)
        m.down.statements(m.path)
    files.check_sum(REPO / "migrations")


@pytest.mark.parametrize(
    ("statement", "transactional"),
    [
        ("CREATE TABLE t (id int)", True),
        ("CREATE INDEX i ON t (id)", True),
        ("CREATE INDEX CONCURRENTLY i ON t (id)", False),
        ("DROP INDEX CONCURRENTLY i", False),
        ("REINDEX INDEX CONCURRENTLY i", False),
        ("REINDEX INDEX i", True),
        ("REINDEX DATABASE app", False),
        ("ALTER SYSTEM SET work_mem = '8MB'", False),
        ("VACUUM t", False),
        ("ANALYZE t", True),
        ("CREATE DATABASE other", False),
        ("DROP DATABASE other", False),
        ("CLUSTER", False),
        ("CLUSTER t USING i", True),
        ("ALTER TYPE mood ADD VALUE 'meh'", True),
        ("DO $$ BEGIN PERFORM 1; END $$", True),
    ],
)
def test_transaction_capability_comes_from_the_parser(statement: str, transactional: bool) -> None:
    [parsed] = split(statement)
    assert parsed.transactional is transactional


def test_split_locates_statements_and_keeps_them_whole() -> None:
    text = "-- comment\nCREATE TABLE a (t text DEFAULT 'é;');\n\nCREATE INDEX CONCURRENTLY i ON a (t);\n"
    first, second = split(text, first_line=10)
    assert (first.text, first.line) == ("CREATE TABLE a (t text DEFAULT 'é;')", 11)
    assert (second.line, second.index) == (13, (None, "i"))


def test_syntax_error_names_the_file_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(
        tmp_path / "migrations",
        "20250101000000_broken.sql",
        "-- broken\n-- migrate:up\nCREATE TABLE a (id int);\n\nCREAT TABLE b (id int);\n",
    )
    m = files.parse(Path("migrations") / path.name)
    with pytest.raises(
        MigrationError,
        match=r"^migrations/20250101000000_broken.sql:5: "
        r'syntax error at or near "CREAT"$',
    ):
        m.up.statements(m.path)


def test_transaction_control_is_refused() -> None:
    with pytest.raises(SqlSyntaxError, match="transaction control"):
        split("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;")


def test_sum_detects_added_changed_and_removed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    d = Path("migrations")
    write(d, "20250101000000_a.sql", simple("a"))
    with pytest.raises(MigrationError, match=r"^migrations/dbops.sum is missing"):
        files.check_sum(d)
    files.write_sum(d)
    files.check_sum(d)
    write(d, "20250102000000_b.sql", simple("b"))
    with pytest.raises(MigrationError, match=r"out of date \(20250102000000_b.sql added\)"):
        files.check_sum(d)
    files.write_sum(d)
    write(d, "20250101000000_a.sql", simple("a", body="CREATE TABLE t2 (id int);"))
    (d / "20250102000000_b.sql").unlink()
    with pytest.raises(
        MigrationError,
        match=r"\(20250101000000_a.sql changed, "
        r"20250102000000_b.sql removed\)",
    ):
        files.check_sum(d)


def test_sum_first_line_changes_with_any_file(tmp_path: Path) -> None:
    write(tmp_path, "20250101000000_a.sql", simple("a"))
    before = files.render_sum(tmp_path).splitlines()[1]
    write(tmp_path, "20250102000000_b.sql", simple("b"))
    assert files.render_sum(tmp_path).splitlines()[1] != before


def test_create_writes_template_and_updates_sum(tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    path = create_migration(
        d,
        "Add user preferences table",
        zero_downtime=True,
        estimated_duration="30 seconds",
        risk="medium",
        requires=("20250527100000",),
    )
    assert path.name.endswith("_add_user_preferences_table.sql")
    text = path.read_text()
    assert "-- dbops:estimated-duration 30s\n" in text
    assert "-- dbops:requires 20250527100000\n" in text
    assert "-- dbops:zero-downtime\n" in text and "-- dbops:risk medium\n" in text
    assert path.name in (d / "dbops.sum").read_text()
    second = create_migration(d, "add user preferences table")
    assert second.name[:14] != path.name[:14]
    assert second.name in (d / "dbops.sum").read_text()


def test_new_version_moves_past_taken_seconds(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    write(tmp_path, "20260102030405_a.sql", simple("a"))
    assert files.new_version(tmp_path, now) == "20260102030406"


def test_create_refuses_a_bad_duration(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="is not a duration"):
        create_migration(tmp_path, "x", estimated_duration="a while")
