"""The dbops command line: parse, call one pipeline function, render, pick the exit code. No logic.

One module a family of commands; importing them registers them on `main`.
"""

from dbops.cli import (  # noqa: F401 - importing them registers the commands
    audits,
    backups,
    doctor,
    migrations,
    observability,
    plans,
    projects,
)
from dbops.cli.common import main

__all__ = ["main"]
