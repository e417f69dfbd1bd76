"""`dbops init|import`: start using dbops, on a new project or on a database that already runs."""

from __future__ import annotations

import re
from pathlib import Path

import click

from dbops.cli.base import handle_errors, main
from dbops.config.source import display_path

_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9_-]*$")  # the plan schema's pattern for `environment`


def _environment(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _ENVIRONMENT.match(value):
        raise click.BadParameter(f"{value!r}: lower case letters, digits, '_' and '-', "
                                 "starting with a letter")
    return value


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--environment", "-e", default="development", show_default=True,
              callback=_environment, help="The environment whose plan and inventory to write.")
@handle_errors
def init(directory: Path, environment: str) -> None:
    """Scaffold a dbops project in DIRECTORY: dbops.toml, plans, migrations, an inventory and CI
    workflows. Refuses to overwrite any existing file."""
    from dbops.scaffold import scaffold

    for path in scaffold(directory, environment):
        click.echo(f"wrote {display_path(path)}")
    click.echo(f"next: fill in plans/{environment}.yaml (or set DB_HOST, DB_PORT, DB_NAME, DB_USER, "
               f"DB_PASSWORD), then `dbops validate` and `dbops plan {environment}`")
