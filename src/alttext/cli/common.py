"""What every command shares: settings, the process, transactions and error printing.

Nothing heavy is imported at module level: ``alttext --help`` and commands that need no model
load only Typer and Rich (tests/cli/test_startup.py checks it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from alttext.config import Settings
    from alttext.process import Services

err = Console(stderr=True)
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


def with_process(fn: Callable[[Services], Awaitable[T]], *, engine: bool = False) -> T:
    """Run ``fn`` with this process's parts (built and closed by ``open_process``)."""
    from alttext.process import open_process

    current = settings()

    async def run() -> T:
        async with open_process(current, engine=engine) as services:
            return await fn(services)

    return run_app_errors(run())


def in_transaction(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from alttext.db import transaction

    async def run(services: Services) -> T:
        async with transaction(services.sessions) as session:
            return await fn(session)

    return with_process(run)


def reads(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A read-only session (no write lock)."""

    async def run(services: Services) -> T:
        async with services.sessions() as session:
            return await fn(session)

    return with_process(run)
