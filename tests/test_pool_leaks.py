"""Leak detection and exhaustion errors that name the holder: file and line, thread, hold time."""

from __future__ import annotations

import gc
import logging
import threading
import time

import psycopg
import pytest
from harness import TestDatabase
from pool_support import FAST, db_endpoint, wait_until

from dbops.pool import LeakReport, PoolExhausted, PoolManager

HERE = "tests/test_pool_leaks.py"


def _line_of(marker: str) -> int:
    """The line of this file holding `marker` (a comment on the checkout under test)."""
    with open(__file__, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if marker in line and "_line_of" not in line:
                return n
    raise AssertionError(marker)


def test_a_held_connection_is_reported_once_with_its_site_and_stack(
    database: TestDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dbops.pool")
    reports: list[LeakReport] = []
    settings = {**FAST, "leak_detection_threshold": 0.1}
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, on_leak=reports.append,
                     **settings) as pool:
        with pool.connection() as conn:  # leak-site-1
            conn.execute("SELECT 1")
            time.sleep(0.4)  # holder-is-here
        assert len(reports) == 1
        report = reports[0]
        h = report.holder
        assert (h.file, h.line, h.function) == (
            HERE, _line_of("# leak-site-1"), "test_a_held_connection_is_reported_once_with_its_site_and_stack"
        )
        assert h.holder == "thread 'MainThread'" and h.node == "primary"
        assert 0.1 <= h.held_for < 0.4
        assert "time.sleep(0.4)  # holder-is-here" in "".join(report.stack)
        text = str(report)
        assert text.startswith(
            f"connection leak: a connection to primary has been held for {h.held_for:.2f}s "
            f"(leak_detection_threshold 0.10s) by thread 'MainThread', checked out at {HERE}:"
            f"{_line_of('# leak-site-1')} in test_a_held_connection"
        )
        assert pool.get_pool_stats()["primary"].leaks == 1
        assert pool.get_performance_metrics().leaks == 1
        assert "reported as leaked was returned after" in caplog.text
        assert pool.get_health_status().open_leaks == 0


def test_long_work_can_opt_out_and_query_sites_are_the_callers(database: TestDatabase) -> None:
    reports: list[LeakReport] = []
    settings = {**FAST, "leak_detection_threshold": 0.1}
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, on_leak=reports.append,
                     **settings) as pool:
        with pool.connection(leak_detection=False) as conn:
            conn.execute("SELECT pg_sleep(0.3)")
        assert reports == []
        pool.query("SELECT pg_sleep(0.3)")  # leak-site-2
        assert [(r.holder.file, r.holder.line) for r in reports] == [
            (HERE, _line_of("# leak-site-2"))
        ]


def test_a_leak_open_now_degrades_health(database: TestDatabase) -> None:
    settings = {**FAST, "leak_detection_threshold": 0.05}
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, **settings) as pool:
        done = threading.Event()

        def forgetful_worker() -> None:
            pool.connection().__enter__()  # leak-site-3: never returned
            done.set()

        worker = threading.Thread(target=forgetful_worker, name="forgetful")
        worker.start()
        worker.join()
        status = wait_until(
            lambda: (s := pool.get_health_status()).open_leaks == 1 and s, what="a leak"
        )
        assert (status.level, status.status) == ("warning", "degraded")
        assert "1 connection(s) held past leak_detection_threshold" in status.message


def test_exhaustion_names_every_holder(database: TestDatabase) -> None:
    with PoolManager(db_endpoint(database), min_size=1, max_size=2, **FAST) as pool:
        first = pool.connection()
        first.__enter__()  # holder-a
        ready, release = threading.Event(), threading.Event()

        def worker() -> None:
            with pool.connection():  # holder-b
                ready.set()
                release.wait(timeout=5)

        thread = threading.Thread(target=worker, name="worker-b")
        thread.start()
        ready.wait(timeout=5)
        started = time.monotonic()
        with pytest.raises(PoolExhausted) as caught, pool.connection(timeout=0.2):
            pass
        assert 0.2 <= time.monotonic() - started < 1.0
        err = caught.value
        assert (err.node, err.size, err.max_size, err.in_use, err.waiting) == ("primary", 2, 2, 2, 0)
        message = str(err)
        assert message.startswith(
            "no connection to primary within 0.20s: pool size 2 (max 2), 2 in use, "
            "0 other callers waiting; holders: [1] held "
        )
        assert f"by thread 'MainThread' at {HERE}:{_line_of('# holder-a')} in test_exhaustion" in message
        assert f"by thread 'worker-b' at {HERE}:{_line_of('# holder-b')} in worker" in message
        assert [h.holder for h in err.holders] == ["thread 'MainThread'", "thread 'worker-b'"]
        release.set()
        thread.join()
        first.__exit__(None, None, None)
        assert pool.get_pool_stats()["primary"].acquire_timeouts == 1
        assert pool.query("SELECT 1") == [(1,)]


def test_a_dropped_connection_and_one_held_past_leak_reclaim_after_are_reclaimed(
    database: TestDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbops.pool")
    with PoolManager(db_endpoint(database), min_size=1, max_size=1, **FAST) as pool:

        def forget() -> None:
            pool.connection().__enter__().execute("SELECT 1")  # dropped, never returned

        forget()
        gc.collect()
        assert pool.query("SELECT 1", timeout=1.0) == [(1,)]  # the slot came back
        assert pool.get_pool_stats()["primary"].reclaimed == 1
        assert "its holder dropped it without returning it" in caplog.text

    settings = {**FAST, "leak_reclaim_after": 0.2}
    with PoolManager(db_endpoint(database), min_size=1, max_size=1, **settings) as pool:
        checkout = pool.connection()
        kept = checkout.__enter__()  # held and kept, past leak_reclaim_after
        pid = kept.info.backend_pid
        started = time.monotonic()
        assert pool.query("SELECT 1", timeout=2.0) == [(1,)]
        assert 0.2 <= time.monotonic() - started < 1.5
        with pytest.raises(psycopg.OperationalError):
            kept.execute("SELECT 1")
        checkout.__exit__(None, None, None)  # given back late: closed, nothing counted twice
        stats = pool.get_pool_stats()["primary"]
        assert (stats.reclaimed, stats.size, stats.in_use) == (1, 1, 0)
        with database.connect() as conn:
            wait_until(lambda: conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                            (pid,)).fetchone() == (0,), what="the session gone")
        assert "leak_reclaim_after 0.20s" in caplog.text
