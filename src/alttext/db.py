"""Database engine and sessions (SQLAlchemy 2 async) for SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from sqlalchemy import Connection, DateTime, Dialect, Engine, Insert, MetaData, event, insert, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from alttext import sqlite_driver

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")
_log = logging.getLogger("alttext.db")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python, on every database.

    SQLite keeps no offset and hands back naive values; normalising here, once, spares every
    caller from comparing naive and aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@overload
def iso_utc(value: datetime) -> str: ...
@overload
def iso_utc(value: None) -> None: ...
def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the API shows every timestamp."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def deferred(table: Any) -> Insert:
    """An INSERT that need not reach SQLite on its own: it goes with the transaction's next
    statement or its COMMIT (``alttext.sqlite_driver``), a trip to SQLite's thread saved. For
    rows written for the record, whose result nobody reads (no RETURNING, row count or last row
    id); should one fail (a duplicate key), that later call raises and the transaction rolls
    back. Elsewhere (PostgreSQL) it is a plain INSERT."""
    return insert(table).prefix_with(sqlite_driver.DEFERRED.removeprefix("INSERT "))


def upsert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that takes ``ON CONFLICT`` for the session's database (PostgreSQL's or
    SQLite's). Only that dialect's module is imported: PostgreSQL's costs about 30 ms, which
    a command-line write on SQLite would otherwise pay."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


PG_CONNECT_TIMEOUT_S = 5.0
PG_COMMAND_TIMEOUT_S = 15.0
PG_POOL_TIMEOUT_S = 10.0


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if is_sqlite(url):
        # One writer at a time is SQLite's nature: WAL lets readers go on, and a generous
        # busy timeout turns write contention into waiting instead of "database is locked".
        if url.startswith("sqlite+aiosqlite") and "module" not in kwargs:
            kwargs["module"] = sqlite_driver.dbapi()  # one thread hand-off per statement
        # Closing a session or connection already rolls back a transaction left open, so the
        # pool's own rollback on every return was a second, empty trip to aiosqlite's thread
        # after each commit.
        kwargs.setdefault("pool_reset_on_return", None)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    # Every wait on the database is bounded, so a server that stops answering (a partition
    # drops packets without a reset) costs a request seconds and a 503, not minutes and a 500:
    # a checkout waits PG_POOL_TIMEOUT_S for a free connection, a new connection
    # PG_CONNECT_TIMEOUT_S, a statement PG_COMMAND_TIMEOUT_S (ours touch one account's rows;
    # retention purges run in batches).
    kwargs.setdefault("pool_timeout", PG_POOL_TIMEOUT_S)
    connect_args = {"timeout": PG_CONNECT_TIMEOUT_S, "command_timeout": PG_COMMAND_TIMEOUT_S}
    if url.startswith("postgresql+asyncpg"):
        kwargs["connect_args"] = {**connect_args, **kwargs.get("connect_args", {})}
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is turned off so that BEGIN IMMEDIATE below is ours.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # Deleted rows are overwritten with zeros, in their pages and in pages that become free,
    # so an erased account's data does not linger in the file (see scrub_sqlite for the WAL).
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# How long a checkpoint after an erasure may wait for readers to leave the WAL (it holds new
# writers back meanwhile, so it is short).
SCRUB_BUSY_MS = 5000


def _checkpoint_truncate(conn: Connection) -> tuple[int, int, int]:
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={SCRUB_BUSY_MS}")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        row = cur.fetchone()
    finally:
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
    busy, frames, done = row if row is not None else (1, -1, -1)
    return int(busy), int(frames), int(done)


async def scrub_sqlite(engine: AsyncEngine) -> bool:
    """After deleting personal data: leave no copy of it in SQLite's files.

    ``secure_delete`` (set on every connection) zeroes deleted rows, but under WAL the zeroed
    pages are first written to the ``-wal`` file, which also still holds the earlier versions
    of those pages, the deleted rows included. A ``TRUNCATE`` checkpoint copies the WAL into
    the database file and empties it. Returns False when a reader kept it from finishing
    within ``SCRUB_BUSY_MS`` (the old frames then stay until a later checkpoint); True when it
    finished, and on PostgreSQL, where there is nothing to do here (``vacuum_postgres``).
    """
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        busy, _frames, _done = await conn.run_sync(_checkpoint_truncate)
    return busy == 0


async def vacuum_postgres(engine: AsyncEngine, tables: Iterable[str]) -> None:
    """``VACUUM`` the tables on PostgreSQL (a no-op elsewhere): dead row versions, such as an
    erased account's, are pruned from the tables and their indexes and their space is made
    free for new rows to overwrite (docs/privacy.md). Outside any transaction, as VACUUM must
    be; it runs alongside reads and writes, but reads each table and its indexes."""
    if engine.dialect.name != "postgresql":
        return
    quote = engine.dialect.identifier_preparer.quote
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            await autocommit.execute(text(f"VACUUM {quote(table)}"))


# Set by ``transaction`` on its connection: this unit of work writes.
_WRITES = "alttext_writes"
_AFTER_COMMIT = "alttext_after_commit"


def _sqlite_begin(conn: Any) -> None:
    # A writing transaction takes the write lock at BEGIN, so read-then-write work (balance
    # checks) is serialised instead of failing later with SQLITE_BUSY on lock upgrade. Reads
    # begin DEFERRED: under WAL they see a snapshot and never wait behind a writer.
    immediate = conn.get_execution_options().get(_WRITES, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


AfterCommit = Callable[[], Awaitable[object] | object]

# How long a writer waits for its turn before giving up, as SQLite's own busy timeout would.
SQLITE_WRITE_WAIT_S = 30.0


class _WriteTurns:
    """One SQLite database's writers in this process, one at a time and first come, first served.

    SQLite has a single writer. Left to itself, each waiting ``BEGIN IMMEDIATE`` retries in
    SQLite's busy handler with growing sleeps, so under load the writer that gets in is whoever
    retries at the right moment and some wait many times longer than others (p99 of a dozen
    times the median at 16 concurrent requests, docs/decisions.md). Here the process's writers
    queue on an ``asyncio.Lock`` (FIFO) before they take a connection, so the lock in the
    database is nearly always free when they ask for it; other processes on the same file are
    still ordered by the busy timeout. Reads never queue (under WAL they need no lock).
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        self.owner: asyncio.Task[Any] | None = None


_write_turns: weakref.WeakKeyDictionary[Engine, _WriteTurns] = weakref.WeakKeyDictionary()


def _turns_of(sessions: async_sessionmaker[AsyncSession]) -> _WriteTurns | None:
    """The queue of ``sessions``' writers on SQLite; None on PostgreSQL (it locks rows)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return None
    engine = bind.sync_engine
    turns = _write_turns.get(engine)
    if turns is None or turns.loop is not asyncio.get_running_loop():
        # An asyncio.Lock belongs to one event loop (tests and CLI commands each run their own).
        turns = _write_turns[engine] = _WriteTurns()
    return turns


@asynccontextmanager
async def _write_turn(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    turns = _turns_of(sessions)
    task = asyncio.current_task()
    if turns is None or (turns.owner is not None and turns.owner is task):
        # PostgreSQL; or a transaction opened inside this task's own, which is then left to
        # SQLite's busy timeout, as it always was (the outer one holds the database's lock).
        yield
        return
    try:
        async with asyncio.timeout(SQLITE_WRITE_WAIT_S):
            await turns.lock.acquire()
    except TimeoutError:
        # Code that waits, inside a transaction, for another task's transaction ends here
        # instead of hanging: as SQLite itself would answer after its busy timeout.
        raise OperationalError(
            "BEGIN IMMEDIATE",
            None,
            sqlite3.OperationalError(
                f"database is locked (no write turn within {SQLITE_WRITE_WAIT_S:.0f} s)"
            ),
        ) from None
    turns.owner = task
    try:
        yield
    finally:
        turns.owner = None
        turns.lock.release()


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A short unit of work that writes: commit on success, roll back on any error.

    The transaction rule (docs/architecture.md): service functions that take a ``session``
    join their caller's transaction and never commit; functions that take ``sessions`` (the
    factory) open their own short transactions with this helper. A plain ``sessions()`` is
    for reads only. Work registered with :func:`after_commit` runs once the commit succeeded,
    and never after a rollback.

    On SQLite the process's write transactions take turns (``_WriteTurns``): one at a time, in
    the order they asked, with the after-commit work run once the turn is passed on.
    """
    async with _write_turn(sessions), sessions() as session:
        async with session.begin():
            await session.connection(execution_options={_WRITES: True})
            yield session
        callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        result = callback()
        if inspect.isawaitable(result):
            await result


# PostgreSQL's verdicts that abort a transaction only to break a deadlock or a serialization
# conflict between concurrent writers: the same work, run again, is correct (its docs, 13.4).
RETRIED_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
RETRIES = 4
_RETRY_BASE_S = 0.02


def is_write_conflict(exc: BaseException) -> bool:
    """Whether the database aborted the transaction for another's sake, not for its content."""
    return isinstance(exc, DBAPIError) and (
        getattr(exc.orig, "sqlstate", None) in RETRIED_SQLSTATES
    )


async def in_transaction(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """``work`` in a :func:`transaction`, run again from the start (with a short, jittered
    wait) when PostgreSQL aborts it to break a deadlock, up to ``RETRIES`` times in all.

    For transactions that take row locks in an order another writer may not share (a job's
    settlement against a claim, say): a deadlock costs a retry instead of a failed request.
    ``work`` must have no effect outside the session before it returns; what it registers
    with :func:`after_commit` runs once, after the commit that held."""
    attempt = 1
    while True:
        try:
            async with transaction(sessions) as session:
                return await work(session)
        except DBAPIError as exc:
            if attempt >= RETRIES or not is_write_conflict(exc):
                raise
            _log.warning(
                "transaction aborted by the database (%s); running it again",
                getattr(exc.orig, "sqlstate", None),
                extra={"attempt": attempt},
            )
        # Jittered, so the two sides of a deadlock do not meet again at once.
        await asyncio.sleep(_RETRY_BASE_S * attempt * (0.5 + random.random()))
        attempt += 1


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` after the session's transaction commits (queued work, webhooks), so
    nothing is sent for rows that a rollback would take back. Needs a ``transaction``."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)
