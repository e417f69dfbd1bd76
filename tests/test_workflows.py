"""The CI examples: this repository's workflows and the ones `dbops init` writes run the dbops
actions (action.yml, drift/action.yml), whose scripts tests/test_ci_action.py runs against a real
server as GitHub would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dbops import __version__
from dbops.scaffold import ACTION_REPOSITORY, render

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def action_steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    [job] = document["jobs"].values()
    return [step for step in job["steps"] if "checkout" not in step.get("uses", "checkout")]


def test_pull_request_workflows_use_the_action() -> None:
    ours = yaml.safe_load((WORKFLOWS / "dbops-pr.yml").read_text())
    theirs = yaml.safe_load(render("init-dbops-pr.yml.j2", environment="staging",
                                   action=ACTION_REPOSITORY, ref=f"v{__version__}"))
    for document, uses, environment in ((ours, "./", "production"),
                                        (theirs, f"{ACTION_REPOSITORY}@v{__version__}",
                                         "staging")):
        assert document["permissions"]["pull-requests"] == "write"
        [step] = action_steps(document)
        assert step["uses"] == uses
        assert step["with"] == {"environment": environment, "comment": True}


def test_drift_workflows_use_the_drift_action() -> None:
    ours = yaml.safe_load((WORKFLOWS / "dbops-drift.yml").read_text())
    theirs = yaml.safe_load(render("init-dbops-drift.yml.j2", environment="staging",
                                   action=ACTION_REPOSITORY, ref=f"v{__version__}"))
    for document, uses, environments in ((ours, "./drift", ["staging", "production"]),
                                         (theirs, f"{ACTION_REPOSITORY}/drift@v{__version__}",
                                          ["staging"])):
        [job] = document["jobs"].values()
        assert job["strategy"]["matrix"]["environment"] == environments
        [step] = action_steps(document)
        assert step["uses"] == uses
        assert step["with"] == {"environment": "${{ matrix.environment }}"}
