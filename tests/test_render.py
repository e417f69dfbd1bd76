"""dbops.render with plain values: the ChangeSet as text, markdown and JSON (against
schemas/changeset.schema.json); the drift report as text and JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import click
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from dbops import render
from dbops.backup.pitr import PitrResult, PitrVerification
from dbops.changes import (
    Action,
    Change,
    ChangeSet,
    Gate,
    GateCheck,
    Kind,
    MigrationRun,
    MigrationStep,
    Risk,
)
from dbops.drift import DriftItem, DriftReport
from dbops.render import backup_results, drift_report
from dbops.style import styled

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "schemas" / "changeset.schema.json").read_text())
DATABASE = "dbops@db:5432/taskmaster_db"
SYMBOLS: list[Action] = ["+", "~", "-", "~!"]


def changeset(
    *changes: Change, gates: tuple[Gate, ...] = (), notes: tuple[str, ...] = ()
) -> ChangeSet:
    return ChangeSet(
        environment="production",
        database=DATABASE,
        plan_hash="3f2a9c0d",
        created_at="2025-06-10T12:00:00+00:00",
        changes=changes,
        gates=gates,
        notes=notes,
    )


def change(
    address: str,
    action: Action,
    before: Any = None,
    after: Any = None,
    *,
    risk: Risk = "low",
    reason: str = "",
    **fields: Any,
) -> Change:
    kind: Kind = address.split(".")[0]  # type: ignore[assignment]
    return Change(kind, address, action, before, after, risk, reason, True, **fields)


def representative() -> ChangeSet:
    """What the planner produces for production: settings, roles, a migration, gates, notes."""
    return changeset(
        change(
            "setting.work_mem",
            "~",
            "4MB",
            "32MB",
            takes_effect="reload",
            statements=("ALTER SYSTEM SET work_mem = '32MB'", "SELECT pg_reload_conf()"),
            inverse=("ALTER SYSTEM RESET work_mem", "SELECT pg_reload_conf()"),
            hosts=("primary", "replica1"),
        ),
        change(
            "setting.shared_buffers",
            "~!",
            "128MB",
            "2GB",
            risk="high",
            reason="needs a restart: applied only with --allow-restart",
            takes_effect="restart",
            statements=("ALTER SYSTEM SET shared_buffers = '2GB'",),
            inverse=("ALTER SYSTEM RESET shared_buffers",),
        ),
        change(
            "role.taskmaster_app",
            "+",
            statements=("CREATE ROLE taskmaster_app LOGIN",),
            inverse=("DROP ROLE taskmaster_app",),
        ),
        change(
            "role.taskmaster_app.connection_limit",
            "~",
            100,
            130,
            risk="medium",
            reason="above the pool budget of 125",
        ),
        change("role.taskmaster_app.settings.statement_timeout", "-", "30s"),
        change(
            "migration.20250610120000",
            "+",
            None,
            "index_tasks_queue",
            detail=("2 journaled steps", "CREATE INDEX CONCURRENTLY ... on tasks"),
            migration=MigrationRun(
                "20250610120000", "index_tasks_queue", "20250610120000_index_tasks_queue.sql",
                "ab" * 32, "up", "steps",
                (MigrationStep(1, False, ("CREATE INDEX CONCURRENTLY i ON tasks (queue)",), (3,)),
                 MigrationStep(2, True, ("ANALYZE tasks",), (4,), "statistics"))),
        ),
        gates=(
            Gate("before apply", (GateCheck("connectivity", "<= 5s"),
                                  GateCheck("connection_utilization", "<= 80%"))),
            Gate("after each stage", (GateCheck("replication_lag", "<= 30s"),)),
        ),
        notes=("pool budget: 6 × 20 + 5 = 125 of role limit 130, max_connections 200",),
    )


def migrations(count: int) -> ChangeSet:
    return changeset(
        *(change(f"migration.2025061012{i:04d}", "+", None, f"step_{i}") for i in range(count))
    )


def test_text_renders_a_representative_plan() -> None:
    assert render.text(representative(), color=False) == (
        "dbops plan for production on dbops@db:5432/taskmaster_db\n"
        "\n"
        "Settings:\n"
        "  ~ setting.work_mem: 4MB -> 32MB (reload)\n"
        "      hosts: primary, replica1\n"
        "  ~! setting.shared_buffers: 128MB -> 2GB (restart)\n"
        "      risk high: needs a restart: applied only with --allow-restart\n"
        "\n"
        "Roles:\n"
        "  + role.taskmaster_app\n"
        "  ~ role.taskmaster_app.connection_limit: 100 -> 130\n"
        "      risk medium: above the pool budget of 125\n"
        "  - role.taskmaster_app.settings.statement_timeout: 30s\n"
        "\n"
        "Migrations:\n"
        "  + migration.20250610120000: index_tasks_queue\n"
        "      2 journaled steps\n"
        "      CREATE INDEX CONCURRENTLY ... on tasks\n"
        "\n"
        "Gates:\n"
        "  before apply: connectivity <= 5s, connection_utilization <= 80%\n"
        "  after each stage: replication_lag <= 30s\n"
        "\n"
        "Notes:\n"
        "  pool budget: 6 × 20 + 5 = 125 of role limit 130, max_connections 200\n"
        "\n"
        "Plan: 2 to add, 3 to change, 1 to remove, 1 needs restart"
    )


def test_text_closes_with_the_summary_line() -> None:
    cs = changeset(
        change("setting.work_mem", "~", "4MB", "32MB"),
        change("setting.shared_buffers", "~!", "128MB", "2GB"),
        change("role.app", "+"),
        change("role.old", "-"),
        change("role.older", "-"),
    )
    assert render.text(cs, color=False).splitlines()[-1] == (
        "Plan: 1 to add, 2 to change, 2 to remove, 1 needs restart"
    )
    assert render.text(cs, color=False).splitlines()[-1] == str(cs.summary())


@pytest.mark.parametrize(
    ("action", "before", "after", "line"),
    [
        ("+", None, "30s", "  + role.app.settings.statement_timeout: 30s"),
        ("~", "10s", "30s", "  ~ role.app.settings.statement_timeout: 10s -> 30s"),
        ("-", "10s", None, "  - role.app.settings.statement_timeout: 10s"),
        ("~!", "10s", "30s", "  ~! role.app.settings.statement_timeout: 10s -> 30s"),
    ],
)
def test_each_action_has_its_symbol(
    action: Action, before: str | None, after: str | None, line: str
) -> None:
    cs = changeset(change("role.app.settings.statement_timeout", action, before, after))
    assert render.text(cs, color=False).splitlines()[3] == line


def test_values_are_spelled_plainly() -> None:
    cs = changeset(
        change("role.app.login", "~", False, True),
        change("setting.search_path", "~", "", "app"),
        change("role.app", "+"),
    )
    assert render.text(cs, color=False).splitlines()[3:5] == [
        "  ~ role.app.login: false -> true",
        "  + role.app",
    ]
    assert "  ~ setting.search_path: '' -> app" in render.text(cs, color=False).splitlines()


def test_colour_codes_only_with_color() -> None:
    cs = changeset(*(change(f"setting.s{i}", a, "1", "2") for i, a in enumerate(SYMBOLS)))
    plain = render.text(cs, color=False)
    coloured = render.text(cs, color=True)
    assert "\x1b[" not in plain
    for i, (action, colour) in enumerate(
        zip(SYMBOLS, ["green", "yellow", "red", "magenta"], strict=True)
    ):
        assert f"  {styled(action, colour)} setting.s{i}" in coloured
    assert click.unstyle(coloured) == plain


def test_risk_is_shown_for_medium_and_high_only() -> None:
    cs = changeset(
        *(
            change(f"setting.{risk}", "~", "1", "2", risk=risk, reason=f"{risk} reason")
            for risk in get_args(Risk)
        )
    )
    out = render.text(cs, color=False)
    assert "low reason" not in out
    assert "      risk medium: medium reason" in out
    assert "      risk high: high reason" in out


def test_kinds_are_grouped_in_changeset_order() -> None:
    cs = changeset(
        change("migration.1", "+", None, "a"),
        change("setting.a", "~", "1", "2"),
        change("migration.2", "+", None, "b"),
    )
    lines = render.text(cs, color=False).splitlines()
    assert [line for line in lines if line.endswith(":") and not line.startswith(" ")] == [
        "Migrations:",
        "Settings:",
    ]
    assert lines.index("  + migration.2: b") == lines.index("  + migration.1: a") + 1


def test_an_empty_plan_says_so() -> None:
    assert render.text(changeset(), color=True) == "No changes. The database matches the plan."
    assert render.text(changeset(notes=("backup.take is not due",)), color=False) == (
        "No changes. The database matches the plan.\n\nNotes:\n  backup.take is not due"
    )
    md = render.markdown(changeset(notes=("backup.take is not due",)))
    assert "**No changes. The database matches the plan.**" in md
    assert md.endswith("- backup.take is not due")
    assert "<details>" not in md


def test_markdown_puts_summary_warnings_and_counts_before_the_details() -> None:
    md = render.markdown(representative())
    lines = md.splitlines()
    assert lines[0] == "### dbops plan for production on `dbops@db:5432/taskmaster_db`"
    assert lines[2] == "**Plan: 2 to add, 3 to change, 1 to remove, 1 needs restart**"
    first_details = md.index("<details>")
    assert md.index("> [!WARNING]") < first_details
    assert (
        md.index(
            "> - `~!` setting.shared\\_buffers (high risk, needs a restart): needs a restart:"
            " applied only with --allow-restart"
        )
        < first_details
    )
    assert md.index("| setting | 0 | 2 | 0 | 1 |") < first_details
    assert "| role | 1 | 1 | 1 | 0 |" in md
    assert "<details><summary>setting: 2 changes (2 to change, 1 needs restart)</summary>" in md
    assert (
        "| `~` | setting.work\\_mem | 4MB | 32MB | low | reload | on primary, replica1 |" in lines
    )
    assert (
        "| `+` | migration.20250610120000 |  | index\\_tasks\\_queue | low |"
        " 2 journaled steps<br>CREATE INDEX CONCURRENTLY ... on tasks |"
    ) in lines
    assert md.index("#### Gates") > md.rindex("</details>")
    assert md.endswith("- pool budget: 6 × 20 + 5 = 125 of role limit 130, max\\_connections 200")


def test_markdown_of_a_small_plan() -> None:
    cs = changeset(change("setting.work_mem", "~", "4MB", "32MB", takes_effect="reload"))
    assert render.markdown(cs) == (
        "### dbops plan for production on `dbops@db:5432/taskmaster_db`\n"
        "\n"
        "**Plan: 0 to add, 1 to change, 0 to remove, 0 needs restart**\n"
        "\n"
        "| kind | add | change | remove | needs restart |\n"
        "|:--|--:|--:|--:|--:|\n"
        "| setting | 0 | 1 | 0 | 0 |\n"
        "\n"
        "<details><summary>setting: 1 change (1 to change)</summary>\n"
        "\n"
        "| action | address | before | after | risk | takes effect |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| `~` | setting.work\\_mem | 4MB | 32MB | low | reload |\n"
        "\n"
        "</details>"
    )


def test_markdown_keeps_500_migrations_collapsed() -> None:
    md = render.markdown(migrations(500))
    assert md.splitlines()[2] == "**Plan: 500 to add, 0 to change, 0 to remove, 0 needs restart**"
    assert md.count("<details>") == md.count("</details>") == 1
    assert "<details open" not in md
    details = md[md.index("<details>") : md.index("</details>")]
    rows = [line for line in md.splitlines() if line.startswith("| `+` | migration.")]
    assert len(rows) == 500 and all(row in details for row in rows)
    assert "[!WARNING]" not in md


def test_markdown_lists_at_most_ten_flagged_changes_above_the_fold() -> None:
    cs = changeset(*(change(f"setting.s{i}", "~!", "1", "2", risk="high") for i in range(12)))
    above = render.markdown(cs).split("<details>")[0]
    assert "> **12 changes need attention** (restart or high risk):" in above
    assert above.count("> - `~!` setting.s") == 10
    assert "> - and 2 more: see the details below" in above


def test_markdown_escapes_table_cells() -> None:
    cs = changeset(
        change("setting.search_path", "~", "a|b", "`x` <y>\nz", reason="r|s", risk="medium")
    )
    row = next(line for line in render.markdown(cs).splitlines() if line.startswith("| `~`"))
    assert row == (
        "| `~` | setting.search\\_path | a\\|b | \\`x\\` \\<y\\><br>z | **medium**: r\\|s |"
    )
    assert re.findall(r"(?<!\\)\|", row) == ["|"] * 6  # five cells, every inner | escaped


def test_json_is_the_changeset_json_and_round_trips() -> None:
    cs = representative()
    assert render.json(cs) == cs.to_json()
    assert ChangeSet.from_json(render.json(cs)) == cs
    assert ChangeSet.from_json(render.json(changeset())) == changeset()


@pytest.mark.parametrize(
    "cs",
    [representative(), changeset(), migrations(3)],
    ids=["representative", "empty", "migrations"],
)
def test_json_validates_against_the_schema(cs: ChangeSet) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    assert list(validator.iter_errors(json.loads(render.json(cs)))) == []


def test_schema_rejects_what_the_format_does_not_have() -> None:
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    data = json.loads(render.json(representative()))
    data["changes"][0]["colour"] = "red"
    data["changes"][1]["action"] = "!"
    data["created_at"] = "yesterday"
    messages = sorted(e.message for e in validator.iter_errors(data))
    assert messages == [
        "'!' is not one of ['+', '~', '-', '~!']",
        "'yesterday' is not a 'date-time'",
        "Additional properties are not allowed ('colour' was unexpected)",
    ]


def test_schema_enums_match_the_data_model() -> None:
    change_schema = SCHEMA["$defs"]["change"]
    assert change_schema["properties"]["kind"]["enum"] == list(get_args(Kind))
    assert change_schema["properties"]["action"]["enum"] == list(get_args(Action))
    assert change_schema["properties"]["risk"]["enum"] == list(get_args(Risk))
    assert set(change_schema["required"]) == set(Change.__dataclass_fields__)
    assert set(SCHEMA["required"]) == set(representative().to_dict())


def test_renders_the_masked_database_and_no_password() -> None:
    cs = representative()
    for out in (render.text(cs, color=True), render.markdown(cs), render.json(cs)):
        assert DATABASE in out
        assert "password" not in out.lower()


def test_drift_report_text_lists_each_kind_under_its_title_then_the_verdict() -> None:
    report = DriftReport("prod", DATABASE, "2026-11-30T10:00:00+00:00", (
        DriftItem("pending", "setting.work_mem", "4MB", "4MB", "8MB"),
        DriftItem("out-of-band", "role.app", None, "superuser", None, ignored="known, until 2027-01-01"),
        DriftItem("out-of-band", "setting.max_connections", "100", "200", "100"),
    ), backup_source="the catalog in /backups")
    assert drift_report.lines(report) == [
        f"drift for prod ({DATABASE}), last applied 2026-11-30T10:00:00+00:00",
        "Out-of-band drift (the live database changed):",
        "  role.app: dbops applied nothing, live is 'superuser' (ignored: known, until 2027-01-01)",
        "  setting.max_connections: dbops applied '100', live is '200'",
        "Pending configuration (the plan changed):",
        "  setting.work_mem: applied '4MB', plan says '8MB'",
        "Backups judged from the catalog in /backups.",
        "Out-of-band drift found.",
    ]
    assert drift_report.text(report) == "\n".join(drift_report.lines(report))
    never = DriftReport("prod", DATABASE, None, ())
    assert drift_report.lines(never) == [f"drift for prod ({DATABASE}), dbops never applied here",
                                         "In sync."]


def test_drift_report_json_carries_the_exit_code_and_every_item() -> None:
    item = DriftItem("pending", "setting.work_mem", "4MB", "4MB", "8MB")
    data = json.loads(drift_report.json(DriftReport("prod", DATABASE, None, (item,)), 3))
    assert data == {"format_version": 1, "exit_code": 3, "environment": "prod",
                    "database": DATABASE, "baseline": None, "backup_source": "",
                    "items": [{"kind": "pending", "address": "setting.work_mem",
                               "last_applied": "4MB", "live": "4MB", "planned": "8MB",
                               "ignored": "", "detail": ""}]}


def test_pgbackrest_verify_shows_the_drill_after_the_verdict_and_a_failure_alone() -> None:
    drill = PitrResult("main", "20261201-100000F", Path("/tmp/drill"), 5433, None,
                       datetime(2026, 12, 1, 10, 5, tzinfo=UTC), 16 * 1024**2, 12.34, False,
                       rpo=timedelta(seconds=61.8))
    assert backup_results.pitr_verify(PitrVerification("backup set 20261201-100000F", None)) == [
        "pgbackrest verify of backup set 20261201-100000F: ok"]
    assert backup_results.pitr_verify(PitrVerification("the repository", None, drill)) == [
        "pgbackrest verify of the repository: ok",
        "restored stanza main from backup set 20261201-100000F to the end of the archived WAL "
        "into /tmp/drill in 12.3s (recovery time)",
        "recovered up to the transaction committed at 2026-12-01 10:05:00+00:00; 16 MB of WAL "
        "replayed",
        "data-loss window proven: 1m 1s (writes after the newest archived WAL segment would be "
        "lost)",
        "the drill's copy was stopped and removed",
    ]
    failed = PitrVerification("the repository", "checksum mismatch in 000000010000000000000003")
    assert not failed.ok
    assert backup_results.pitr_verify(failed) == [
        "pgbackrest verify FAILED: checksum mismatch in 000000010000000000000003"]

