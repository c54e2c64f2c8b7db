"""GET /metrics through the whole app: off by default, behind its token, and the series that real
requests, generations and database rows produce."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST

from alttext.db import transaction
from alttext.ids import new_id
from alttext.jobstore.models import ITEM_STATUSES, JOB_STATUSES, Job, JobItem, WebhookMessage
from tests.conftest import Account, Service, openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import FakeOpenRouter
from tests.jobs.helpers import FAST_JOBS, wait_for, wait_status
from tests.jobs.webhook_receiver import run_receiver
from tests.test_metrics import families, sample

TOKEN = "metrics-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GEMINI = "google/gemini-2.5-flash-lite"
QWEN = "qwen/qwen2.5-vl-72b-instruct"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def metered(service_factory: Callable[..., Any]) -> AsyncIterator[Service]:
    async with service_factory(metrics_token=TOKEN) as svc:
        yield svc


async def scrape(service: Service) -> str:
    response = await service.client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.text


def delta(before: str, after: str, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


def total(text: str, name: str, **labels: str) -> float:
    """The sum over every sample called ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for family in families(text).values()
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


# -- the door ---------------------------------------------------------------------------------


async def test_without_a_token_configured_metrics_are_off(service: Service) -> None:
    for headers in ({}, AUTH):
        response = await service.client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
        assert "alttext_" not in response.text


async def test_a_missing_or_wrong_token_is_a_401_problem(metered: Service) -> None:
    wrong = [
        {},
        {"Authorization": "Bearer " + TOKEN[:-1] + "X"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {TOKEN}"},
        {"X-API-Key": TOKEN},
    ]
    for headers in wrong:
        response = await metered.client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["code"] == "unauthorized"
        assert body["request_id"] == response.headers["x-request-id"]
        assert "alttext_" not in response.text


async def test_the_right_token_gets_the_exposition_and_is_never_rate_limited(
    service_factory: Callable[..., Any],
) -> None:
    async with service_factory(metrics_token=TOKEN, rate_limit_per_minute=1) as svc:
        for _ in range(5):
            response = await svc.client.get(
                "/metrics", headers={"authorization": f"bearer {TOKEN}"}
            )
            assert response.status_code == 200
            assert response.headers["content-type"] == CONTENT_TYPE_LATEST
            assert response.headers["cache-control"] == "no-store"
            assert "ratelimit-limit" not in response.headers
        names = families(response.text)
        for name in (
            "alttext_http_requests",
            "alttext_http_request_duration_seconds",
            "alttext_job_items",
            "alttext_queue_depth",
            "alttext_jobs",
            "alttext_webhook_messages_pending",
        ):
            assert name in names, name


async def test_metrics_are_not_in_the_openapi_document(metered: Service) -> None:
    doc = (await metered.client.get("/openapi.json")).json()
    assert "/metrics" not in doc["paths"]


# -- series from real requests ----------------------------------------------------------------


async def test_a_generation_counts_a_request_and_a_spent_credit(metered: Service) -> None:
    account = await metered.create_account()
    before = await scrape(metered)
    response = await metered.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("photo.png", png(), "image/png")},
    )
    assert response.status_code == 200, response.text
    after = await scrape(metered)
    route = {"route": "/v1/alt-text", "method": "POST"}
    assert delta(before, after, "alttext_http_requests_total", **route, status="200") == 1
    assert delta(before, after, "alttext_http_request_duration_seconds_count", **route) == 1
    assert delta(before, after, "alttext_credits_spent_total") == 1
    # The offline engine calls no model server.
    calls = "alttext_upstream_calls_total"
    assert total(after, calls) == total(before, calls)
    # The scrape before this one is counted under its own route.
    scrapes = {"route": "/metrics", "method": "GET", "status": "200"}
    assert delta(before, after, "alttext_http_requests_total", **scrapes) == 1


async def test_a_failed_generation_spends_no_credit(metered: Service) -> None:
    account = await metered.create_account()
    before = await scrape(metered)
    response = await metered.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("photo.png", b"not an image at all", "image/png")},
    )
    assert response.status_code in (400, 415), response.text
    after = await scrape(metered)
    status = str(response.status_code)
    labels = {"route": "/v1/alt-text", "method": "POST", "status": status}
    assert delta(before, after, "alttext_http_requests_total", **labels) == 1
    assert delta(before, after, "alttext_credits_spent_total") == 0


async def test_the_route_label_is_the_template_never_the_path(metered: Service) -> None:
    account = await metered.create_account()
    before = await scrape(metered)
    job_id = "job_" + "0" * 26
    for path in (f"/v1/jobs/{job_id}", "/v1/jobs/job_somethingelse"):
        response = await metered.client.get(path, headers=account.headers)
        assert response.status_code in (404, 422), response.text
    missing = await metered.client.get("/v1/no-such-thing/123", headers=account.headers)
    assert missing.status_code == 404
    after = await scrape(metered)
    requests, template = "alttext_http_requests_total", {"route": "/v1/jobs/{job_id}"}
    assert total(after, requests, **template) - total(before, requests, **template) == 2
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert delta(before, after, "alttext_http_requests_total", **unmatched) == 1
    routes = {s.labels.get("route") for f in families(after).values() for s in f.samples}
    assert not any(r and (job_id in r or "somethingelse" in r or "123" in r) for r in routes)


# -- upstream calls ---------------------------------------------------------------------------


async def test_a_generation_on_openrouter_counts_upstream_calls_by_model(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    # The same image twice, and both must reach the model: no result cache.
    settings = openrouter_settings(fake_openrouter, metrics_token=TOKEN, cache_ttl_s=0)
    async with service_factory(**settings) as svc:
        account: Account = await svc.create_account()

        async def generate() -> httpx.Response:
            return await svc.client.post(
                "/v1/alt-text",
                headers=account.headers,
                files={"image": ("photo.png", png(), "image/png")},
            )

        before = await scrape(svc)
        assert (await generate()).status_code == 200
        after = await scrape(svc)
        calls = len(fake_openrouter.chat_requests)
        assert calls >= 1
        assert delta(before, after, "alttext_upstream_calls_total", model=GEMINI, outcome="ok") == (
            calls
        )
        assert delta(
            before, after, "alttext_upstream_call_duration_seconds_count", model=GEMINI
        ) == (calls)
        assert delta(before, after, "alttext_credits_spent_total") == 1

        # OpenRouter walks the chain: the call is counted under the model that answered.
        fake_openrouter.reset()
        fake_openrouter.fail_model(GEMINI, code=503)
        before = after
        assert (await generate()).status_code == 200
        after = await scrape(svc)
        assert delta(before, after, "alttext_upstream_calls_total", model=QWEN, outcome="ok") >= 1
        assert delta(before, after, "alttext_upstream_calls_total", model=GEMINI, outcome="ok") == 0


# -- gauges from the database -----------------------------------------------------------------


async def test_job_gauges_are_counted_from_the_database(metered: Service) -> None:
    # No credits and a paused job: the app's own job runner and sweep leave these rows alone.
    account = await metered.create_account(credits=0)
    empty = await scrape(metered)
    for status in JOB_STATUSES:
        assert sample(empty, "alttext_jobs", status=status) == 0
    for status in ITEM_STATUSES:
        assert sample(empty, "alttext_job_items", status=status) == 0
    assert sample(empty, "alttext_queue_depth") == 0
    assert sample(empty, "alttext_webhook_messages_pending") == 0
    assert sample(empty, "alttext_metrics_database_ok") == 1

    open_job, done_job = new_id("job"), new_id("job")
    items = {
        open_job: ["pending", "pending", "pending", "running", "succeeded"],
        # Pending items of a finished job are not waiting for anyone: not queue depth.
        done_job: ["pending", "failed", "skipped"],
    }
    async with transaction(metered.app.state.services.sessions) as session:
        session.add(Job(id=open_job, account_id=account.id, status="paused"))
        session.add(Job(id=done_job, account_id=account.id, status="cancelled"))
        await session.flush()
        for job_id, statuses in items.items():
            for seq, status in enumerate(statuses):
                session.add(
                    JobItem(
                        id=new_id("item"),
                        job_id=job_id,
                        account_id=account.id,
                        seq=seq,
                        image_url=f"https://example.com/{seq}.png",
                        status=status,
                    )
                )
        for state in ("pending", "pending", "delivered", "failed"):
            session.add(
                WebhookMessage(
                    id=new_id("msg"),
                    account_id=account.id,
                    job_id=open_job,
                    event="job.completed",
                    url="https://example.com/hook",
                    payload="{}",
                    state=state,
                )
            )

    text = await scrape(metered)
    assert sample(text, "alttext_jobs", status="paused") == 1
    assert sample(text, "alttext_jobs", status="cancelled") == 1
    assert sample(text, "alttext_jobs", status="queued") == 0
    assert sample(text, "alttext_job_items", status="pending") == 4
    assert sample(text, "alttext_job_items", status="running") == 1
    assert sample(text, "alttext_job_items", status="succeeded") == 1
    assert sample(text, "alttext_job_items", status="failed") == 1
    assert sample(text, "alttext_job_items", status="skipped") == 1
    assert sample(text, "alttext_job_items", status="cancelled") == 0
    assert sample(text, "alttext_queue_depth") == 3
    assert sample(text, "alttext_webhook_messages_pending") == 2
    assert families(text)["alttext_queue_depth"].type == "gauge"


async def test_a_real_webhook_delivery_is_counted_by_outcome(
    service_factory: Callable[..., Any],
) -> None:
    """A job's webhook, refused once by the receiver and then delivered, as the scrape sees it."""
    settings = {**FAST_JOBS, "metrics_token": TOKEN, "webhook_retry_base_s": 0.2}
    name = "alttext_webhook_deliveries_total"
    with running_image_host() as host, run_receiver() as receiver:
        host.error("/gone.png", 404)  # the only item fails: the job fails, job.failed is sent
        async with service_factory(**settings) as svc:
            account = await svc.create_account()
            secret = (await svc.client.get("/v1/webhooks/secret", headers=account.headers)).json()[
                "secret"
            ]
            receiver.reset(secret)
            receiver.statuses.append(500)  # the first attempt is refused
            before = await scrape(svc)
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={"items": [{"image_url": host.url("/gone.png")}], "webhook_url": receiver.url},
            )
            assert created.status_code == 202, created.text
            await wait_status(svc.client, created.json()["id"], account.headers, ("failed",))

            async def delivered() -> bool:
                return any(d.status == 200 for d in receiver.deliveries())

            await wait_for(delivered, timeout=30)
            assert [d.status for d in receiver.deliveries()] == [500, 200]
            assert all(d.verified for d in receiver.deliveries())

            async def counted() -> bool:  # the attempt is recorded just after the answer
                return delta(before, await scrape(svc), name, outcome="delivered") == 1

            await wait_for(counted, timeout=10)
            after = await scrape(svc)
            assert delta(before, after, name, outcome="delivered") == 1
            assert delta(before, after, name, outcome="http_error") == 1
            assert families(after)["alttext_webhook_deliveries"].type == "counter"
