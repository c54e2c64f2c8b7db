"""``/v1/webhooks``: the signing secret and its rotation, and the delivery attempts list
(every attempt, newest first, only the caller's, never a body)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from alttext.db import transaction, utcnow
from alttext.ids import new_id
from alttext.jobs.webhook_delivery import deliver_due
from alttext.jobs.webhooks import enqueue_event
from alttext.jobstore.models import Job, WebhookMessage
from alttext.process import Services
from tests.conftest import Account, Service
from tests.jobs.webhook_receiver import Receiver, run_receiver

SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
DELIVERY_FIELDS = {
    "id",
    "object",
    "message_id",
    "job_id",
    "event",
    "url",
    "attempt",
    "outcome",
    "status_code",
    "latency_ms",
    "attempted_at",
}


@pytest.fixture(scope="module")
def _receiver_server() -> Iterator[Receiver]:
    with run_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(_receiver_server: Receiver) -> Receiver:
    _receiver_server.reset()
    return _receiver_server


@pytest.fixture
async def hooks_service(service_factory: Any) -> AsyncIterator[Service]:
    # The receiver listens on 127.0.0.1, which only a test deployment may reach.
    async with service_factory(allow_private_urls=True) as svc:
        yield svc


def services_of(service: Service) -> Services:
    services: Services = service.app.state.services
    return services


async def queue_event(
    service: Service, account: Account, url: str, job: dict[str, Any]
) -> tuple[str, str]:
    services = services_of(service)
    job_id = new_id("job")
    async with transaction(services.sessions) as session:
        session.add(Job(id=job_id, account_id=account.id, status="completed", webhook_url=url))
        await session.flush()
        message_id = await enqueue_event(
            session,
            account_id=account.id,
            job_id=job_id,
            url=url,
            event="job.completed",
            job={"id": job_id, **job},
        )
    return job_id, message_id


async def make_due(service: Service, message_id: str) -> None:
    async with transaction(services_of(service).sessions) as session:
        await session.execute(
            update(WebhookMessage)
            .where(WebhookMessage.id == message_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_the_secret_endpoints_need_a_key(service: Service) -> None:
    for method, path in (
        ("GET", "/v1/webhooks/secret"),
        ("POST", "/v1/webhooks/secret/rotate"),
        ("GET", "/v1/webhooks/deliveries"),
    ):
        response = await service.client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "unauthorized"
        bad = await service.client.request(
            method, path, headers={"Authorization": "Bearer at_live_not-a-real-key"}
        )
        assert bad.status_code == 401, path


async def test_the_secret_is_stable_until_rotated(service: Service, account: Account) -> None:
    first = await service.client.get("/v1/webhooks/secret", headers=account.headers)
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"secret", "rotated_at"}
    assert SECRET.match(body["secret"])
    assert body["rotated_at"] is None
    again = await service.client.get("/v1/webhooks/secret", headers=account.headers)
    assert again.json() == body

    rotated = await service.client.post("/v1/webhooks/secret/rotate", headers=account.headers)
    assert rotated.status_code == 200
    new = rotated.json()
    assert SECRET.match(new["secret"])
    assert new["secret"] != body["secret"]
    assert ISO_UTC.match(new["rotated_at"])
    now = await service.client.get("/v1/webhooks/secret", headers=account.headers)
    assert now.json() == new

    other = await service.create_account("other@example.com")
    theirs = await service.client.get("/v1/webhooks/secret", headers=other.headers)
    assert theirs.json()["secret"] not in (body["secret"], new["secret"])


async def test_every_attempt_is_listed_without_bodies(
    hooks_service: Service, receiver: Receiver
) -> None:
    service = hooks_service
    account = await service.create_account()
    client, headers = service.client, account.headers
    secret = (await client.get("/v1/webhooks/secret", headers=headers)).json()["secret"]
    receiver.reset(secret=secret)
    receiver.statuses.extend([500, 500])
    receiver.answer_body = b"receiver-answer-marker"
    job_id, message_id = await queue_event(
        service, account, receiver.url, {"status": "completed", "note": "payload-marker"}
    )
    services = services_of(service)
    # The app's own deliverer may take some attempts; leases keep each attempt single.
    for _ in range(50):
        async with services.sessions() as session:
            sent = await session.get(WebhookMessage, message_id)
        assert sent is not None
        if sent.state == "delivered":
            break
        await make_due(service, message_id)
        await deliver_due(services)
    assert [g.status for g in receiver.deliveries()] == [500, 500, 200]
    assert all(g.verified for g in receiver.deliveries())

    response = await client.get("/v1/webhooks/deliveries", headers=headers)
    assert response.status_code == 200
    page = response.json()
    assert page["has_more"] is False
    data = page["data"]
    assert [(d["attempt"], d["outcome"], d["status_code"]) for d in data] == [
        (3, "delivered", 200),
        (2, "http_error", 500),
        (1, "http_error", 500),
    ]
    for delivery in data:
        assert set(delivery) == DELIVERY_FIELDS
        assert delivery["id"].startswith("wha_")
        assert delivery["object"] == "webhook_delivery"
        assert delivery["message_id"] == message_id
        assert delivery["job_id"] == job_id
        assert delivery["event"] == "job.completed"
        assert delivery["url"] == receiver.url
        assert isinstance(delivery["latency_ms"], int)
        assert delivery["latency_ms"] >= 0
        assert ISO_UTC.match(delivery["attempted_at"])
    # Neither what was sent nor what the receiver answered is kept.
    assert "payload-marker" not in response.text
    assert "receiver-answer-marker" not in response.text

    first = await client.get("/v1/webhooks/deliveries?limit=2", headers=headers)
    assert [d["attempt"] for d in first.json()["data"]] == [3, 2]
    assert first.json()["has_more"] is True
    cursor = first.json()["data"][-1]["id"]
    rest = await client.get(
        "/v1/webhooks/deliveries", params={"limit": 2, "starting_after": cursor}, headers=headers
    )
    assert [d["attempt"] for d in rest.json()["data"]] == [1]
    assert rest.json()["has_more"] is False

    other = await service.create_account("other@example.com")
    theirs = await client.get("/v1/webhooks/deliveries", headers=other.headers)
    assert theirs.status_code == 200
    assert theirs.json() == {"object": "list", "data": [], "has_more": False}


async def test_a_refused_address_is_listed_as_refused(
    service: Service, account: Account, receiver: Receiver
) -> None:
    # The default deployment: private addresses are out of reach.
    _, message_id = await queue_event(service, account, receiver.url, {"status": "failed"})
    await deliver_due(services_of(service))
    assert receiver.deliveries() == []
    data = (await service.client.get("/v1/webhooks/deliveries", headers=account.headers)).json()
    assert data["data"]
    for delivery in data["data"]:
        assert delivery["message_id"] == message_id
        assert (delivery["outcome"], delivery["status_code"]) == ("refused", None)


async def test_the_delivery_list_refuses_a_bad_cursor_and_limit(
    service: Service, account: Account
) -> None:
    response = await service.client.get(
        "/v1/webhooks/deliveries?starting_after=job_123", headers=account.headers
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    response = await service.client.get("/v1/webhooks/deliveries?limit=0", headers=account.headers)
    assert response.status_code == 422
    response = await service.client.get(
        "/v1/webhooks/deliveries?limit=101", headers=account.headers
    )
    assert response.status_code == 422
