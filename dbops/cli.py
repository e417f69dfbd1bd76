"""The dbops command line: parse, call one pipeline function, render, pick the exit code. No logic."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dbops import __version__
from dbops.config.load import plan_files, resolve_plan_path, validate_file
from dbops.config.source import display_path
from dbops.connect import mask
from dbops.errors import DbopsError, PlanError

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

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbops")
def main() -> None:
    """Declarative PostgreSQL operations: validate, plan, apply, drift, migrate, back up, monitor."""


@main.command()
@click.argument("plans", nargs=-1)
@handle_errors
def validate(plans: tuple[str, ...]) -> None:
    """Check plan files (every file in plans/ when none is named): exit 1 on any problem."""
    root = Path.cwd()
    paths = [resolve_plan_path(ref, root) for ref in plans] if plans else plan_files(root)
    if not paths:
        raise DbopsError("no plan files in plans/")
    problems = [p for path in paths for p in validate_file(path, root=root)]
    for problem in problems:
        fail(str(problem))
    if problems:
        sys.exit(EXIT_ERROR)
    click.echo(f"{len(paths)} plan(s) valid: {', '.join(display_path(p) for p in paths)}")


@main.group()
def local() -> None:
    """The embedded development database under .dbops/ (what plans/development.yaml uses)."""


def _print_status(action: str) -> None:
    from dbops import local as embedded

    cluster = embedded.development_cluster(Path.cwd())
    status = getattr(cluster, action)()
    if status.running:
        click.echo(
            f"running: PostgreSQL {status.version} on 127.0.0.1:{status.port} "
            f"(pid {status.pid}, data {status.data_dir})"
        )
    else:
        state = "stopped" if status.initialized else "not created"
        click.echo(f"{state}: {status.data_dir}")


@local.command("up")
@handle_errors
def local_up() -> None:
    """Create (first time) and start the development cluster; does nothing when it runs."""
    from dbops import local as embedded
    from dbops.config.load import load_plan

    _print_status("up")
    plan = load_plan("development")
    if embedded.development_cluster(Path.cwd()).ensure_database(plan.database.name):
        click.echo(f"created database {plan.database.name}")


@local.command("down")
@handle_errors
def local_down() -> None:
    """Stop the development cluster (its data stays under .dbops/)."""
    _print_status("down")


@local.command("status")
@handle_errors
def local_status() -> None:
    """Show whether the development cluster runs, where, and which version."""
    _print_status("status")
