"""A new dbops project's files, rendered from the package's templates: what `dbops init` writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from dbops import __version__
from dbops.config.source import display_path
from dbops.errors import DbopsError
from dbops.migrate.files import write_sum

GITIGNORE_ENTRY = ".dbops/"
# The GitHub repository the generated workflows take the dbops actions from (action.yml and
# drift/action.yml at its root), pinned to this dbops's version tag. A placeholder until dbops
# is published there: a team points it at the fork or mirror it installs dbops from.
ACTION_REPOSITORY = "dbops-dev/dbops"


@dataclass(frozen=True)
class ProjectFile:
    """One file of the scaffold: its path in the project and the template that renders it."""

    path: str
    template: str


def project_files(environment: str) -> tuple[ProjectFile, ...]:
    return (
        ProjectFile("dbops.toml", "init-dbops.toml.j2"),
        ProjectFile("plans/base.yaml", "init-base.yaml.j2"),
        ProjectFile(f"plans/{environment}.yaml", "init-plan.yaml.j2"),
        ProjectFile(f"inventories/{environment}.py", "init-inventory.py.j2"),
        ProjectFile(".github/workflows/dbops-pr.yml", "init-dbops-pr.yml.j2"),
        ProjectFile(".github/workflows/dbops-drift.yml", "init-dbops-drift.yml.j2"),
    )


def render(template: str, **values: object) -> str:
    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("dbops", "templates"), keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, autoescape=False)
    return templates.get_template(template).render(**values)


def refuse_existing(root: Path, paths: list[str]) -> None:
    """dbops never overwrites a user's file: the first one that exists stops everything."""
    for relative in paths:
        if (root / relative).exists():
            raise DbopsError(f"{display_path(root / relative)} already exists: dbops does not "
                             "overwrite it")


def scaffold(root: Path, environment: str) -> list[Path]:
    """Write the project under `root` (created if missing) and return the paths written, in order.
    Nothing is written when any of the files exists; .gitignore is created or appended to."""
    files = project_files(environment)
    sum_path = root / "migrations" / "dbops.sum"
    refuse_existing(root, [f.path for f in files] + ["migrations/dbops.sum"])
    written = []
    for item in files:
        path = root / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(item.template, environment=environment, action=ACTION_REPOSITORY,
                               ref=f"v{__version__}"), encoding="utf-8")
        written.append(path)
    sum_path.parent.mkdir(parents=True, exist_ok=True)
    written.append(write_sum(sum_path.parent))
    if _ignore(root / ".gitignore"):
        written.append(root / ".gitignore")
    return written


def _ignore(path: Path) -> bool:
    """Add `.dbops/` (local state: the embedded cluster, backups) to .gitignore unless present."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(line.strip() in (GITIGNORE_ENTRY, ".dbops") for line in text.splitlines()):
        return False
    separator = "" if not text or text.endswith("\n") else "\n"
    path.write_text(f"{text}{separator}# dbops local state (embedded database, backups)\n"
                    f"{GITIGNORE_ENTRY}\n", encoding="utf-8")
    return True
