"""Jobs end to end in one process: the ``job.cancelled`` and ``job.failed`` webhooks reaching a
verifying receiver, the per-model cap on job items, another account's API calls while a big job
runs, and ``eta_s``."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.conftest import openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.openrouter import FakeOpenRouter
from tests.jobs.helpers import FAST_JOBS, png, wait_for, wait_status
from tests.jobs.webhook_receiver import Receiver, run_receiver

pytestmark = pytest.mark.anyio

SETTINGS = {**FAST_JOBS, "fetch_timeout_s": 3.0, "webhook_retry_base_s": 0.2}


class Gauge:
    """How many requests the image host is answering at once, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def slow_image(
    host: FakeImageHost, path: str, body: bytes, *, hold_s: float, gauge: Gauge | None = None
) -> None:
    """An image answered after ``hold_s`` (a slow origin): its item stays running meanwhile."""

    def respond(h: Any, stop: threading.Event) -> None:
        if gauge is None:
            stop.wait(hold_s)
        else:
            with gauge:
                stop.wait(hold_s)
        h.send_body(200, body, {"Content-Type": "image/png"})

    host.route(path, respond)


async def _secret(svc: Any, headers: dict[str, str]) -> str:
    response = await svc.client.get("/v1/webhooks/secret", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


async def _event(receiver: Receiver, kind: str, secret: str) -> dict[str, Any]:
    """The first delivery of ``kind``, checked as a customer's receiver checks it."""

    async def arrived() -> bool:
        return any(json.loads(d.body)["type"] == kind for d in receiver.deliveries())

    await wait_for(arrived, timeout=30)
    delivery = next(d for d in receiver.deliveries() if json.loads(d.body)["type"] == kind)
    assert delivery.verified
    assert delivery.status == 200
    Webhook(secret).verify(delivery.body, delivery.headers)
    event: dict[str, Any] = json.loads(delivery.body)
    return event


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_cancelled_job_sends_a_verified_job_cancelled_webhook(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, **SETTINGS, job_concurrency_per_account=1)
    fetching = Gauge()
    with running_image_host() as host, run_receiver() as receiver:
        # Held until the cancel is in (the host's stop ends the wait at teardown at the latest):
        # exactly one item is running and five are pending when the job is cancelled.
        slow_image(host, "/slow.png", png(1), hold_s=5.0, gauge=fetching)
        items = [{"image_url": host.url("/slow.png")}]
        for i in range(5):
            host.image(f"/later{i}.png", png(10 + i))
            items.append({"image_url": host.url(f"/later{i}.png")})
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=100)
            secret = await _secret(svc, account.headers)
            receiver.reset(secret)
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={"items": items, "webhook_url": receiver.url},
            )
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            await wait_status(svc.client, job_id, account.headers, ("running",))

            async def slow_item_running() -> bool:
                return fetching.now == 1

            await wait_for(slow_item_running)
            cancelled = await svc.client.delete(f"/v1/jobs/{job_id}", headers=account.headers)
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"

            event = await _event(receiver, "job.cancelled", secret)
            assert event["data"]["job"]["id"] == job_id
            assert event["data"]["job"]["status"] == "cancelled"
            assert event["data"]["job"]["counts"]["cancelled"] == 5
            assert event["data"]["job"]["finished_at"]
            kinds = [json.loads(d.body)["type"] for d in receiver.deliveries()]
            assert kinds == ["job.cancelled"]  # never also completed or failed

            # The attempt is recorded once the receiver has answered: a moment after it got it.
            attempts: list[tuple[str, str]] = []

            async def recorded() -> bool:
                nonlocal attempts
                listed = await svc.client.get("/v1/webhooks/deliveries", headers=account.headers)
                attempts = [(a["event"], a["outcome"]) for a in listed.json()["data"]]
                return bool(attempts)

            await wait_for(recorded)
            assert attempts == [("job.cancelled", "delivered")]


async def test_a_job_whose_source_is_unreachable_sends_a_verified_job_failed_webhook(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, **SETTINGS)
    with run_receiver() as receiver:
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=100)
            secret = await _secret(svc, account.headers)
            receiver.reset(secret)
            source = f"http://127.0.0.1:{_closed_port()}/index.html"
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={"source": {"url": source}, "webhook_url": receiver.url},
            )
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            failed = await wait_status(svc.client, job_id, account.headers, ("failed",))
            assert failed["error"]
            assert failed["credits_spent"] == 0

            event = await _event(receiver, "job.failed", secret)
            assert event["data"]["job"]["id"] == job_id
            assert event["data"]["job"]["status"] == "failed"
            assert event["data"]["job"]["error"] == failed["error"]
            assert [json.loads(d.body)["type"] for d in receiver.deliveries()] == ["job.failed"]
            assert fake_openrouter.chat_requests == []  # nothing to describe, nothing charged


async def test_job_items_of_one_model_run_at_most_the_per_model_cap_at_once(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    # The account would run 6 at once; the model allows 2 job items at a time.
    settings = openrouter_settings(
        fake_openrouter,
        **SETTINGS,
        job_concurrency_per_account=6,
        job_concurrency_per_model=2,
    )
    gauge = Gauge()
    with running_image_host() as host:
        items = []
        for i in range(8):
            slow_image(host, f"/m{i}.png", png(20 + i), hold_s=0.4, gauge=gauge)
            items.append({"image_url": host.url(f"/m{i}.png")})
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=100)
            created = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": items}
            )
            job_id = created.json()["id"]
            done = await wait_status(svc.client, job_id, account.headers, ("completed",))
            assert done["counts"]["succeeded"] == 8
            # Every item's image is fetched inside its model slot: never more than 2 at once.
            assert 1 <= gauge.peak <= 2, gauge.peak
            assert len(host.requests) == 8


async def test_another_accounts_api_call_is_answered_while_a_big_job_runs(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(
        fake_openrouter,
        **SETTINGS,
        job_concurrency_per_account=4,
        job_concurrency_per_model=2,
        max_concurrent_per_account=1,
    )
    with running_image_host() as host:
        items = []
        for i in range(40):
            slow_image(host, f"/big{i}.png", png(100 + i), hold_s=0.5)
            items.append({"image_url": host.url(f"/big{i}.png")})
        host.image("/mine.png", png(7))
        async with service_factory(**settings) as svc:
            busy = await svc.create_account("busy@example.com", credits=100)
            other = await svc.create_account("other@example.com", credits=5)
            created = await svc.client.post("/v1/jobs", headers=busy.headers, json={"items": items})
            job_id = created.json()["id"]

            async def busy_running() -> bool:
                job = await svc.client.get(f"/v1/jobs/{job_id}", headers=busy.headers)
                return bool(job.json()["counts"]["running"] >= 2)

            await wait_for(busy_running)
            answer = await svc.client.post(
                "/v1/alt-text", headers=other.headers, json={"image_url": host.url("/mine.png")}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["credits_remaining"] == 4
            # Answered while the job still had most of its items ahead: it did not wait for them
            # (nor for a job-model slot, which are all taken).
            job = (await svc.client.get(f"/v1/jobs/{job_id}", headers=busy.headers)).json()
            assert job["status"] == "running"
            assert job["counts"]["pending"] + job["counts"]["running"] > 0
            await svc.client.delete(f"/v1/jobs/{job_id}", headers=busy.headers)


async def test_eta_is_given_while_a_job_runs_and_gone_once_it_completed(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, **SETTINGS, job_concurrency_per_account=1)
    with running_image_host() as host:
        items = []
        for i in range(3):
            host.image(f"/quick{i}.png", png(40 + i))
            items.append({"image_url": host.url(f"/quick{i}.png")})
        slow_image(host, "/last.png", png(50), hold_s=1.5)
        items.append({"image_url": host.url("/last.png")})
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=100)
            created = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": items}
            )
            job_id = created.json()["id"]
            assert created.json()["eta_s"] is None  # queued: nothing to estimate from

            seen: dict[str, Any] = {}

            async def some_done() -> bool:
                nonlocal seen
                seen = (await svc.client.get(f"/v1/jobs/{job_id}", headers=account.headers)).json()
                return bool(seen["counts"]["succeeded"] >= 3)

            await wait_for(some_done)
            # Running, items done and one left: an estimate of the seconds to go.
            assert seen["status"] == "running", seen
            assert seen["counts"]["running"] + seen["counts"]["pending"] == 1
            assert isinstance(seen["eta_s"], int), seen
            assert seen["eta_s"] >= 0

            done = await wait_status(svc.client, job_id, account.headers, ("completed",))
            assert done["eta_s"] is None
            assert done["counts"]["succeeded"] == 4
