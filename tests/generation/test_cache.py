"""The result cache end to end, through the app and the fake OpenRouter: a repeat is a free
hit, options and accounts scope it, TTL 0 turns it off, identical concurrent requests make one
model call (and share its failure), Redis down is a bypass, erasure clears the account's
entries, a job's duplicate images are charged once, and the cache never holds image bytes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from alttext.result_cache import CACHED_FIELDS, ResultCache
from alttext.usage.models import UsageEvent
from alttext.usage.service import aggregate
from tests.conftest import REDIS_URL, Account, Service, openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import DEFAULT_ALT_TEXT, FakeOpenRouter, Slow, Status
from tests.jobs.helpers import FAST_JOBS, png, wait_status

BACKENDS = ["memory"] + (["redis"] if REDIS_URL else [])
DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens there


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"redis_url": REDIS_URL} if request.param == "redis" else {}


def cache_of(svc: Service) -> ResultCache:
    cache: ResultCache = svc.app.state.services.result_cache
    return cache


async def post(svc: Service, account: Account, image: bytes, **options: Any) -> httpx.Response:
    body = {"image": base64.b64encode(image).decode(), **options}
    return await svc.client.post("/v1/alt-text", headers=account.headers, json=body)


async def balance(svc: Service, account: Account) -> int:
    response = await svc.client.get("/v1/account", headers=account.headers)
    return int(response.json()["credits_remaining"])


async def statuses(svc: Service, account: Account) -> list[tuple[str, int]]:
    async with svc.app.state.services.sessions() as session:
        rows = await session.execute(
            select(UsageEvent.status, UsageEvent.credits).where(UsageEvent.account_id == account.id)
        )
    return sorted((status, credits) for status, credits in rows)


async def test_a_repeat_is_a_free_cache_hit(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter, backend: dict[str, Any]
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter, **backend)) as svc:
        account = await svc.create_account(credits=10)
        first = await post(svc, account, png(1), context="A cat on a windowsill")
        assert first.status_code == 200, first.text
        calls = len(fake_openrouter.chat_requests)
        assert calls >= 1
        one = first.json()
        assert one["cached"] is False
        assert one["usage"]["credits"] == 1
        assert one["credits_remaining"] == 9

        second = await post(svc, account, png(1), context="A cat on a windowsill")
        assert second.status_code == 200, second.text
        two = second.json()
        assert two["cached"] is True
        assert two["usage"] == {
            "credits": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "upstream_cost_usd": 0.0,
        }
        assert two["credits_remaining"] == 9
        assert two["timing_ms"]["upstream"] == 0
        assert two["id"] != one["id"]
        for same in ("alt_text", "alt_texts", "role", "decorative", "language", "model", "image"):
            assert two[same] == one[same], same
        assert len(fake_openrouter.chat_requests) == calls  # no second upstream call
        assert await balance(svc, account) == 9
        assert await statuses(svc, account) == [("cached", 0), ("succeeded", 1)]

        usage = (await svc.client.get("/v1/usage", headers=account.headers)).json()["totals"]
        assert usage["requests"] == 2
        assert usage["succeeded"] == 2
        assert usage["failed"] == 0
        assert usage["credits"] == 1
        now = datetime.now(UTC)
        async with svc.app.state.services.sessions() as session:
            rows = await aggregate(
                session,
                account.id,
                start=now - timedelta(days=1),
                end=now + timedelta(days=1),
                granularity="day",
            )
        assert [(r.succeeded, r.cached, r.credits) for r in rows] == [(2, 1, 1)]
        await cache_of(svc).clear_account(account.id)


async def test_options_models_and_accounts_scope_the_cache(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        account = await svc.create_account(credits=50)
        other = await svc.create_account("other@example.com", credits=50)
        image = png(2)
        assert (await post(svc, account, image)).json()["cached"] is False
        variants: list[dict[str, Any]] = [
            {"context": "Team photo on the about page"},
            {"language": ["en", "de"]},
            {"language": "de"},
            {"max_length": 80},
            {"keywords": ["cat"]},
            {"role": "informative"},
            {"long_description": True},
            {"model": "qwen/qwen2.5-vl-72b-instruct"},
        ]
        for options in variants:
            before = len(fake_openrouter.chat_requests)
            response = await post(svc, account, image, **options)
            assert response.status_code == 200, (options, response.text)
            assert response.json()["cached"] is False, options
            assert len(fake_openrouter.chat_requests) > before, options
        assert (await post(svc, account, image, max_length=80)).json()["cached"] is True
        assert (await post(svc, account, png(3))).json()["cached"] is False  # another image

        before = len(fake_openrouter.chat_requests)
        theirs = await post(svc, other, image)
        assert theirs.json()["cached"] is False  # never another account's answer
        assert theirs.json()["usage"]["credits"] == 1
        assert len(fake_openrouter.chat_requests) > before
        assert await balance(svc, account) == 50 - 1 - len(variants) - 1


async def test_ttl_zero_turns_the_cache_off(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter, cache_ttl_s=0)) as svc:
        account = await svc.create_account(credits=10)
        answers = [await post(svc, account, png(4)) for _ in range(2)]
        assert [r.json()["cached"] for r in answers] == [False, False]
        assert [r.json()["usage"]["credits"] for r in answers] == [1, 1]
        assert len(fake_openrouter.chat_requests) == 2
        assert await cache_of(svc).stored(account.id) == []
        # Without a cache there is no single flight either: each request runs the model.
        fake_openrouter.script(Slow(0.3), Slow(0.3), Slow(0.3))
        together = await asyncio.gather(*(post(svc, account, png(5)) for _ in range(3)))
        assert [r.json()["cached"] for r in together] == [False] * 3
        assert len(fake_openrouter.chat_requests) == 5
        assert await balance(svc, account) == 5


async def test_identical_concurrent_requests_make_one_model_call(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter, backend: dict[str, Any]
) -> None:
    fake_openrouter.script(Slow(0.5))
    async with service_factory(**openrouter_settings(fake_openrouter, **backend)) as svc:
        account = await svc.create_account(credits=10)
        responses = await asyncio.gather(*(post(svc, account, png(6)) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        bodies = [r.json() for r in responses]
        assert len(fake_openrouter.chat_requests) == 1
        # The leader is charged; the nine that waited for it are hits: free.
        assert sorted(b["cached"] for b in bodies) == [False] + [True] * 9
        assert sum(b["usage"]["credits"] for b in bodies) == 1
        assert {b["alt_text"] for b in bodies} == {DEFAULT_ALT_TEXT}
        assert await balance(svc, account) == 9
        assert await statuses(svc, account) == [("cached", 0)] * 9 + [("succeeded", 1)]
        await cache_of(svc).clear_account(account.id)


async def test_the_models_failure_is_shared_and_never_cached(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.script(Slow(0.5, then=Status(400, "Scripted bad request")))
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        account = await svc.create_account(credits=10)
        responses = await asyncio.gather(*(post(svc, account, png(7)) for _ in range(5)))
        assert [r.status_code for r in responses] == [502] * 5
        assert {r.json()["code"] for r in responses} == {"upstream_error"}
        assert len(fake_openrouter.chat_requests) == 1  # the waiters did not ask again
        assert await balance(svc, account) == 10  # failures are never charged
        assert await statuses(svc, account) == [("failed", 0)] * 5
        assert await cache_of(svc).stored(account.id) == []
        again = await post(svc, account, png(7))
        assert again.json()["cached"] is False
        assert await balance(svc, account) == 9


async def test_a_hit_needs_no_credit_and_a_batch_is_charged_once(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        account = await svc.create_account(credits=1)
        assert (await post(svc, account, png(8))).json()["credits_remaining"] == 0
        hit = await post(svc, account, png(8))
        assert hit.status_code == 200, hit.text  # free, so no 402
        assert hit.json()["cached"] is True
        assert (await post(svc, account, png(9))).status_code == 402

        rich = await svc.create_account("batch@example.com", credits=10)
        items = [{"id": f"i{n}", "image": base64.b64encode(png(10)).decode()} for n in range(3)]
        batch = await svc.client.post(
            "/v1/alt-text/batch", headers=rich.headers, json={"items": items}
        )
        assert batch.status_code == 200, batch.text
        body = batch.json()
        assert body["succeeded"] == 3
        assert body["credits_used"] == 1
        assert sorted(item["result"]["cached"] for item in body["data"]) == [False, True, True]
        assert body["credits_remaining"] == 9


async def test_redis_down_bypasses_the_cache(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter, redis_url=DOWN_URL)) as svc:
        account = await svc.create_account(credits=10)
        answers = [await post(svc, account, png(11)) for _ in range(2)]
        assert [r.status_code for r in answers] == [200, 200]
        assert [r.json()["cached"] for r in answers] == [False, False]
        assert len(fake_openrouter.chat_requests) == 2
        assert await balance(svc, account) == 8
        assert getattr(cache_of(svc), "degraded", False) is True


async def test_erasure_clears_the_accounts_entries(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter, backend: dict[str, Any]
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter, **backend)) as svc:
        account = await svc.create_account("erase-me@example.com", credits=10)
        other = await svc.create_account("stays@example.com", credits=10)
        for acct in (account, other):
            assert (await post(svc, acct, png(12))).status_code == 200
            assert (await post(svc, acct, png(13))).status_code == 200
        cache = cache_of(svc)
        assert len(await cache.stored(account.id)) == 2
        erased = await svc.client.request(
            "DELETE", "/v1/account", headers=account.headers, json={"confirm": account.email}
        )
        assert erased.status_code == 200, erased.text
        assert await cache.stored(account.id) == []
        assert len(await cache.stored(other.id)) == 2
        await cache.clear_account(other.id)


async def test_the_cache_never_holds_image_bytes(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter, backend: dict[str, Any]
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter, **backend)) as svc:
        account = await svc.create_account(credits=10)
        image = png(14, size=(320, 240))
        response = await post(svc, account, image, long_description=True)
        assert response.status_code == 200, response.text
        sent = fake_openrouter.images[-1].data  # the prepared image the model saw
        values = await cache_of(svc).stored(account.id)
        assert len(values) == 1
        value = values[0]
        assert set(json.loads(value)) == {"v", *CACHED_FIELDS}
        for data in (image, sent):
            b64 = base64.b64encode(data).decode()
            assert b64[:64] not in value
            assert data[:64].decode("latin-1") not in value
            assert data[:32].hex() not in value
        assert len(value) < 2000
        await cache_of(svc).clear_account(account.id)


async def test_the_decorative_path_is_unchanged(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        account = await svc.create_account(credits=10)
        answers = [await post(svc, account, png(15), role="decorative") for _ in range(2)]
        assert [r.json()["cached"] for r in answers] == [False, False]
        assert [r.json()["alt_text"] for r in answers] == ["", ""]
        assert fake_openrouter.chat_requests == []
        assert await cache_of(svc).stored(account.id) == []
        assert await statuses(svc, account) == [("decorative", 0)] * 2


async def test_a_jobs_duplicate_images_are_charged_once(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    with running_image_host() as host:
        settings = openrouter_settings(fake_openrouter, **FAST_JOBS)
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=10)
            for path, seed in (("/a.png", 16), ("/copy-of-a.png", 16), ("/b.png", 17)):
                host.image(path, png(seed))
            items = [
                {"id": "a", "image_url": host.url("/a.png")},
                {"id": "copy", "image_url": host.url("/copy-of-a.png")},
                {"id": "b", "image_url": host.url("/b.png")},
            ]
            created = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": items}
            )
            assert created.status_code == 202, created.text
            job = await wait_status(
                svc.client, created.json()["id"], account.headers, ("completed",)
            )
            assert job["counts"]["succeeded"] == 3
            assert job["credits_spent"] == 2  # one per distinct image
            assert len(fake_openrouter.chat_requests) == 2
            assert await balance(svc, account) == 8
            results = await svc.client.get(f"/v1/jobs/{job['id']}/results", headers=account.headers)
            rows = {row["id"]: row for row in results.json()["data"]}
            assert rows["a"]["alt_text"] == rows["copy"]["alt_text"] == DEFAULT_ALT_TEXT
            assert sorted(status for status, _ in await statuses(svc, account)) == [
                "cached",
                "succeeded",
                "succeeded",
            ]
