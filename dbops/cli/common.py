"""The command line's shared parts: the group, error handling, confirmation, plan loading."""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click
import psycopg

from dbops import __version__
from dbops.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from dbops.config.load import load_plan
from dbops.config.project import find_project
from dbops.connect import mask
from dbops.errors import DbopsError, PlanError, UsageError
from dbops.units import parse_duration

if TYPE_CHECKING:
    from dbops.audit import Operation
    from dbops.backup import BackupManager
    from dbops.changes import ChangeSet
    from dbops.config.model import Plan
    from dbops.config.project import Project

F = TypeVar("F", bound=Callable[..., Any])



def fail(message: str) -> None:
    click.echo(mask(message), err=True)


def fail_json(message: str, kind: str) -> None:
    """The error as the one JSON document on stdout, so a reader of `--format json` never gets
    an empty one (the text still goes to stderr)."""
    click.echo(json.dumps({"error": {"message": mask(message), "type": kind}}, indent=2))


def handle_errors(func: F) -> F:
    """Turn dbops errors into masked one-line messages (and, with `--format json`, a JSON error
    document on stdout) and exit code 1; nothing else catches."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlanError as exc:
            lines = [str(problem) for problem in exc.problems] or [str(exc)]
            _report(lines, type(exc).__name__, kwargs.get("fmt") == "json")
        except DbopsError as exc:
            _report([f"error: {exc}"], type(exc).__name__, kwargs.get("fmt") == "json")
        except psycopg.Error as exc:  # a server refusal dbops did not anticipate: still one line
            reason = (exc.diag.message_primary or str(exc)).splitlines()[0]
            _report([f"error: {reason} (SQLSTATE {exc.sqlstate or 'unknown'})"],
                    type(exc).__name__, kwargs.get("fmt") == "json")
        sys.exit(EXIT_ERROR)

    return wrapper  # type: ignore[return-value]


def _report(lines: list[str], kind: str, as_json: bool) -> None:
    for line in lines:
        fail(line)
    if as_json:
        fail_json("\n".join(line.removeprefix("error: ") for line in lines), kind)


def _wants_json(args: Sequence[str]) -> bool:
    """Whether the command line asks for `--format json` (read from the raw words: a usage
    error can stop click before it has parsed the option)."""
    words = list(args)
    return "--format=json" in words or any(
        a == "--format" and b == "json" for a, b in itertools.pairwise(words)
    )


class DbopsGroup(click.Group):
    """Click's group with exit codes a CI job can trust: a usage error (bad option or choice,
    missing argument, unknown command) exits 1 like any other error, where click would exit 2,
    which dbops keeps for "changes", "out-of-band drift" and "warning".

    Commands are registered by importing their family's module (`families`: command name ->
    module), and a module is imported only when one of its commands runs: `dbops migrate up`
    does not pay for the planner, backups or health. Help and completion import them all."""

    families: Mapping[str, str] = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.families.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in dict.fromkeys(self.families.values()):
            importlib.import_module(module)
        return super().list_commands(ctx)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        words = sys.argv[1:] if args is None else list(args)
        try:
            code = super().main(words, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            exc.show()
            if _wants_json(words):
                fail_json(exc.format_message(), type(exc).__name__)
            sys.exit(EXIT_ERROR)
        except click.Abort:
            fail("Aborted!")
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            fail("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # the last resort: a bug is still one line, never a traceback
            if os.environ.get("DBOPS_DEBUG") == "1":
                raise
            reason = str(exc).splitlines()[0] if str(exc) else ""
            fail(f"error: internal error: {type(exc).__name__}: {reason} (a dbops bug; "
                 "DBOPS_DEBUG=1 shows the traceback)")
            if _wants_json(words):
                fail_json(f"internal error: {type(exc).__name__}", "InternalError")
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@click.group(cls=DbopsGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
        raise UsageError(
            f"refusing to {action} on {environment} without --yes (no terminal to ask)"
        )
    if not click.confirm(f"{action} on {environment}?", default=False):
        raise UsageError("cancelled")


@contextmanager
def _reporting(stream: TextIO | None = None) -> Iterator[None]:
    """Progress of the long steps run inside the block (dbops.progress), on the stream that
    has the command's other messages (default stdout; stderr for a command whose stdout is its
    result): live on a terminal, a line at each step's start and end otherwise."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops import progress

    with progress.reporting(sys.stdout if stream is None else stream):
        yield


def _duration_option(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _load(env: str | None, overrides: tuple[str, ...]) -> Plan:
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
    from dbops import render  # lazy: only the commands that show a plan render one

    if fmt == "json":
        return render.json(changeset)
    if fmt == "markdown":
        return render.markdown(changeset)
    return render.text(changeset, color=sys.stdout.isatty())


@contextmanager
def _audited(plan: Plan, action: str, *, replaces_database: bool = False) -> Iterator[Operation]:
    """The command's audit record (dbops.audit), written when the block ends."""
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.audit import audited

    with audited(plan, action, replaces_database=replaces_database) as operation:
        yield operation


def _backups(env: str | None) -> BackupManager:
    # lazy: keeps `dbops --help` and other commands from loading what this command needs
    from dbops.backup import BackupManager

    return BackupManager.from_plan(
        _environment(env),
        root=_project().root,
        notify=lambda message: click.echo(mask(message), err=True),
    )
