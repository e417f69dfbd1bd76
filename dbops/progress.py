"""Progress on long work: the steps apply, migrate, backup and restore go through, reported
live on a terminal and as one line at each step's start and end otherwise.

The code doing the work marks its steps (`with progress.step("pg_dump of app", watch=path)`);
the command line chooses how they are shown (`with progress.reporting(sys.stderr)`). Outside a
`reporting` block steps are silent, so the Python API prints nothing. The reporter is one per
process rather than per context: pyinfra runs operations in greenlets, which do not inherit
context variables.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import ProgressColumn, TaskID


@dataclass(frozen=True)
class Step:
    """One piece of long work: what it is, and the file or folder it writes (whose size
    is shown while it grows, e.g. a dump)."""

    name: str
    watch: Path | None = None


class Reporter(Protocol):
    def started(self, step: Step) -> None: ...

    def finished(self, step: Step, seconds: float, ok: bool) -> None: ...


class _Silent:
    def started(self, step: Step) -> None:
        pass

    def finished(self, step: Step, seconds: float, ok: bool) -> None:
        pass


class Lines:
    """One line when a step starts and one when it ends, with its duration (no terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def started(self, step: Step) -> None:
        self._write(f"started  {step.name}")

    def finished(self, step: Step, seconds: float, ok: bool) -> None:
        size = f", {_size(written)}" if (written := bytes_in(step.watch)) else ""
        verb = "finished" if ok else "failed  "
        self._write(f"{verb} {step.name} in {duration(seconds)}{size}")

    def _write(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Live:
    """rich's live view: a row per step with a spinner, its name, the elapsed time and, for a
    step writing a file, the bytes written so far."""

    def __init__(self, stream: TextIO) -> None:
        # lazy: rich costs ~40 ms of start-up, and only a terminal needs it
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(SpinnerColumn(finished_text="[green]done[/]"),
                             TextColumn("{task.description}"), TimeElapsedColumn(),
                             _written_column(), console=Console(file=stream),
                             refresh_per_second=4)
        self._tasks: dict[int, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Live:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def started(self, step: Step) -> None:
        with self._lock:
            self._tasks[id(step)] = self._bar.add_task(step.name, total=None, watch=step.watch)

    def finished(self, step: Step, seconds: float, ok: bool) -> None:
        with self._lock:
            task = self._tasks.pop(id(step))
        if not ok:
            self._bar.update(task, description=f"[red]failed[/] {step.name}")
        self._bar.update(task, total=1, completed=1)
        self._bar.stop_task(task)


def _written_column() -> ProgressColumn:
    """A column with the size of the step's file or folder, read at each refresh."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class Written(ProgressColumn):
        def render(self, task: Task) -> Text:
            written = bytes_in(task.fields.get("watch"))
            return Text(_size(written) if written else "", style="progress.download")

    return Written()


_reporter: Reporter = _Silent()


@contextmanager
def step(name: str, *, watch: Path | None = None) -> Iterator[None]:
    """Report `name` as started, and as finished (or failed) with its duration when the block
    ends."""
    current = Step(name, watch)
    reporter = _reporter
    clock = time.monotonic()
    reporter.started(current)
    ok = False
    try:
        yield
        ok = True
    finally:
        reporter.finished(current, time.monotonic() - clock, ok)


@contextmanager
def reporting(stream: TextIO, *, live: bool | None = None) -> Iterator[None]:
    """Show the steps run inside the block on `stream`: live when it is a terminal (or `live`
    says so), as lines otherwise."""
    global _reporter
    previous = _reporter
    as_live = stream.isatty() if live is None else live
    try:
        if as_live:
            with Live(stream) as view:
                _reporter = view
                yield
        else:
            _reporter = Lines(stream)
            yield
    finally:
        _reporter = previous


def bytes_in(path: Path | None) -> int:
    """The size of a file, or of the files in a folder (a directory-format dump); 0 when it
    does not exist (yet, or any more)."""
    if path is None:
        return 0
    try:
        if not path.is_dir():
            return path.stat().st_size
        return sum(entry.stat().st_size for entry in os.scandir(path) if entry.is_file())
    except OSError:
        return 0


def duration(seconds: float) -> str:
    """`0.42s`, `6.1s`, `2m05s`."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
