"""Shared fixtures: databases (SQLite always; PostgreSQL when ALTTEXT_TEST_DATABASE_URL is set),
a running app with an HTTP client, and accounts with keys."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from alttext.config import Settings
from alttext.db import create_engine, transaction
from alttext.migrate import upgrade

PG_URL = os.environ.get("ALTTEXT_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("ALTTEXT_TEST_REDIS_URL")
DB_BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once; each test copies the file (much faster than migrating again)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    # Maybe requested first from inside a running event loop (an async test's fixture): Alembic's
    # own asyncio.run needs a thread of its own, as in ``postgres_migrated``.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade, f"sqlite+aiosqlite:///{path}").result()
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A database of this test run's own on the PostgreSQL server, migrated once.

    Concurrent test runs (developers, CI) on one server never see each other's rows.
    """
    assert PG_URL is not None
    import asyncio

    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    name = f"alttext_test_{uuid.uuid4().hex[:12]}"
    url = base.set(database=name).render_as_string(hide_password=False)

    async def admin(statement: str) -> None:
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    def create() -> None:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        upgrade(url)

    def drop() -> None:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    # Requested from inside a running event loop: Alembic's own asyncio.run needs a thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(create).result()
    yield url
    with ThreadPoolExecutor(1) as pool:
        pool.submit(drop).result()


async def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        )
        names = [r[0] for r in rows]
        if names:
            await conn.execute(text(f"TRUNCATE {', '.join(names)} CASCADE"))
    await engine.dispose()


@pytest.fixture(params=DB_BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_migrated")
        await _truncate_postgres(url)
        return url
    path = tmp_path / "test.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "provider": "local",
        "log_level": "WARNING",
        "workers": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Account:
    id: str
    email: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Service:
    client: httpx.AsyncClient
    settings: Settings
    app: Any

    async def create_account(self, email: str = "user@example.com", credits: int = 100) -> Account:
        from alttext.accounts.service import create_account, create_key
        from alttext.billing.ledger import grant_starting_credits

        async with transaction(self.app.state.services.sessions) as session:
            account = await create_account(session, email)
            await grant_starting_credits(session, account, credits)
            api_key, secret = await create_key(session, account.id, name="test")
        return Account(id=account.id, email=account.email, key=secret, key_id=api_key.id)


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    from alttext.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Service(client=client, settings=settings, app=app)


ServiceFactory = Callable[..., Any]


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    async with running_service(make_settings(database_url)) as svc:
        yield svc


@pytest.fixture
def service_factory(database_url: str) -> Callable[..., Any]:
    """``async with service_factory(provider=..., ...) as svc:`` for custom settings."""

    def factory(**overrides: Any) -> Any:
        return running_service(make_settings(database_url, **overrides))

    return factory


@pytest.fixture
async def account(service: Service) -> Account:
    return await service.create_account()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def _fake_openrouter_server() -> Iterator[Any]:
    from tests.fakes.openrouter import run_fake_openrouter

    with run_fake_openrouter() as fake:
        yield fake


@pytest.fixture
def fake_openrouter(_fake_openrouter_server: Any) -> Any:
    """The fake OpenRouter (a real server on 127.0.0.1), reset for this test."""
    _fake_openrouter_server.reset()
    return _fake_openrouter_server


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[Any]:
    """The fake Stripe (a real server on 127.0.0.1), shared by the whole run."""
    from tests.fakes.stripe import run_fake_stripe

    with run_fake_stripe() as fake:
        yield fake


@pytest.fixture
def fake_stripe(stripe_server: Any) -> Any:
    """The fake Stripe, reset for this test."""
    stripe_server.reset()
    return stripe_server


def openrouter_settings(fake: Any, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider": "openrouter",
        "openrouter_api_key": fake.api_key,
        "openrouter_base_url": fake.base_url,
        "models": "google/gemini-2.5-flash-lite,qwen/qwen2.5-vl-72b-instruct",
    }
    values.update(overrides)
    return values
