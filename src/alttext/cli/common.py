"""What every command shares: settings, the process, transactions and error printing.

Nothing heavy is imported at module level: ``alttext --help`` loads only Typer and Rich, and
the database commands (``reads``, ``in_transaction``) add only the settings, SQLAlchemy, the
tables they touch and, for writes, the key cache (with its Redis client only when
``ALTTEXT_REDIS_URL`` is set; tests/cli/test_startup.py checks it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from alttext.config import Settings
    from alttext.process import Services


class _Stderr:
    """Rich's console on stderr, built when first used: importing Rich takes about a fifth of
    a command's start, and most commands (``audit`` finding nothing wrong) never print there."""

    def __init__(self) -> None:
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


err = _Stderr()
T = TypeVar("T")


def settings() -> Settings:
    from alttext.config import Settings

    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def run_app_errors(coro: Awaitable[T]) -> T:
    """Run ``coro``; an ``AppError`` is printed as title and detail and exits 1."""
    import asyncio

    from alttext.describe.errors import AppError

    async def run() -> T:
        return await coro

    try:
        return asyncio.run(run())
    except AppError as exc:
        err.print(f"[red]{exc.title}:[/red] {exc.detail}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except Exception as exc:
        from alttext.errors import is_database_outage

        if not is_database_outage(exc):
            raise
        # A database that cannot be opened or reached is the operator's setting or service,
        # not a bug: one line naming the cause, not a traceback.
        cause = getattr(exc, "orig", None) or exc
        err.print(
            f"[red]Database unavailable:[/red] {cause} (check ALTTEXT_DATABASE_URL and that "
            "the database is running; run `alttext db upgrade` for a new one)",
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc


def with_process(fn: Callable[[Services], Awaitable[T]], *, engine: bool = False) -> T:
    """Run ``fn`` with this process's parts (built and closed by ``open_process``)."""
    from alttext.process import open_process

    current = settings()

    async def run() -> T:
        async with open_process(current, engine=engine) as services:
            return await fn(services)

    return run_app_errors(run())


def require_database(url: str) -> None:
    """A SQLite file that is not there: say how to make it, rather than let SQLite fail on it
    (and aiosqlite's thread print its own traceback as the loop closes)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    if path.startswith("file:") or Path(path).exists():
        return
    err.print(
        f"[red]No database at {path}:[/red] run `alttext db upgrade` to create it, or set "
        "ALTTEXT_DATABASE_URL to the one you meant.",
        soft_wrap=True,
    )
    raise typer.Exit(1)


def with_database(
    fn: Callable[[async_sessionmaker[AsyncSession], Settings], Awaitable[T]],
) -> T:
    """Run ``fn`` with a session factory on the database and the settings, for writes that
    manage their own transactions (``purge``, ``accounts erase``); the key cache comes too.

    The key cache is the one part of the process a write needs: its commit hook tells every
    service process (over Redis, when configured) that a key, account or suspension changed,
    so a revocation from the command line takes effect at once. Nothing else is built or
    imported (no describe runtime, queue, Stripe or image stack), so writes start about as fast
    as reads (docs/cli.md, startup).
    """
    from alttext.accounts.key_cache import KeyCache

    current = settings()
    require_database(current.database_url)

    async def run() -> T:
        async with _database(current) as sessions:
            key_cache = KeyCache(current.key_cache_ttl_s, redis_url=current.redis_url)
            key_cache.watch(sessions)
            key_cache.start()
            try:
                return await fn(sessions, current)
            finally:
                await key_cache.aclose()  # after the invalidation is published

    return run_app_errors(run())


def in_transaction(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One write transaction on the database and the key cache alone (``with_database``)."""

    async def run(sessions: async_sessionmaker[AsyncSession], _: Settings) -> T:
        from alttext.db import transaction

        async with transaction(sessions) as session:
            return await fn(session)

    return with_database(run)


def reads(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A read-only session (no write lock) on the database alone.

    A read needs no process (``open_process``): no describe runtime, queue, key cache, limiter
    or mailer is built, and none of their modules (the web app, taskiq, Stripe, the image
    stack) is imported, so listings and balances start as fast as SQLAlchemy allows (docs/cli.md,
    startup). Writes go through ``in_transaction``.
    """
    current = settings()
    require_database(current.database_url)

    async def run() -> T:
        async with _database(current) as sessions, sessions() as session:
            return await fn(session)

    return run_app_errors(run())


@contextlib.asynccontextmanager
async def _database(current: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the configured database; its pool is closed on the way out."""
    from alttext.db import create_engine, session_factory

    db = create_engine(current.database_url)
    try:
        yield session_factory(db)
    finally:
        await db.dispose()
