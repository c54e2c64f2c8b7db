"""SQLite through aiosqlite in one trip to its thread per statement (alttext.sqlite_driver):
the same results, row counts, errors and transactions as SQLAlchemy's own adapter, for a
third of the trips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alttext.db import create_engine, deferred, session_factory, transaction
from alttext.sqlite_driver import _Dbapi


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to aiosqlite's thread, by name, in order."""
    sent: list[str] = []
    original = aiosqlite.core.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return sent


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.sqlite'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def warmed(engine: AsyncEngine, trips: list[str]) -> async_sessionmaker[AsyncSession]:
    """The engine's sessions with the pool's first connection open, and no trip counted yet."""
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await session.execute(text("SELECT 1"))
    trips.clear()
    return sessions


async def test_the_engine_uses_the_one_trip_driver(engine: AsyncEngine) -> None:
    assert isinstance(engine.dialect.dbapi, _Dbapi)


async def test_a_statement_is_one_trip_and_a_transaction_no_more_than_its_statements(
    engine: AsyncEngine, trips: list[str]
) -> None:
    sessions = await warmed(engine, trips)
    async with transaction(sessions) as session:
        rows = (
            await session.execute(
                text("INSERT INTO t (name) VALUES (:n) RETURNING id, name"), {"n": "a"}
            )
        ).all()
        await session.execute(text("UPDATE t SET name = 'b' WHERE id = :i"), {"i": rows[0][0]})
    # BEGIN IMMEDIATE with the INSERT and its rows, the UPDATE, COMMIT: no cursor of its own,
    # no separate fetch or close, no second rollback when the connection goes back to the pool.
    assert trips == ["_run", "_run", "_commit"]
    assert [tuple(r) for r in rows] == [(1, "a")]


async def test_results_row_counts_and_last_row_ids_are_the_drivers(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        assert inserted.lastrowid == 1
        await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), [{"n": "y"}, {"n": "z"}])
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        result = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
        assert result.keys() == ["id", "name"]
        assert [tuple(r) for r in result] == [(1, "x"), (2, "y!"), (3, "z!")]
        assert (await conn.execute(text("SELECT name FROM t WHERE id = 99"))).first() is None


async def test_a_connection_returned_mid_transaction_holds_no_lock(engine: AsyncEngine) -> None:
    """The pool no longer rolls back on return: closing must, or the next writer would wait."""
    sessions = session_factory(engine)
    session = sessions()
    await session.connection(execution_options={"alttext_writes": True})  # BEGIN IMMEDIATE
    await session.execute(text("INSERT INTO t (name) VALUES ('abandoned')"))
    await session.close()
    async with engine.connect() as conn:
        in_transaction = await conn.run_sync(
            lambda sync: sync.connection.dbapi_connection.driver_connection._conn.in_transaction  # type: ignore[union-attr]
        )
    assert in_transaction is False
    async with transaction(sessions) as other:
        await other.execute(text("INSERT INTO t (name) VALUES ('next')"))
    async with sessions() as check:
        names = (await check.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["next"]


T = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("name", String))


async def names(engine: AsyncEngine) -> list[str]:
    async with session_factory(engine)() as session:
        rows = (await session.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all()
    return list(rows)


async def test_deferred_inserts_go_with_the_commit_in_order(
    engine: AsyncEngine, trips: list[str]
) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await session.execute(text("SELECT 1"))  # warm: the pool's first connection
    trips.clear()
    async with transaction(sessions) as session:
        await session.execute(deferred(T), {"name": "first"})
        await session.execute(deferred(T), {"name": "second"})
        assert trips == []  # not even BEGIN has gone yet
    assert trips == ["_commit"]  # BEGIN IMMEDIATE, both INSERTs and COMMIT: one trip
    assert await names(engine) == ["first", "second"]


async def test_a_statement_after_deferred_inserts_sees_them(
    engine: AsyncEngine, trips: list[str]
) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await session.execute(deferred(T), {"name": "waiting"})
        count = (await session.execute(text("SELECT count(*) FROM t"))).scalar_one()
    assert count == 1
    assert trips.count("_run") == 1


@pytest.mark.parametrize("deferred_duplicate", [False, True])
async def test_errors_are_translated_and_the_transaction_rolls_back(
    engine: AsyncEngine, deferred_duplicate: bool
) -> None:
    """A failing statement fails where it runs: at once, or (deferred) at the COMMIT."""
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('once')"))

    async def duplicate() -> None:
        async with transaction(sessions) as session:
            await session.execute(text("INSERT INTO t (name) VALUES ('before')"))
            if deferred_duplicate:
                await session.execute(deferred(T), {"name": "once"})  # fails at COMMIT
            else:
                await session.execute(text("INSERT INTO t (name) VALUES ('once')"))

    with pytest.raises(IntegrityError):
        await duplicate()
    assert await names(engine) == ["once"]
    async with transaction(sessions) as session:  # the connection is usable again
        await session.execute(deferred(T), {"name": "after"})
    assert await names(engine) == ["once", "after"]


async def test_a_transaction_rolled_back_before_any_statement_went_costs_no_trip(
    engine: AsyncEngine, trips: list[str]
) -> None:
    sessions = await warmed(engine, trips)

    async def changes_its_mind() -> None:
        async with transaction(sessions) as session:
            await session.execute(deferred(T), {"name": "never"})
            raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError):
        await changes_its_mind()
    assert trips == []
    assert await names(engine) == []


async def test_a_rollback_to_a_savepoint_drops_what_waited_after_it(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('once')"))

    async def undone(session: AsyncSession) -> None:
        async with session.begin_nested():
            await session.execute(deferred(T), {"name": "once"})  # would fail if sent
            raise RuntimeError("undo the savepoint")

    async with transaction(sessions) as session:
        await session.execute(deferred(T), {"name": "kept"})
        with pytest.raises(RuntimeError):
            await undone(session)
        await session.execute(deferred(T), {"name": "after"})
    assert await names(engine) == ["once", "kept", "after"]
