"""Who holds which connection: a cheap record per checkout (since when, the caller's code
object and line, thread or task), the scan that reports a connection held past the leak
threshold once, and the holders an exhaustion error lists.

A checkout costs one tuple: the site is read from the caller's frame (no stack capture); the
holder's full stack is taken only when a leak is reported: the holding thread's current frames
(sys._current_frames), or the holding task's stack.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any, NamedTuple

from dbops.pool.errors import Holder

logger = logging.getLogger("dbops.pool")

Held = tuple[float, CodeType | None, int, int, bool, "asyncio.Task[Any] | None"]
"""One checkout: (since (perf_counter), caller's code, line, thread ident, leak_check, task)."""


class Site(NamedTuple):
    """Where a call was made, read from the caller's frame when it made the call: an asyncio
    call may run later in another task (wait_for, gather), whose frames are asyncio's."""

    f_code: CodeType
    f_lineno: int


def site_of(frame: FrameType) -> Site:
    return Site(frame.f_code, frame.f_lineno)


def held(since: float, frame: FrameType | Site | None, leak_check: bool,
         task: asyncio.Task[Any] | None = None) -> Held:
    """The record of a checkout made by the code running in `frame`."""
    if frame is None:
        return (since, None, 0, threading.get_ident(), leak_check, task)
    return (since, frame.f_code, frame.f_lineno, threading.get_ident(), leak_check, task)


def holder(node: str, record: Held, now: float,
           threads: dict[int, threading.Thread] | None = None) -> Holder:
    since, code, line, thread_id, _, task = record
    if task is not None:
        who = f"task {task.get_name()!r}"
    else:
        thread = (threads if threads is not None else _threads()).get(thread_id)
        who = f"thread {thread.name!r}" if thread else f"thread {thread_id} (finished)"
    return Holder(
        node=node,
        file=display_file(code.co_filename) if code else "<unknown>",
        line=line,
        function=code.co_name if code else "<unknown>",
        holder=who,
        held_for=now - since,
    )


@dataclass(frozen=True)
class LeakReport:
    """A connection held longer than the leak threshold, and by whom.

    `stack` is the holder's stack when the leak was reported (most recent call last): where the
    holder is now, which usually explains the leak; empty when the holder has finished.
    """

    holder: Holder
    threshold: float
    stack: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        h = self.holder
        text = (
            f"connection leak: a connection to {h.node} has been held for {h.held_for:.2f}s "
            f"(leak_detection_threshold {self.threshold:.2f}s) by {h.holder}, "
            f"checked out at {h.site}"
        )
        if self.stack:
            return text + "\nholder's stack now:\n" + "".join(self.stack).rstrip("\n")
        return text + " (the holder has finished without returning it)"


LeakCallback = Callable[[LeakReport], None]


def display_file(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    cwd = os.getcwd() + os.sep
    return path[len(cwd):] if path.startswith(cwd) else path


def _threads() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate() if t.ident is not None}


def _stack_of(record: Held) -> tuple[str, ...]:
    task = record[5]
    if task is not None:
        if task.done():
            return ()
        summary = traceback.StackSummary.extract((f, f.f_lineno) for f in task.get_stack())
        return tuple(summary.format())
    frame = sys._current_frames().get(record[3])
    return tuple(traceback.format_stack(frame)) if frame is not None else ()


def overdue(
    records: Iterable[tuple[int, Held]], reported: set[int], now: float, threshold: float
) -> list[tuple[int, Held]]:
    """The checkouts held past `threshold` and not reported yet; their ids join `reported`, so
    each leak is reported once. Cheap: the owner calls it under its lock."""
    due = [
        (conn_id, record)
        for conn_id, record in records
        if record[4] and now - record[0] >= threshold and conn_id not in reported
    ]
    reported.update(conn_id for conn_id, _ in due)
    return due


def leak_reports(
    node: str, due: Iterable[tuple[int, Held]], now: float, threshold: float
) -> list[LeakReport]:
    """Reports (with the holders' stacks) for overdue checkouts; done outside any pool lock."""
    threads = _threads()
    return [
        LeakReport(holder(node, record, now, threads), threshold, _stack_of(record))
        for _, record in due
    ]


def deliver(report: LeakReport, callbacks: Iterable[LeakCallback]) -> None:
    """Log a leak and pass it to every callback; a failing callback is logged, never raised."""
    logger.warning("%s", report)
    for callback in callbacks:
        try:
            callback(report)
        except Exception:  # a broken alert hook must not stop the pool's maintenance
            logger.exception("leak callback %r failed", callback)


def returned_after_report(node: str, record: Held, now: float) -> None:
    """A connection reported as leaked came back: say so, so the report is not left dangling."""
    h = holder(node, record, now)
    logger.info(
        "connection to %s reported as leaked was returned after %.2fs (checked out at %s)",
        node, h.held_for, h.site,
    )
