"""The transaction helpers: reads never queue behind a writer on SQLite, after-commit work runs
only after a successful commit, and a transaction PostgreSQL aborts to break a deadlock runs
again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext import db
from alttext.accounts.models import Account
from alttext.accounts.service import create_account
from alttext.db import (
    after_commit,
    create_engine,
    in_transaction,
    session_factory,
    transaction,
)


async def test_a_read_does_not_wait_behind_a_long_write(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await create_account(session, "reader@example.com")
    writing = asyncio.Event()

    async def slow_writer() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "writer@example.com")
            writing.set()
            await asyncio.sleep(1.5)  # holds the write lock (SQLite) / row locks (PostgreSQL)

    writer = asyncio.create_task(slow_writer())
    await writing.wait()
    started = time.perf_counter()
    async with sessions() as session:
        emails = set((await session.execute(select(Account.email))).scalars())
    waited = time.perf_counter() - started
    await writer
    await engine.dispose()
    # The read sees the committed snapshot, without the writer's uncommitted row.
    assert emails == {"reader@example.com"}
    # Not a timing target: a read that queued behind the writer would wait its full 1.5 s.
    assert waited < 1.0


async def test_after_commit_runs_after_the_commit_and_never_after_a_rollback(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    seen: list[str] = []

    async def check_committed() -> None:
        # Another connection sees the row: the callback came after the commit.
        async with sessions() as other:
            count = await other.scalar(text("SELECT count(*) FROM accounts"))
        seen.append(f"async:{count}")

    async with transaction(sessions) as session:
        await create_account(session, "a@example.com")
        after_commit(session, check_committed)
        after_commit(session, lambda: seen.append("sync"))
        assert seen == []
    assert seen == ["async:1", "sync"]

    async def failing_unit() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "b@example.com")
            after_commit(session, lambda: seen.append("rolled back"))
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await failing_unit()
    assert seen == ["async:1", "sync"]
    await engine.dispose()


def test_sqlite_reads_begin_deferred_and_writes_immediate(tmp_path: Path) -> None:
    statements: list[str] = []

    async def run() -> None:
        from alttext.migrate import upgrade

        url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)

        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            statements.append(statement)

        sessions = session_factory(engine)
        async with sessions() as session:
            await session.execute(select(Account.id))
        async with transaction(sessions) as session:
            await session.execute(select(Account.id))
        await engine.dispose()

    asyncio.run(run())
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN", "BEGIN IMMEDIATE"]


async def test_sqlite_writers_take_turns_in_the_order_they_asked(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL writers lock rows, not the database")
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    order: list[int] = []
    holding = asyncio.Event()
    go_on = asyncio.Event()

    async def first() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "first@example.com")
            holding.set()
            await go_on.wait()

    async def writer(i: int) -> None:
        async with transaction(sessions) as session:
            order.append(i)
            await create_account(session, f"w{i}@example.com")

    holder = asyncio.create_task(first())
    await holding.wait()
    writers = []
    for i in range(8):
        writers.append(asyncio.create_task(writer(i)))
        await asyncio.sleep(0.01)  # each is waiting for its turn before the next asks
    go_on.set()
    await asyncio.gather(holder, *writers)
    async with sessions() as session:
        count = await session.scalar(text("SELECT count(*) FROM accounts"))
    await engine.dispose()
    # First come, first served: none overtakes another in SQLite's busy-handler retries.
    assert order == list(range(8))
    assert count == 9


async def test_a_nested_transaction_does_not_wait_for_its_own_turn(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_WRITE_WAIT_S", 0.5)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with db._write_turn(sessions), db._write_turn(sessions):
        entered = True
    # The task's turn is over: another task gets one at once.
    async with transaction(sessions) as session:
        await create_account(session, "after@example.com")
    await engine.dispose()
    assert entered


async def test_waiting_inside_a_transaction_for_another_writer_fails_instead_of_hanging(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL writers of different rows do not wait for each other")
    monkeypatch.setattr(db, "SQLITE_WRITE_WAIT_S", 0.3)
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def other_writer() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "other@example.com")

    async def outer() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "outer@example.com")
            await asyncio.create_task(other_writer())

    with pytest.raises(OperationalError, match="database is locked"):
        await outer()
    # Both rolled back or never began; the turn was passed on.
    async with transaction(sessions) as session:
        await create_account(session, "later@example.com")
        emails = set((await session.execute(select(Account.email))).scalars())
    await engine.dispose()
    assert emails == {"later@example.com"}


async def test_after_commit_work_may_write_once_the_turn_is_passed_on(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_WRITE_WAIT_S", 2.0)
    engine = create_engine(database_url)
    sessions = session_factory(engine)

    async def follow_up() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "follow-up@example.com")

    async with transaction(sessions) as session:
        await create_account(session, "first@example.com")
        after_commit(session, follow_up)
    async with sessions() as session:
        emails = set((await session.execute(select(Account.email))).scalars())
    await engine.dispose()
    assert emails == {"first@example.com", "follow-up@example.com"}


async def test_postgresql_writers_do_not_take_turns(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite writers take turns")
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    holding = asyncio.Event()
    go_on = asyncio.Event()

    async def first() -> None:
        async with transaction(sessions) as session:
            await create_account(session, "first@example.com")
            holding.set()
            await go_on.wait()

    holder = asyncio.create_task(first())
    await holding.wait()
    # Another row's writer commits while the first transaction is still open.
    async with transaction(sessions) as session:
        await create_account(session, "second@example.com")
    go_on.set()
    await holder
    await engine.dispose()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "_RETRY_BASE_S", 0.001)


class _Aborted(Exception):
    """What the PostgreSQL driver raises, as far as the retry cares: a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _aborted(sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE …", {}, _Aborted(sqlstate))


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
@pytest.mark.usefixtures("quick_retries")
async def test_a_transaction_aborted_to_break_a_deadlock_runs_again_and_commits_once(
    sessions: async_sessionmaker[AsyncSession], sqlstate: str
) -> None:
    runs: list[int] = []

    async def work(session: AsyncSession) -> str:
        runs.append(len(runs))
        account = await create_account(session, f"run{len(runs)}@example.com")
        if len(runs) == 1:
            raise _aborted(sqlstate)
        return account.email

    email = await in_transaction(sessions, work)
    async with sessions() as session:
        emails = set((await session.execute(select(Account.email))).scalars())
    assert runs == [0, 1]
    # The aborted run's writes were rolled back; the second run's were committed.
    assert email == "run2@example.com"
    assert emails == {"run2@example.com"}


@pytest.mark.parametrize(
    ("sqlstate", "runs_expected"),
    [
        ("23505", 1),  # unique_violation: the content is wrong, not the timing; not run again
        ("40P01", db.RETRIES),  # aborted every time: given up after the retries
    ],
)
@pytest.mark.usefixtures("quick_retries")
async def test_a_transaction_that_keeps_failing_raises_with_nothing_written(
    sessions: async_sessionmaker[AsyncSession], sqlstate: str, runs_expected: int
) -> None:
    runs = 0

    async def work(session: AsyncSession) -> None:
        nonlocal runs
        runs += 1
        await create_account(session, f"run{runs}@example.com")
        raise _aborted(sqlstate)

    with pytest.raises(DBAPIError) as raised:
        await in_transaction(sessions, work)
    async with sessions() as session:
        count = await session.scalar(text("SELECT count(*) FROM accounts"))
    assert runs == runs_expected
    assert count == 0
    assert db.is_write_conflict(raised.value) is (sqlstate == "40P01")


async def test_a_real_deadlock_on_postgresql_ends_with_both_transactions_committed(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite writers take turns: they cannot deadlock")
    async with transaction(sessions) as session:
        ids = [(await create_account(session, f"{n}@example.com")).id for n in ("a", "b")]
    both_hold_one = asyncio.Barrier(2)
    runs: list[str] = []

    def locking(first: str, second: str) -> Any:
        async def work(session: AsyncSession) -> None:
            runs.append(first)
            lock = "SELECT id FROM accounts WHERE id = :id FOR UPDATE"
            await session.execute(text(lock), {"id": first})
            if runs.count(first) == 1:  # the first run of each meets the other: a deadlock
                await both_hold_one.wait()
            await session.execute(text(lock), {"id": second})
            await session.execute(
                text("UPDATE accounts SET name = :name WHERE id = :id"),
                {"name": f"after {first}", "id": second},
            )

        return work

    await asyncio.wait_for(
        asyncio.gather(
            in_transaction(sessions, locking(ids[0], ids[1])),
            in_transaction(sessions, locking(ids[1], ids[0])),
        ),
        timeout=30,
    )
    async with sessions() as session:
        names = set((await session.execute(select(Account.name))).scalars())
    # PostgreSQL aborted one to break the cycle; it ran again once the other had committed.
    assert sorted(runs) in ([ids[0], ids[0], ids[1]], [ids[0], ids[1], ids[1]])
    assert names == {f"after {ids[0]}", f"after {ids[1]}"}
