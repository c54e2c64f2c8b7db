"""Rate limits and concurrency caps as callers see them, on both limiter backends."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import REDIS_URL, openrouter_settings
from tests.fakes.openrouter import Slow
from tests.processes import free_port, service_process

BACKENDS = ["memory"] + (["redis"] if REDIS_URL else [])


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(params=BACKENDS)
def limiter_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"redis_url": REDIS_URL} if request.param == "redis" else {}


async def test_per_key_limit_gives_429_with_headers(
    service_factory: Any, limiter_settings: dict[str, Any]
) -> None:
    async with service_factory(rate_limit_per_minute=3, **limiter_settings) as svc:
        acct = await svc.create_account("rl@example.com")
        seen = []
        for _ in range(4):
            r = await svc.client.get("/v1/account", headers=acct.headers)
            seen.append(r)
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [r.headers["ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
        assert all(r.headers["ratelimit-limit"] == "3" for r in seen)
        denied = seen[-1]
        assert denied.json()["code"] == "rate_limited"
        assert int(denied.headers["retry-after"]) >= 1
        assert int(denied.headers["ratelimit-reset"]) >= 1
        status = await svc.client.get("/readyz")
        assert status.json()["checks"]["limits"]["status"] == "ok"


async def test_account_override_beats_the_default(
    service_factory: Any, limiter_settings: dict[str, Any]
) -> None:
    from sqlalchemy import update

    from alttext.accounts.models import Account
    from alttext.db import transaction

    async with service_factory(rate_limit_per_minute=100, **limiter_settings) as svc:
        acct = await svc.create_account("vip@example.com")
        async with transaction(svc.app.state.services.sessions) as session:
            await session.execute(
                update(Account).where(Account.id == acct.id).values(rate_limit_per_minute=1)
            )
        first = await svc.client.get("/v1/account", headers=acct.headers)
        second = await svc.client.get("/v1/account", headers=acct.headers)
        assert (first.status_code, second.status_code) == (200, 429)
        assert first.headers["ratelimit-limit"] == "1"


async def test_in_flight_generations_are_capped_per_account(
    service_factory: Any, fake_openrouter: Any, limiter_settings: dict[str, Any]
) -> None:
    fake_openrouter.script(*[Slow(0.5) for _ in range(5)])
    # The same image five times: without the cache, all five want the model at once.
    settings = openrouter_settings(fake_openrouter, max_concurrent_per_account=2, cache_ttl_s=0)
    async with service_factory(**settings, **limiter_settings) as svc:
        acct = await svc.create_account("cc@example.com", credits=10)
        image = png()
        responses = await asyncio.gather(
            *(
                svc.client.post("/v1/alt-text", headers=acct.headers, files={"image": ("a", image)})
                for _ in range(5)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 429, 429, 429]
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["retry-after"] == "1"
        account = await svc.client.get("/v1/account", headers=acct.headers)
        assert account.json()["credits_remaining"] == 8  # refused requests are not charged


async def test_redis_down_keeps_serving_and_says_so(service_factory: Any) -> None:
    async with service_factory(redis_url="redis://127.0.0.1:1/0", rate_limit_per_minute=2) as svc:
        acct = await svc.create_account("down@example.com")
        codes = [
            (await svc.client.get("/v1/account", headers=acct.headers)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]  # local limits still hold
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200
        limits = ready.json()["checks"]["limits"]
        assert limits["status"] == "degraded"
        assert "local limits" in limits["policy"]


@pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set")
async def test_two_api_processes_share_one_limit_through_redis(database_url: str) -> None:
    from alttext.accounts.service import create_account, create_key
    from alttext.db import create_engine, session_factory, transaction

    engine = create_engine(database_url)
    async with transaction(session_factory(engine)) as session:
        account = await create_account(session, "shared@example.com")
        _, secret = await create_key(session, account.id)
    await engine.dispose()
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_REDIS_URL": str(REDIS_URL),
        "ALTTEXT_RATE_LIMIT_PER_MINUTE": "6",
        "ALTTEXT_LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    with service_process(env, ports[0]), service_process(env, ports[1]):
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}"}) as client:
            codes = []
            for i in range(12):
                r = await client.get(f"http://127.0.0.1:{ports[i % 2]}/v1/account")
                codes.append(r.status_code)
    assert codes.count(200) == 6
    assert codes.count(429) == 6
