"""`dbops doctor ENV`: can the role the plan connects as do what the plan asks?"""

from __future__ import annotations

import sys

import click

from dbops.cli.common import _env_argument, _load, _set_option, handle_errors, main
from dbops.cli.exits import EXIT_ERROR


@main.command()
@_env_argument
@_set_option
@handle_errors
def doctor(env: str | None, overrides: tuple[str, ...]) -> None:
    """Check, against the live servers, that the plan's role has every privilege the plan needs
    (exit 1 when one is missing), and print the statements that would grant them."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import privileges

    the_plan = _load(env, overrides)
    facts = privileges.probe(the_plan)
    findings = privileges.judge(the_plan, facts)
    kind = "a superuser" if facts.superuser else "not a superuser"
    click.echo(f"{facts.role} ({kind}) on {facts.database}, PostgreSQL "
               f"{facts.server_version // 10000}:")
    for finding in findings:
        mark = "ok" if finding.ok else ("MISSING" if finding.blocking else "advice")
        detail = f" ({finding.detail})" if finding.detail else ""
        click.echo(f"  {mark:<7} {finding.subject}: {finding.need}{detail}")
    lacking = privileges.missing(findings)
    if facts.superuser:
        click.echo(f"\nTo run this plan as a dedicated least-privilege role instead of "
                   f"{facts.role}, run as a superuser:")
        for statement in [f"CREATE ROLE {privileges.DEDICATED_ROLE} LOGIN;",
                          *privileges.statements(findings)]:
            click.echo(f"  {statement}")
    elif lacking:
        click.echo(f"\nTo give {facts.role} what this plan needs, run as a superuser:")
        for statement in privileges.statements(lacking):
            click.echo(f"  {statement}")
    if lacking:
        sys.exit(EXIT_ERROR)
