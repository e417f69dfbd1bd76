"""The manager core's drivers with plain values (no database): both shells run the same core
generator and get the same result, the same error at the same step, the same clean-up."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest

from dbops.pool.base import drive, drive_async


def _lend_and_run(log: list[str], take: Any, work: Any, give_back: Any) -> Generator[Any, Any, str]:
    """Shaped like a core call: take a connection, run on it, give it back whatever happens."""
    conn = yield take, ()
    try:
        result = yield work, (conn,)
    except ValueError as exc:
        log.append(f"failed: {exc}")
        raise
    finally:
        yield give_back, (conn,)
    return f"{result} on {conn}"


def test_both_drivers_send_results_and_throw_errors_back_at_their_step() -> None:
    def calls(log: list[str], fail: bool) -> tuple[Any, Any, Any]:
        def take() -> str:
            log.append("take")
            return "c1"

        def work(conn: str) -> str:
            log.append(f"work {conn}")
            if fail:
                raise ValueError("statement failed")
            return "rows"

        def give_back(conn: str) -> None:
            log.append(f"give back {conn}")

        return take, work, give_back

    def awaited(fn: Any) -> Any:
        async def call(*args: Any) -> Any:
            return fn(*args)
        return call

    for fail in (False, True):
        thread_log: list[str] = []
        task_log: list[str] = []
        plain = calls(thread_log, fail)
        coroutines = tuple(awaited(fn) for fn in calls(task_log, fail))
        if fail:
            with pytest.raises(ValueError, match="statement failed"):
                drive(_lend_and_run(thread_log, *plain))
            with pytest.raises(ValueError, match="statement failed"):
                asyncio.run(drive_async(_lend_and_run(task_log, *coroutines)))
        else:
            assert drive(_lend_and_run(thread_log, *plain)) == "rows on c1"
            assert asyncio.run(drive_async(_lend_and_run(task_log, *coroutines))) == "rows on c1"
        expected = ["take", "work c1"] + (["failed: statement failed"] if fail else []) + [
            "give back c1"]
        assert thread_log == task_log == expected


def test_a_cancelled_step_is_thrown_into_the_core_which_gives_back_what_it_holds() -> None:
    log: list[str] = []

    def take() -> str:
        return "c1"

    async def work(conn: str) -> str:
        await asyncio.sleep(10)
        return "never"

    async def give_back(conn: str) -> None:
        log.append(f"give back {conn}")

    async def main() -> None:
        task = asyncio.create_task(drive_async(_lend_and_run(log, take, work, give_back)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert log == ["give back c1"]
