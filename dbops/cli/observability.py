"""`dbops observability rules ENV`: the Prometheus rules for an environment, from its plan."""

from __future__ import annotations

import click

from dbops.cli.common import _env_argument, _load, _set_option, handle_errors, main


@main.group()
def observability() -> None:
    """What to plug into Prometheus and Grafana (see the README's Observability section)."""


@observability.command("rules")
@_env_argument
@click.option("--runbook-base", default=None, metavar="URL",
              help="Where each alert's runbook_url points, e.g. your repository's README URL "
              "(default: README.md).")
@_set_option
@handle_errors
def rules(env: str | None, runbook_base: str | None, overrides: tuple[str, ...]) -> None:
    """Print recording and alerting rules judged by the plan's health thresholds (YAML)."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.observability import prometheus_rules as generator

    plan = _load(env, overrides)
    try:
        source = plan.source.resolve().relative_to(plan.root.resolve()).as_posix()
    except ValueError:
        source = plan.source.name
    click.echo(generator.render(plan, source, runbook_base or generator.RUNBOOK_BASE), nl=False)
