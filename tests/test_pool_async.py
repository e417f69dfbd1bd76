"""AsyncPoolManager: the same surface as PoolManager, on the same store, awaited."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import psycopg
import pytest
from harness import TestDatabase
from pool_support import FAST, db_endpoint, endpoint, wait_until

from dbops.local import Cluster
from dbops.pool import AsyncPoolManager, LeakReport, PoolClosed, PoolExhausted

HERE = "tests/test_pool_async.py"


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if marker in line and "_line_of" not in line:
                return n
    raise AssertionError(marker)


def _replicated(replica: Cluster, db: TestDatabase) -> None:
    def reachable() -> bool:
        try:
            psycopg.connect(host=replica.host, port=replica.port, user="postgres",
                            dbname=db.name).close()
        except psycopg.OperationalError:
            return False
        return True

    wait_until(reachable, what=f"{db.name} on the replica")


def test_async_seed_example_routing_and_read_your_writes(
    database: TestDatabase, pg_replica: Cluster
) -> None:
    _replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")

    async def main() -> None:
        async with AsyncPoolManager(db_endpoint(database), [replica], min_size=1, max_size=3,
                                    **FAST) as pool:
            await pool.query("CREATE TABLE tasks (id int PRIMARY KEY, status text)")
            await pool.query("CREATE TABLE task_logs (task_id int, level text, message text)")
            await pool.query("INSERT INTO tasks VALUES (1, 'queued')")

            async def start(conn: Any) -> str:
                await conn.execute("UPDATE tasks SET status = %s WHERE id = %s", ("running", 1))
                await conn.execute(
                    "INSERT INTO task_logs (task_id, level, message) VALUES (%s, %s, %s)",
                    (1, "info", "Task started"),
                )
                return "started"

            assert await pool.transaction(start) == "started"
            # Read-your-writes: this task's read sees its own commit, wherever it runs.
            assert await pool.query("SELECT status FROM tasks", read_only=True) == [("running",)]
            assert await pool.query("SELECT pg_is_in_recovery()") == [(False,)]

            async def other_reader() -> Any:
                return await pool.query("SELECT pg_is_in_recovery()", read_only=True)

            # A task started from this one inherits its position (its context); one started in
            # a fresh context wrote nothing, so the replica serves it.
            fresh = asyncio.create_task(other_reader(), context=contextvars.Context())
            assert await fresh == [(True,)]
            async with pool.connection("read", after_lsn="0/0") as conn:  # any position will do
                cur = await conn.execute("SELECT pg_is_in_recovery()")
                assert await cur.fetchone() == (True,)
            m = pool.get_performance_metrics()
            assert m.queries >= 8 and m.errors == 0
            stats = pool.get_pool_stats()
            assert stats["r1"].reads_routed >= 2
            assert (await pool.get_health_status()).status == "healthy"
        with pytest.raises(PoolClosed):
            await pool.query("SELECT 1")

    asyncio.run(main())


def test_async_transaction_retries_deadlocks(database: TestDatabase) -> None:
    async def main() -> list[int]:
        async with AsyncPoolManager(db_endpoint(database), min_size=2, max_size=2,
                                    **FAST) as pool:
            await pool.query("CREATE TABLE acc (id int PRIMARY KEY, n int)")
            await pool.query("INSERT INTO acc VALUES (1, 0), (2, 0)")
            attempts = [0, 0]
            both = asyncio.Barrier(2)

            async def run(n: int) -> None:
                first, second = (1, 2) if n == 0 else (2, 1)

                async def body(conn: Any) -> None:
                    attempts[n] += 1
                    await conn.execute("SET LOCAL deadlock_timeout = '50ms'")
                    await conn.execute("UPDATE acc SET n = n + 1 WHERE id = %s", (first,))
                    if attempts[n] == 1:
                        await both.wait()
                    await conn.execute("UPDATE acc SET n = n + 1 WHERE id = %s", (second,))

                await pool.transaction(body, retries=3)

            await asyncio.gather(run(0), run(1))
            assert await pool.query("SELECT n FROM acc ORDER BY id") == [(2,), (2,)]
            return attempts

    assert sorted(asyncio.run(main())) == [1, 2]


def test_async_exhaustion_and_leaks_name_the_holding_task(
    database: TestDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    reports: list[LeakReport] = []

    async def main() -> None:
        settings = {**FAST, "leak_detection_threshold": 0.1}
        async with AsyncPoolManager(db_endpoint(database), min_size=1, max_size=1,
                                    on_leak=reports.append, **settings) as pool:
            release = asyncio.Event()

            async def holder() -> None:
                async with pool.connection():  # async-holder
                    await release.wait()

            task = asyncio.create_task(holder(), name="holder-task")
            await asyncio.sleep(0.3)
            with pytest.raises(PoolExhausted) as caught:
                async with pool.connection(timeout=0.1):
                    pass
            message = str(caught.value)
            assert "pool size 1 (max 1), 1 in use" in message
            site = f"{HERE}:{_line_of('# async-holder')} in holder"
            assert f"by task 'holder-task' at {site}" in message
            assert len(reports) == 1
            assert reports[0].holder.holder == "task 'holder-task'"
            assert reports[0].holder.site == site
            assert any("await release.wait()" in line for line in reports[0].stack)
            release.set()
            await task
            assert pool.get_pool_stats()["primary"].leaks == 1

    caplog.set_level(logging.INFO, logger="dbops.pool")
    asyncio.run(main())
    assert "reported as leaked was returned after" in caplog.text


def _pause(replica: Cluster, db: TestDatabase, pause: bool) -> None:
    with psycopg.connect(host=replica.host, port=replica.port, user="postgres", dbname=db.name,
                         autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if pause else "SELECT pg_wal_replay_resume()")


def test_async_writes_through_wait_for_gather_and_task_groups_are_read_back(
    database: TestDatabase, pg_replica: Cluster
) -> None:
    _replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")

    async def main() -> None:
        async with AsyncPoolManager(db_endpoint(database), [replica], min_size=1, max_size=3,
                                    **FAST) as pool:
            await pool.query("CREATE TABLE counter (n int)")
            await pool.query("INSERT INTO counter VALUES (0)")
            lsn = await pool.last_write_lsn()
            with psycopg.connect(host=pg_replica.host, port=pg_replica.port, user="postgres",
                                 dbname=database.name, autocommit=True) as conn:
                wait_until(lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                                (lsn,)).fetchone() == (True,), what="replay")
            read = "SELECT n FROM counter"
            assert await pool.query(read, read_only=True) == [(0,)]
            _pause(pg_replica, database, True)
            try:
                await asyncio.wait_for(pool.query("UPDATE counter SET n = 1"), 5)
                assert await pool.query(read, read_only=True) == [(1,)]
                await asyncio.gather(pool.query("UPDATE counter SET n = 2"))
                assert await pool.query(read, read_only=True) == [(2,)]
                async with asyncio.TaskGroup() as group:
                    group.create_task(pool.query("UPDATE counter SET n = 3"))
                assert await pool.query(read, read_only=True) == [(3,)]

                async def in_a_block() -> None:
                    async with pool.transaction() as conn:
                        await conn.execute("UPDATE counter SET n = 4")

                await asyncio.wait_for(in_a_block(), 5)
                assert await pool.query(read, read_only=True) == [(4,)]
            finally:
                _pause(pg_replica, database, False)

    asyncio.run(main())


def test_async_cancelled_checkouts_return_their_connections(
    database: TestDatabase, pg_replica: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads and writes cancelled by asyncio.wait_for at every point of the checkout (routing,
    the read-your-writes check on the replica): no connection stays held; and a leak report of
    a call made through wait_for names the caller's line."""
    _replicated(pg_replica, database)
    replica = endpoint(pg_replica, database.name, "r1")
    reports: list[LeakReport] = []

    async def main() -> None:
        settings = {**FAST, "leak_detection_threshold": 0.15}
        async with AsyncPoolManager(db_endpoint(database), [replica], min_size=1, max_size=2,
                                    on_leak=reports.append, **settings) as pool:
            await pool.query("CREATE TABLE t (n int)")
            timeouts = 0
            for i in range(60):
                await pool.query("INSERT INTO t VALUES (%s)", (i,))
                for _ in range(2):  # the first read resolves the position, the next checks it
                    try:
                        await asyncio.wait_for(
                            pool.query("SELECT count(*) FROM t", read_only=True), 0.0005 * (i % 6))
                    except TimeoutError:
                        timeouts += 1
            assert timeouts > 10
            await asyncio.sleep(0.2)  # returns finishing in their own tasks
            stats = pool.get_pool_stats()
            assert {node: s.in_use for node, s in stats.items()} == {"primary": 0, "r1": 0}
            assert await pool.query("SELECT count(*) FROM t", read_only=True) == [(60,)]

            await asyncio.wait_for(pool.query("SELECT pg_sleep(0.3)"), 5)  # async-wait-for
            site = f"{HERE}:{_line_of('# async-wait-for')} in main"
            assert [r.holder.site for r in reports] == [site]

    asyncio.run(main())
