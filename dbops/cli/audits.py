"""`dbops audit`: the audit log of every operation that changed something."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from dbops.cli.common import (
    _duration_option,
    _env_argument,
    _load,
    fail,
    handle_errors,
    main,
)


@main.command("audit")
@_env_argument
@click.option("--since", help="Only operations started within this long, e.g. 24h or 7d.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def audit_log(env: str | None, since: str | None, fmt: str) -> None:
    """Every operation on the environment's database, oldest first: when, what, result, who."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.audit import read

    window = _duration_option(since)
    plan = _load(env, ())
    records, note = read(plan, datetime.now(UTC) - window if window is not None else None)
    if note:
        fail(f"note: {note}")
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    if not records:
        click.echo("no operations recorded")
    for r in records:
        where = "" if r.stored == "database" else f" [{r.stored}]"
        click.echo(f"{r.at:%Y-%m-%d %H:%M:%S %Z}  {r.action:<20} {r.result:<11} "
                   f"{r.os_user}@{r.host} as {r.role}  plan {r.plan_hash}  "
                   f"dbops {r.dbops_version}{where}")
        if r.detail:
            click.echo(f"    {r.detail}")
