"""`dbops init|import`: start using dbops, on a new project or on a database that already runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from dbops.cli.common import _project, handle_errors, main
from dbops.config.profiles import PROFILES
from dbops.config.source import display_path
from dbops.connect import environment_endpoint

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
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.scaffold import scaffold

    for path in scaffold(directory, environment):
        click.echo(f"wrote {display_path(path)}")
    click.echo(f"next: fill in plans/{environment}.yaml (or set DB_HOST, DB_PORT, DB_NAME, DB_USER, "
               f"DB_PASSWORD), then `dbops validate` and `dbops plan {environment}`")


@main.command("import")
@click.argument("env", callback=_environment)
@click.option("--from-database", is_flag=True, required=True,
              help="Describe the live server (the only source dbops imports from).")
@click.option("--dsn", metavar="CONNINFO",
              help="Connect with this libpq connection string instead of the DB_* variables.")
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="oltp", show_default=True,
              help="The workload profile whose pool to size to the server's connection budget.")
@handle_errors
def import_(env: str, from_database: bool, dsn: str | None, profile: str) -> None:
    """Write plans/ENV.yaml describing a running server: its non-default settings, login roles,
    replicas and a pool that fits its connections. Refuses to overwrite the plan."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.adopt import describe
    from dbops.inspect import read_facts
    from dbops.scaffold import refuse_existing

    project = _project()
    root = project.root
    relative = str((project.plans / f"{env}.yaml").relative_to(root))
    refuse_existing(root, [relative])
    ep = environment_endpoint(os.environ, dsn)
    facts = read_facts(ep, command="import")
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(describe(facts, ep, env, profile), encoding="utf-8")
    click.echo(f"wrote {display_path(path)} from {ep.describe()}")
    click.echo(f"next: `dbops validate`, then `dbops plan {env} --diff` (expect no changes)")
