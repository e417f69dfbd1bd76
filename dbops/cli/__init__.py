"""The dbops command line: parse, call one pipeline function, render, pick the exit code. No logic.

One module a family of commands; importing them registers them on `main`.
"""

from dbops.cli import audit, backups, migrations, observability, plans, project  # noqa: F401 - registers the commands
from dbops.cli.base import main

__all__ = ["main"]
