"""Who holds which connection: a cheap record per checkout (site, holder, since), the scan that
reports a connection held past the leak threshold once, and the holders an exhaustion error lists.

The checkout site is read from the caller's frame (three attribute reads, no stack capture), so
leak tracking costs about a microsecond per checkout; the holder's full stack is taken only when
a leak is reported: the holding thread's current frames, or the holding task's stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from dbops.pool.errors import Holder

logger = logging.getLogger("dbops.pool")

_PACKAGE_DIR = str(Path(__file__).parent)
_INTERNAL_FILES = frozenset(
    {contextlib.__file__, *(str(p) for p in Path(_PACKAGE_DIR).glob("*.py"))}
)


class Checkout:
    """One checked-out connection: where, by whom, since when (perf_counter seconds)."""

    __slots__ = (
        "conn_id", "file", "function", "leak_check", "line", "node", "reported", "since", "task",
        "thread_id",
    )  # fmt: skip

    def __init__(
        self,
        conn_id: int,
        node: str,
        since: float,
        frame: FrameType | None,
        *,
        leak_check: bool,
        task: asyncio.Task[object] | None = None,
    ) -> None:
        while frame is not None and frame.f_code.co_filename in _INTERNAL_FILES:
            frame = frame.f_back
        self.conn_id, self.node, self.since = conn_id, node, since
        if frame is None:
            self.file, self.line, self.function = "<unknown>", 0, "<unknown>"
        else:
            self.file, self.line = frame.f_code.co_filename, frame.f_lineno
            self.function = frame.f_code.co_name
        self.thread_id = threading.get_ident()
        self.task = task
        self.leak_check = leak_check
        self.reported = False

    def holder_name(self, threads: dict[int, threading.Thread] | None = None) -> str:
        if self.task is not None:
            return f"task {self.task.get_name()!r}"
        threads = threads if threads is not None else _threads()
        thread = threads.get(self.thread_id)
        if thread is None:
            return f"thread {self.thread_id} (finished)"
        return f"thread {thread.name!r}"

    def holder(self, now: float, threads: dict[int, threading.Thread] | None = None) -> Holder:
        return Holder(
            node=self.node,
            file=display_file(self.file),
            line=self.line,
            function=self.function,
            holder=self.holder_name(threads),
            held_for=now - self.since,
        )


@dataclass(frozen=True)
class LeakReport:
    """A connection held longer than the leak threshold, and by whom.

    `stack` is the holder's stack at the time of the report (most recent call last): where the
    holder is now, which is usually what explains the leak; empty when the holder has finished.
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
            text += "\nholder's stack now:\n" + "".join(self.stack).rstrip("\n")
        else:
            text += " (the holder has finished without returning it)"
        return text


LeakCallback = Callable[[LeakReport], None]


def display_file(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path
    except ValueError:
        return path


def _threads() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate() if t.ident is not None}


def _stack_of(checkout: Checkout) -> tuple[str, ...]:
    if checkout.task is not None:
        if checkout.task.done():
            return ()
        frames = checkout.task.get_stack()
        return tuple(traceback.format_list(traceback.StackSummary.extract(
            (f, f.f_lineno) for f in frames
        )))
    frame = sys._current_frames().get(checkout.thread_id)
    if frame is None:
        return ()
    return tuple(traceback.format_stack(frame))


def find_leaks(
    checkouts: Iterable[Checkout], now: float, threshold: float
) -> list[LeakReport]:
    """Reports for the checkouts held past `threshold` and not reported yet; marks them reported."""
    reports = []
    threads: dict[int, threading.Thread] | None = None
    for checkout in checkouts:
        if checkout.reported or not checkout.leak_check or now - checkout.since < threshold:
            continue
        checkout.reported = True
        threads = threads if threads is not None else _threads()
        reports.append(LeakReport(checkout.holder(now, threads), threshold, _stack_of(checkout)))
    return reports


def deliver(report: LeakReport, callbacks: Iterable[LeakCallback]) -> None:
    """Log a leak and pass it to every callback; a failing callback is logged, never raised."""
    logger.warning("%s", report)
    for callback in callbacks:
        try:
            callback(report)
        except Exception:  # a broken alert hook must not break the pool's maintenance
            logger.exception("leak callback %r failed", callback)


def returned_after_report(checkout: Checkout, now: float) -> None:
    """A connection reported as leaked came back: say so, so the report is not left dangling."""
    logger.info(
        "connection to %s reported as leaked was returned after %.2fs (checked out at %s:%d)",
        checkout.node, now - checkout.since, display_file(checkout.file), checkout.line,
    )
