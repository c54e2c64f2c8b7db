"""The SDK against the real service: a real ``alttext serve`` process on a free port, a migrated
SQLite database, accounts and keys made through the domain services, and small real HTTP
servers (an image host, a job site with slow images and HTML pages, a proxy that loses
answers) on 127.0.0.1.

``alttext-client`` is a dev dependency of the root project (an editable install of
sdk/python), so ``import alttext_client`` works like any installed package.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.server import serve_in_thread
from tests.processes import free_port, service_process

T = TypeVar("T")

STARTING_CREDITS = 25


def photo(size: tuple[int, int] = (320, 240), fmt: str = "PNG", seed: int = 0) -> bytes:
    """A small, photo-like image (smooth colour blobs), different per seed."""
    import random

    rnd = random.Random(seed)
    blobs = Image.frombytes("RGB", (4, 3), bytes(rnd.randrange(256) for _ in range(36)))
    buf = io.BytesIO()
    blobs.resize(size, Image.Resampling.BICUBIC).save(buf, format=fmt)
    return buf.getvalue()


@dataclass
class Credentials:
    account_id: str
    email: str
    key: str
    key_id: str


@dataclass
class RunningService:
    base_url: str
    database_url: str
    counter: list[int] = field(default_factory=lambda: [0])

    def new_account(self, credits: int = STARTING_CREDITS) -> Credentials:
        """An account with ``credits`` and one API key, written straight to the database."""
        self.counter[0] += 1
        email = f"sdk{self.counter[0]}-{id(self)}@example.com"

        async def create() -> Credentials:
            from alttext.accounts.service import create_account, create_key
            from alttext.billing.ledger import grant_starting_credits
            from alttext.db import create_engine, session_factory, transaction

            engine = create_engine(self.database_url)
            try:
                async with transaction(session_factory(engine)) as session:
                    account = await create_account(session, email)
                    await grant_starting_credits(session, account, credits)
                    key, secret = await create_key(session, account.id, name="sdk")
                return Credentials(account.id, account.email, secret, key.id)
            finally:
                await engine.dispose()

        return _in_thread(create())

    def grant(self, account_id: str, credits: int) -> None:
        """An admin grant (a credit increase: a paused job resumes by itself)."""

        async def book() -> None:
            from alttext.billing.ledger import grant
            from alttext.db import create_engine, session_factory, transaction

            engine = create_engine(self.database_url)
            try:
                async with transaction(session_factory(engine)) as session:
                    await grant(session, account_id, credits, reason="sdk test")
            finally:
                await engine.dispose()

        _in_thread(book())


def _in_thread(coro: Coroutine[Any, Any, T]) -> T:
    # From sync and async tests alike: a thread has no running loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _start(tmp: Path, template: Path, extra_env: dict[str, str]) -> Iterator[RunningService]:
    db = tmp / "sdk.db"
    shutil.copy(template, db)
    url = f"sqlite+aiosqlite:///{db}"
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": url,
        "ALTTEXT_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "ALTTEXT_PROVIDER": "local",
        "ALTTEXT_LOG_LEVEL": "WARNING",
        "ALTTEXT_WORKERS": "2",
        "ALTTEXT_ALLOW_PRIVATE_URLS": "true",  # the image host is on 127.0.0.1
        "ALTTEXT_CACHE_TTL_S": "0",
        # Jobs as in tests/jobs/helpers.py FAST_JOBS: quick sweeps, short leases, no crawl delay.
        "ALTTEXT_JOB_SWEEP_S": "0.2",
        "ALTTEXT_JOB_LEASE_S": "3",
        "ALTTEXT_CRAWL_DELAY_S": "0",
        **extra_env,
    }
    port = free_port()
    with service_process(env, port):
        yield RunningService(base_url=f"http://127.0.0.1:{port}", database_url=url)


@pytest.fixture(scope="session")
def sdk_service(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[RunningService]:
    """One service process (local provider) for the SDK tests."""
    yield from _start(tmp_path_factory.mktemp("sdk-local"), sqlite_template, {})


@pytest.fixture(scope="session")
def sdk_openrouter_service(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    _fake_openrouter_server: Any,
) -> Iterator[tuple[RunningService, Any]]:
    """A service process whose provider is the fake OpenRouter (scriptable failures)."""
    fake = _fake_openrouter_server
    env = {
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake.base_url,
        "ALTTEXT_MODELS": "google/gemini-2.5-flash-lite",
    }
    for running in _start(tmp_path_factory.mktemp("sdk-or"), sqlite_template, env):
        yield running, fake


@pytest.fixture
def account(sdk_service: RunningService) -> Credentials:
    return sdk_service.new_account()


@dataclass
class ImageHost:
    base_url: str
    hits: list[str]


@pytest.fixture(scope="session")
def image_host() -> Iterator[ImageHost]:
    """A tiny HTTP server on 127.0.0.1 serving ``/cat.png`` (and 404 for anything else)."""
    hits: list[str] = []
    body = photo(seed=7)

    async def serve(request: Request) -> Response:
        hits.append(request.url.path)
        if request.url.path == "/cat.png":
            return Response(body, media_type="image/png")
        return Response("not here", status_code=404)

    app = Starlette(routes=[Route("/{path:path}", serve)])
    with serve_in_thread(app, "image host") as port:
        yield ImageHost(f"http://127.0.0.1:{port}", hits)


@dataclass
class JobSite:
    """Images (and HTML pages) for jobs, on a fake image host on 127.0.0.1."""

    host: FakeImageHost
    served: list[int] = field(default_factory=lambda: [0])

    def images(self, count: int, *, delay_s: float = 0.0) -> list[str]:
        """``count`` different PNGs; each answer waits ``delay_s`` first (a slow host keeps
        a job running long enough to watch it, or to cancel it)."""
        urls = []
        for _ in range(count):
            n = self.served[0] = self.served[0] + 1
            path, body = f"/img/{n}.png", photo((160, 120), seed=100 + n)

            def respond(handler: Any, stop: Any, body: bytes = body) -> None:
                if delay_s:
                    stop.wait(delay_s)
                handler.send_body(200, body, {"Content-Type": "image/png"})

            self.host.route(path, respond)
            urls.append(self.host.url(path))
        return urls

    def page(self, path: str, html: str) -> str:
        self.host.image(path, html.encode(), content_type="text/html; charset=utf-8")
        return self.host.url(path)


@pytest.fixture
def job_site() -> Iterator[JobSite]:
    with running_image_host() as host:
        yield JobSite(host)


@dataclass
class LossyProxy:
    """Forwards to the service; the first ``lose`` POSTs are run by the service but their
    answers are replaced by ``status[0]`` (503 by default; 429 too) + Retry-After, as if a load
    balancer lost them."""

    base_url: str
    seen: list[tuple[str, str | None, int]]  # (path, Idempotency-Key, status sent back)
    lose: list[int]
    status: list[int] = field(default_factory=lambda: [503])


@pytest.fixture
def lossy_proxy(sdk_service: RunningService) -> Iterator[LossyProxy]:
    seen: list[tuple[str, str | None, int]] = []
    lose = [0]
    status = [503]

    async def forward(request: Request) -> Response:
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with httpx.AsyncClient(timeout=60) as client:
            upstream = await client.request(
                request.method,
                sdk_service.base_url + request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        key = request.headers.get("idempotency-key")
        if request.method == "POST" and lose[0] > 0:
            lose[0] -= 1
            lost = status[0]
            code = "rate_limited" if lost == 429 else "service_unavailable"
            seen.append((request.url.path, key, lost))
            return JSONResponse(
                {
                    "type": f"https://alttext.dev/errors/{code}",
                    "title": "Lost answer",
                    "status": lost,
                    "detail": "The proxy lost the answer (test).",
                    "code": code,
                    "request_id": upstream.headers.get("x-request-id"),
                },
                status_code=lost,
                headers={"Retry-After": "1"},
                media_type="application/problem+json",
            )
        seen.append((request.url.path, key, upstream.status_code))
        passed = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=passed)

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])])
    with serve_in_thread(app, "lossy proxy") as port:
        yield LossyProxy(f"http://127.0.0.1:{port}", seen, lose, status)


RecordHook = Callable[[httpx.Request], None]


@dataclass
class Recorder:
    """What the SDK put on the wire (``http_client`` event hooks)."""

    requests: list[httpx.Request] = field(default_factory=list)

    def sync_hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def async_hook(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
