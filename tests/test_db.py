"""The transaction helper: reads never queue behind a writer on SQLite, and after-commit work
runs only after a successful commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from alttext.accounts.models import Account
from alttext.accounts.service import create_account
from alttext.db import after_commit, create_engine, session_factory, transaction


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
