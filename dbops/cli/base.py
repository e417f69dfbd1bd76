"""The command line's shared parts: the group, error handling, confirmation, plan loading."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import psycopg

from dbops import __version__
from dbops.config.units import parse_duration
from dbops.connect import mask
from dbops.errors import DbopsError, PlanError

if TYPE_CHECKING:
    from dbops.backup import BackupManager
    from dbops.changes import ChangeSet
    from dbops.config.model import Plan
    from dbops.config.project import Project
    from dbops.migrate.engine import Progress
    from dbops.migrate.source import Migration

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def fail(message: str) -> None:
    click.echo(mask(message), err=True)


def handle_errors(func: F) -> F:
    """Turn dbops errors into masked one-line messages and exit code 1; nothing else catches."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlanError as exc:
            for problem in exc.problems:
                fail(str(problem))
            sys.exit(EXIT_ERROR)
        except DbopsError as exc:
            fail(f"error: {exc}")
            sys.exit(EXIT_ERROR)
        except psycopg.Error as exc:  # a server refusal dbops did not anticipate: still one line
            reason = (exc.diag.message_primary or str(exc)).splitlines()[0]
            fail(f"error: {reason} (SQLSTATE {exc.sqlstate or 'unknown'})")
            sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbops")
@click.option(
    "-C",
    "--project-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The project root (default: $DBOPS_PROJECT_DIR, else the nearest directory at or above "
    "this one with a dbops.toml, then with a plans/ directory).",
)
def main(project_dir: Path | None) -> None:
    """Declarative PostgreSQL operations: validate, plan, apply, drift, migrate, back up, monitor."""


def _project() -> Project:
    """The project this command runs in, found once (lazily, so --help works in a broken one)."""
    from dbops.config.project import find_project

    ctx = click.get_current_context()
    if "dbops.project" not in ctx.meta:
        ctx.meta["dbops.project"] = find_project(given=ctx.find_root().params.get("project_dir"))
    project: Project = ctx.meta["dbops.project"]
    return project


def _environment(env: str | None) -> str:
    """The environment named on the command line, else dbops.toml's default_environment."""
    if env is not None:
        return env
    default = _project().default_environment
    if default is None:
        raise click.UsageError("name an environment (or set default_environment in dbops.toml)")
    return default


_env_argument = click.argument("env", required=False)


def _confirm(action: str, environment: str, yes: bool) -> None:
    """Changing a database needs --yes, or a yes at the prompt (development needs neither)."""
    if yes or environment == "development":
        return
    if not sys.stdin.isatty():
        raise DbopsError(
            f"refusing to {action} on {environment} without --yes (no terminal to ask)"
        )
    if not click.confirm(f"{action} on {environment}?", default=False):
        raise DbopsError("cancelled")


@contextmanager
def _progress(verb: str, total_hint: str) -> Iterator[Progress]:
    """Live progress on a terminal, one plain line per migration otherwise."""
    if not sys.stdout.isatty():

        def line(done: int, total: int, migration: Migration, ms: float) -> None:
            click.echo(
                f"{verb} {migration.version} {migration.name} ({ms:.0f} ms) [{done}/{total}]"
            )

        yield line
        return
    from rich.progress import Progress as Bar

    with Bar(transient=False) as bar:
        task = bar.add_task(total_hint, total=None)

        def advance(done: int, total: int, migration: Migration, ms: float) -> None:
            bar.update(
                task,
                completed=done,
                total=total,
                description=f"{verb} {migration.version} {migration.name}",
            )

        yield advance


def _duration_option(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _load(env: str | None, overrides: tuple[str, ...]) -> Plan:
    from dbops.config.load import load_plan

    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: use --set key.path=value", param_hint="--set")
        pairs[key] = value
    return load_plan(_environment(env), root=_project().root, overrides=pairs)


_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a plan setting (highest precedence), e.g. pool.max_size=30.",
)


def _render(changeset: ChangeSet, fmt: str) -> str:
    from dbops import render

    if fmt == "json":
        return render.json(changeset)
    if fmt == "markdown":
        return render.markdown(changeset)
    return render.text(changeset, color=sys.stdout.isatty())


def _backups(env: str | None) -> BackupManager:
    from dbops.backup import BackupManager

    return BackupManager.from_plan(
        _environment(env),
        root=_project().root,
        notify=lambda message: click.echo(mask(message), err=True),
    )
