"""A DriftReport (`dbops drift`) as text for a terminal and as JSON for machines. Pure."""

from __future__ import annotations

import dataclasses
import json as jsonlib

from dbops.drift import DriftReport, Kind, Verdict, describe

FORMAT_VERSION = 1
_VERDICTS: dict[Verdict, str] = {"in sync": "In sync.",
                                 "out-of-band": "Out-of-band drift found.",
                                 "pending only": "Pending configuration only."}
_TITLES: dict[Kind, str] = {"out-of-band": "Out-of-band drift (the live database changed)",
                            "pending": "Pending configuration (the plan changed)"}


def lines(report: DriftReport) -> list[str]:
    """The report line by line: the baseline, the items by kind (ignored ones too, marked),
    where backups were judged from, and the verdict."""
    since = f"last applied {report.baseline}" if report.baseline else "dbops never applied here"
    out = [f"drift for {report.environment} ({report.database}), {since}"]
    for kind, title in _TITLES.items():
        items = [i for i in report.items if i.kind == kind]
        if items:
            out.append(f"{title}:")
            out += [f"  {describe(i)}" for i in items]
    if report.backup_source:
        out.append(f"Backups judged from {report.backup_source}.")
    out.append(_VERDICTS[report.verdict])
    return out


def text(report: DriftReport) -> str:
    return "\n".join(lines(report))


def json(report: DriftReport, exit_code: int) -> str:
    """The report as JSON, with the exit code the command chose for it (dbops.cli.exits)."""
    return jsonlib.dumps({"format_version": FORMAT_VERSION, "exit_code": exit_code,
                          **dataclasses.asdict(report)}, indent=2, default=str)
