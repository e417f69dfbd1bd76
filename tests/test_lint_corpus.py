"""The lint corpus (tests/lint_corpus/): dbops' verdict on every case, with live statistics from a
real database of the case's size, is the expected one; the cases dbops is known to get wrong are
exactly those marked known_miss (so fixing or breaking one is noticed)."""

from __future__ import annotations

import json

import pytest
from harness import Project
from lint_corpus.corpus import Size, build, cases, dbops_verdicts, judged

from dbops.migrate import files as migration_files
from dbops.migrate.engine import MigrationEngine
from dbops.render import lint_report


@pytest.mark.parametrize("size", ["large", "small"])
def test_every_verdict_on_the_corpus_is_right(project: Project, size: Size) -> None:
    with project.database.connect() as conn:
        build(conn, size)
    project.write_plan("migrations:\n  zero_downtime: false\n", environment=size)
    chosen = [case for case in cases() if case.size == size]
    files = sorted({case.file for case in chosen})
    engine = MigrationEngine.from_plan(size, root=project.root)
    report = engine.lint([migration_files.parse_any(file) for file in files])
    verdicts = dbops_verdicts(json.loads(lint_report.json(report))["findings"])
    wrong = {case.id: judged(case, verdicts) for case in chosen
             if judged(case, verdicts) != case.verdict}
    known = {case.id: "safe" if case.verdict == "hazard" else "hazard"
             for case in chosen if case.known_miss}
    assert wrong == known
