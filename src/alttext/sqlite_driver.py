"""SQLite through aiosqlite with one hand-off to its thread per statement.

aiosqlite runs every call on the connection's own thread: the event loop queues a function,
wakes that thread and is woken back by a callback. SQLAlchemy's adapter makes four such trips
for a statement that returns rows (open a cursor, execute, fetch, close) and three for one
that does not; on a 2-core virtual machine each trip cost the event loop about 0.1 ms of CPU,
mostly waking the other thread (a paid request makes nine statements: docs/decisions.md).
This adapter runs the whole statement (cursor, execute, fetch, close) as one function on that
thread and hands back the rows with the cursor's description, row count and last row id, so
the rest of SQLAlchemy's adapter, its locking and its error translation are unchanged.

Fewer trips still: a transaction's ``BEGIN`` and the INSERTs marked with :data:`DEFERRED`
(``alttext.db.deferred``: rows written for the record, whose result nobody reads) wait on the
connection and go to the thread with its next statement or its ``COMMIT``, in order. A paid
request's reserve is then two trips (``BEGIN`` with the balance's UPDATE, the two INSERTs with
the COMMIT) and its settle two. A deferred statement's error surfaces from that later call,
inside the same transaction, which rolls back; a rollback before they went drops them unsent.

Only buffered cursors are replaced; a server-side cursor (``stream_results``) is SQLAlchemy's
own. ``create_engine`` in ``alttext.db`` passes :func:`dbapi` as the engine's DBAPI module.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Outcome = tuple[Any, list[Any] | None, int, int | None]
# A statement whose text starts so (``alttext.db.deferred`` puts it there) waits for the next.
DEFERRED = "INSERT /* deferred */"
_BEGINS = ("BEGIN", "BEGIN IMMEDIATE")
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT"
# Statements waiting on a connection for its next trip: (SQL, parameters).
_Pending = list[tuple[str, Any]]


def _run_pending(conn: sqlite3.Connection, pending: _Pending) -> None:
    for operation, parameters in pending:
        if parameters is None:
            conn.execute(operation).close()
        else:
            conn.execute(operation, parameters).close()


def _run(
    conn: sqlite3.Connection, pending: _Pending, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """On aiosqlite's thread: what waited, then the whole statement, its rows fetched and its
    cursor closed."""
    _run_pending(conn, pending)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement costs one trip to aiosqlite's thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # No aiosqlite cursor is opened here (that was a trip of its own): ``_run`` opens a
        # sqlite3 cursor on the thread and closes it before it returns.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # every row is fetched on the thread; there is nothing to size

    async def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        adapt = cast("_Connection", self._adapt_connection)
        if not many and (operation in _BEGINS or operation.startswith(DEFERRED)):
            adapt._pending.append((operation, parameters))
            self._description, self._rowcount, self._lastrowid = None, 1, None
            self._rows = collections.deque()
            return
        async with adapt._execute_mutex:
            pending = adapt._take_pending()
            if operation.startswith(_ROLLBACK_TO):
                # What waited came after the savepoint (its own statement went with the rest):
                # undone unsent, so a failing one cannot fail the rollback meant to undo it.
                pending = []
            description, rows, rowcount, lastrowid = await self._connection._execute(
                _run, self._connection._conn, pending, operation, parameters, many
            )
        self._description = description
        self._rows = collections.deque(rows) if rows else collections.deque()
        self._rowcount = rowcount
        self._lastrowid = lastrowid

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._trip(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._trip(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor was closed on the thread already

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        raise NotImplementedError("SQLite has a single result set per statement")

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def fetchall(self) -> Sequence[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows


def _commit(conn: sqlite3.Connection, pending: _Pending) -> None:
    try:
        _run_pending(conn, pending)
    except BaseException:
        # SQLAlchemy does not roll back after a failed commit, and the pool does not on return
        # (alttext.db): the transaction ends here, or the connection's next BEGIN would fail.
        conn.rollback()
        raise
    conn.commit()


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_pending",)
    _cursor_cls = _OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending: _Pending = []

    def _take_pending(self) -> _Pending:
        pending, self._pending = self._pending, []
        return pending

    def commit(self) -> None:
        if not self._connection._connection:
            return
        try:
            await_(self._connection._execute(_commit, self._connection._conn, self._take_pending()))
        except Exception as error:
            self._handle_exception(error)

    def rollback(self) -> None:
        pending = self._take_pending()
        if pending and pending[0][0] in _BEGINS:
            return  # the transaction never reached SQLite: nothing to undo, no trip
        super().rollback()

    def close(self) -> None:
        self._pending = []
        super().close()


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def dbapi() -> Any:
    """The DBAPI module for ``create_async_engine(..., module=dbapi())`` on sqlite+aiosqlite."""
    return _Dbapi(aiosqlite, sqlite3)
