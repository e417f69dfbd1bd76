"""The dbops command line: parse, call one pipeline function, render, pick the exit code. No logic.

One module a family of commands; importing it registers them on `main`. `FAMILIES` says which
module holds which command, so a command imports only its own family (start-up time counts on
every CI run of `dbops migrate up`).
"""

from dbops.cli.common import main

FAMILIES = {
    "audit": "dbops.cli.audits",
    "backup": "dbops.cli.backups",
    "doctor": "dbops.cli.doctor",
    "migrate": "dbops.cli.migrations",
    "rollback": "dbops.cli.migrations",
    "observability": "dbops.cli.observability",
    "apply": "dbops.cli.plans",
    "drift": "dbops.cli.plans",
    "health": "dbops.cli.plans",
    "local": "dbops.cli.plans",
    "plan": "dbops.cli.plans",
    "validate": "dbops.cli.plans",
    "import": "dbops.cli.projects",
    "init": "dbops.cli.projects",
}
main.families = FAMILIES

__all__ = ["FAMILIES", "main"]
