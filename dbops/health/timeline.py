"""Health history: the last reports in memory, and optionally on disk (one JSON line per cycle
under .dbops/health/<environment>.jsonl) so trends survive restarts.

On disk a report keeps its figures (values, thresholds, statuses, counters, server identity) but
not its messages: a day of cycles stays a few megabytes.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from dbops.config.model import Plan
from dbops.health.probe import Counters, ServerIdentity
from dbops.health.result import STATUSES, CheckResult, HealthReport

LOG = logging.getLogger("dbops.health.timeline")


def history_path(plan: Plan) -> Path:
    return plan.root / ".dbops" / "health" / f"{plan.environment}.jsonl"


def _compact(report: HealthReport) -> dict[str, Any]:
    ident = report.identity
    c = report.counters
    return {
        "at": report.checked_at.isoformat(), "d": round(report.duration, 6), "q": report.queries,
        "e": report.error,
        "id": [ident.system_id, ident.timeline, ident.in_recovery] if ident else None,
        "c": [c.commits, c.rollbacks, c.deadlocks, c.blocks_hit, c.blocks_read] if c else None,
        "r": [[r.name, r.value, r.threshold, r.status] for r in report.results],
    }


def _expand(line: dict[str, Any], environment: str) -> HealthReport:
    ident, c = line.get("id"), line.get("c")
    return HealthReport(
        environment=environment,
        checked_at=datetime.fromisoformat(line["at"]),
        duration=float(line["d"]),
        queries=int(line["q"]),
        results=tuple(CheckResult(name, value, threshold, status, "")
                      for name, value, threshold, status in line["r"] if status in STATUSES),
        identity=ServerIdentity(str(ident[0]), ident[1], bool(ident[2])) if ident else None,
        counters=Counters(*(int(x) for x in c)) if c else None,
        error=line.get("e"),
    )


class HealthHistory:
    """Reports, oldest first. Not thread-safe (the monitor holds its lock)."""

    def __init__(self, environment: str, path: Path | None = None, *, size: int = 2880,
                 keep_on_disk: int = 20_000) -> None:
        self.environment = environment
        self.path = path
        self.keep_on_disk = keep_on_disk
        self._reports: deque[HealthReport] = deque(maxlen=size)
        self._lines = 0
        if path is not None:
            self._load(path)

    def add(self, report: HealthReport) -> None:
        self._reports.append(report)
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(_compact(report), separators=(",", ":")) + "\n")
            self._lines += 1
            if self._lines > self.keep_on_disk * 1.2:
                self._compact_file(self.path)
        except OSError as exc:
            LOG.warning("cannot write health history to %s (%s); keeping it in memory only",
                        self.path, exc.strerror or exc)
            self.path = None

    def reports(self, limit: int | None = None) -> list[HealthReport]:
        items = list(self._reports)
        return items if limit is None else items[-limit:] if limit > 0 else []

    def latest(self) -> HealthReport | None:
        return self._reports[-1] if self._reports else None

    def _load(self, path: Path) -> None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            LOG.warning("cannot read health history %s (%s)", path, exc.strerror or exc)
            return
        self._lines = len(lines)
        for text in lines[-(self._reports.maxlen or len(lines)):]:
            try:
                self._reports.append(_expand(json.loads(text), self.environment))
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # a line cut short by a crash: skip it, keep the rest

    def _compact_file(self, path: Path) -> None:
        """Keep the newest `keep_on_disk` lines; written aside and renamed, so a crash keeps one
        whole file or the other."""
        lines = path.read_text(encoding="utf-8").splitlines()[-self.keep_on_disk:]
        spare = path.with_suffix(".jsonl.tmp")
        spare.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        os.replace(spare, path)
        self._lines = len(lines)
