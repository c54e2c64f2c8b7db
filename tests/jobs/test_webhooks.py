"""Outbound job webhooks: derived signing secrets and rotation, the event body, delivery to a
real receiver that verifies every signature, retries with backoff, the retry window, the SSRF
refusal, failure outcomes, and claims that never let two senders send one attempt."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook, WebhookVerificationError

from alttext.accounts.service import create_account
from alttext.db import transaction, utcnow
from alttext.ids import new_id
from alttext.jobs import webhook_delivery
from alttext.jobs.webhook_delivery import (
    MAX_RETRY_DELAY_S,
    AttemptResult,
    Claimed,
    deliver_due,
    periodic_tasks,
    record_attempt,
    retry_delay,
)
from alttext.jobs.webhooks import (
    current_secret,
    enqueue_event,
    rotate_secret,
    signing_keys,
    signing_secret,
)
from alttext.jobstore.models import Job, WebhookAttempt, WebhookMessage, WebhookSigning
from alttext.process import Services, open_process
from tests.conftest import make_settings
from tests.jobs.webhook_receiver import Receiver, run_receiver

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(scope="module")
def _receiver_server() -> Iterator[Receiver]:
    with run_receiver() as receiver:
        yield receiver


@pytest.fixture
def receiver(_receiver_server: Receiver) -> Receiver:
    _receiver_server.reset()
    return _receiver_server


@contextlib.asynccontextmanager
async def process(database_url: str, **overrides: Any) -> AsyncIterator[Services]:
    """A process like a worker's, without background tasks: tests drive delivery."""
    settings = make_settings(database_url, **{"allow_private_urls": True, **overrides})
    async with open_process(settings) as services:
        yield services


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    async with process(database_url) as built:
        yield built


async def new_account(services: Services, email: str = "hooks@example.com") -> str:
    async with transaction(services.sessions) as session:
        return (await create_account(session, email)).id


async def queue_event(
    services: Services,
    account_id: str,
    url: str,
    *,
    event: str = "job.completed",
    job: dict[str, Any] | None = None,
) -> str:
    """A finished job row and its event, as the job runner writes them in one transaction."""
    job_id = new_id("job")
    async with transaction(services.sessions) as session:
        session.add(Job(id=job_id, account_id=account_id, status="completed", webhook_url=url))
        await session.flush()
        return await enqueue_event(
            session,
            account_id=account_id,
            job_id=job_id,
            url=url,
            event=event,
            job=job or {"id": job_id, "status": "completed"},
        )


async def message(services: Services, message_id: str) -> WebhookMessage:
    async with services.sessions() as session:
        found = await session.get(WebhookMessage, message_id)
    assert found is not None
    return found


async def attempts(services: Services, message_id: str) -> list[WebhookAttempt]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.message_id == message_id)
            .order_by(WebhookAttempt.attempt)
        )
        return list(rows)


async def set_message(services: Services, message_id: str, **values: Any) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(WebhookMessage).where(WebhookMessage.id == message_id).values(**values)
        )


async def make_due(services: Services, message_id: str) -> None:
    """Move time forward for one message: its next attempt is now."""
    await set_message(services, message_id, next_attempt_at=utcnow() - timedelta(seconds=1))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Secrets


def test_the_secret_is_derived_from_the_key_the_account_and_the_version(
    database_url: str,
) -> None:
    settings = make_settings(database_url)
    secret = signing_secret(settings, "acct_1", 1)
    digest = hmac.new(
        settings.secret_key.encode(), b"webhook-signing:acct_1:1", hashlib.sha256
    ).digest()
    assert secret == "whsec_" + base64.b64encode(digest).decode()
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing_secret(settings, "acct_1", 1) == secret  # nothing random: nothing stored
    assert signing_secret(settings, "acct_1", 2) != secret
    assert signing_secret(settings, "acct_2", 1) != secret
    other_key = make_settings(database_url, secret_key="another-secret-key-long-enough-0123456789")
    assert signing_secret(other_key, "acct_1", 1) != secret
    Webhook(secret).sign("msg_1", utcnow(), "{}")  # the library takes it as it is


async def test_rotation_bumps_the_version_and_keeps_the_previous_secret_for_a_day(
    services: Services,
) -> None:
    settings = services.settings
    account_id = await new_account(services)
    async with services.sessions() as session:
        first = await current_secret(session, settings, account_id)
        keys = await signing_keys(session, settings, account_id)
    assert first == signing_secret(settings, account_id, 1)
    assert (keys.version, keys.rotated_at, keys.signing) == (1, None, (first,))

    async with transaction(services.sessions) as session:
        second = await rotate_secret(session, settings, account_id)
    async with services.sessions() as session:
        assert await current_secret(session, settings, account_id) == second
        keys = await signing_keys(session, settings, account_id)
        row = await session.get(WebhookSigning, account_id)
    assert second == signing_secret(settings, account_id, 2) != first
    assert row is not None
    assert row.version == 2
    assert row.rotated_at is not None
    assert keys.signing == (second, first)

    async with transaction(services.sessions) as session:
        third = await rotate_secret(session, settings, account_id)
    async with services.sessions() as session:
        keys = await signing_keys(session, settings, account_id)
        later = await signing_keys(
            session, settings, account_id, now=utcnow() + timedelta(hours=24, seconds=1)
        )
    # Only the newest two secrets ever sign; after the grace period only the current one.
    assert keys.signing == (third, second)
    assert later.signing == (third,)


async def test_an_unknown_event_is_refused(services: Services) -> None:
    account_id = await new_account(services)
    with pytest.raises(ValueError, match="unknown webhook event"):
        await queue_event(services, account_id, "https://example.com/h", event="job.exploded")


# Delivery


async def test_a_delivery_verifies_and_carries_the_event(
    services: Services, receiver: Receiver
) -> None:
    account_id = await new_account(services)
    async with services.sessions() as session:
        receiver.reset(secret=await current_secret(session, services.settings, account_id))
    job = {"id": "job_x", "status": "completed", "counts": {"succeeded": 3}, "credits_spent": 3}
    message_id = await queue_event(services, account_id, receiver.url, job=job)
    assert message_id.startswith("msg_")
    queued = await message(services, message_id)
    assert (queued.state, queued.attempts, queued.event) == ("pending", 0, "job.completed")

    assert await deliver_due(services) == 1
    [got] = receiver.deliveries()
    assert got.verified
    assert got.status == 200
    assert got.path == "/hooks/alttext"
    assert got.webhook_id == message_id
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-signature"].startswith("v1,")
    assert " " not in got.headers["webhook-signature"]  # never rotated: one signature
    assert abs(int(got.headers["webhook-timestamp"]) - utcnow().timestamp()) < 60
    body = json.loads(got.body)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "job.completed"
    assert ISO_UTC.match(body["timestamp"])
    assert body["data"] == {"job": job}

    sent = await message(services, message_id)
    assert (sent.state, sent.attempts, sent.lease_until) == ("delivered", 1, None)
    assert sent.finished_at is not None
    [attempt] = await attempts(services, message_id)
    assert (attempt.attempt, attempt.outcome, attempt.status_code) == (1, "delivered", 200)
    assert (attempt.event, attempt.url, attempt.account_id) == (
        "job.completed",
        receiver.url,
        account_id,
    )
    assert attempt.latency_ms >= 0
    assert attempt.id.startswith("wha_")
    # Delivered is final: nothing is sent again.
    assert await deliver_due(services) == 0
    assert len(receiver.deliveries()) == 1


async def test_a_failing_receiver_is_retried_with_backoff_under_the_same_id(
    services: Services, receiver: Receiver
) -> None:
    account_id = await new_account(services)
    async with services.sessions() as session:
        receiver.reset(secret=await current_secret(session, services.settings, account_id))
    receiver.statuses.extend([500, 500])
    message_id = await queue_event(services, account_id, receiver.url)
    base = services.settings.webhook_retry_base_s

    assert await deliver_due(services) == 1
    after_first = await message(services, message_id)
    assert (after_first.state, after_first.attempts, after_first.lease_until) == (
        "pending",
        1,
        None,
    )
    wait = (after_first.next_attempt_at - utcnow()).total_seconds()
    assert base / 2 - 1 < wait <= base  # at least base/2, at most base * 2**0
    assert await deliver_due(services) == 0  # not due yet

    await make_due(services, message_id)
    assert await deliver_due(services) == 1
    after_second = await message(services, message_id)
    wait = (after_second.next_attempt_at - utcnow()).total_seconds()
    assert after_second.state == "pending"
    assert base / 2 - 1 < wait <= base * 2

    await make_due(services, message_id)
    assert await deliver_due(services) == 1
    assert (await message(services, message_id)).state == "delivered"

    got = receiver.deliveries()
    assert [g.status for g in got] == [500, 500, 200]
    assert all(g.verified for g in got)
    assert {g.webhook_id for g in got} == {message_id}
    assert len({g.body for g in got}) == 1  # the same event, signed anew each time
    recorded = await attempts(services, message_id)
    assert [(a.attempt, a.outcome, a.status_code) for a in recorded] == [
        (1, "http_error", 500),
        (2, "http_error", 500),
        (3, "delivered", 200),
    ]


async def test_the_retry_window_ends_in_failed(services: Services, receiver: Receiver) -> None:
    account_id = await new_account(services)
    receiver.statuses.extend([503] * 5)
    message_id = await queue_event(services, account_id, receiver.url)
    window = timedelta(seconds=services.settings.webhook_retry_window_s)
    await set_message(services, message_id, created_at=utcnow() - window - timedelta(hours=1))

    assert await deliver_due(services) == 1
    given_up = await message(services, message_id)
    assert (given_up.state, given_up.attempts) == ("failed", 1)
    assert given_up.finished_at is not None
    [attempt] = await attempts(services, message_id)
    assert (attempt.outcome, attempt.status_code) == ("http_error", 503)
    await make_due(services, message_id)
    assert await deliver_due(services) == 0
    assert len(receiver.deliveries()) == 1


async def test_the_last_attempt_is_made_when_the_window_ends(
    services: Services, receiver: Receiver
) -> None:
    account_id = await new_account(services)
    receiver.statuses.append(500)
    message_id = await queue_event(services, account_id, receiver.url)
    window = timedelta(seconds=services.settings.webhook_retry_window_s)
    # Two seconds left: less than any delay (at least base/2 = 2.5 s).
    created = utcnow() - window + timedelta(seconds=2)
    await set_message(services, message_id, created_at=created)

    assert await deliver_due(services) == 1
    pending = await message(services, message_id)
    assert pending.state == "pending"
    assert abs((pending.next_attempt_at - (created + window)).total_seconds()) < 0.01


async def test_a_private_address_is_refused_without_allow_private(
    database_url: str, receiver: Receiver
) -> None:
    async with process(database_url, allow_private_urls=False) as services:
        account_id = await new_account(services)
        urls = [
            receiver.url,  # a literal loopback address
            f"http://localhost:{receiver.port}/hooks",  # a name that resolves to one
            "http://169.254.169.254/latest/meta-data",
            "ftp://example.com/hook",  # not http(s)
        ]
        ids = [await queue_event(services, account_id, url) for url in urls]
        assert await deliver_due(services) == len(ids)
        for message_id in ids:
            [attempt] = await attempts(services, message_id)
            assert (attempt.outcome, attempt.status_code) == ("refused", None), attempt.url
            # A refusal is a failed attempt like any other: retried until the window ends.
            refused = await message(services, message_id)
            assert refused.state == "pending"
            assert refused.next_attempt_at > utcnow()
    assert receiver.deliveries() == []


async def test_redirects_timeouts_and_network_errors_are_failed_attempts(
    database_url: str, receiver: Receiver
) -> None:
    async with process(database_url, webhook_timeout_s=0.5) as services:
        account_id = await new_account(services)
        receiver.statuses.append(302)
        redirected = await queue_event(services, account_id, receiver.url)
        unreachable = await queue_event(
            services, account_id, f"http://127.0.0.1:{closed_port()}/hook"
        )
        assert await deliver_due(services) == 2
        [attempt] = await attempts(services, redirected)
        assert (attempt.outcome, attempt.status_code) == ("http_error", 302)
        assert len(receiver.deliveries()) == 1  # the redirect was not followed
        [attempt] = await attempts(services, unreachable)
        assert (attempt.outcome, attempt.status_code) == ("network_error", None)

        receiver.delay_s = 2.0
        slow = await queue_event(services, account_id, receiver.url)
        assert await deliver_due(services) == 1
        [attempt] = await attempts(services, slow)
        assert (attempt.outcome, attempt.status_code) == ("timeout", None)
        assert 400 <= attempt.latency_ms < 2000
        for message_id in (redirected, unreachable, slow):
            assert (await message(services, message_id)).state == "pending"


async def test_only_a_little_of_the_receivers_answer_is_read(
    services: Services, receiver: Receiver
) -> None:
    account_id = await new_account(services)
    receiver.answer_body = b"x" * (webhook_delivery.RECEIVER_BODY_CAP + 1)
    message_id = await queue_event(services, account_id, receiver.url)
    assert await deliver_due(services) == 1
    # The answer was a 2xx, so the receiver has the message: delivered, body unread.
    assert (await message(services, message_id)).state == "delivered"
    [attempt] = await attempts(services, message_id)
    assert attempt.outcome == "delivered"


async def test_two_senders_never_send_one_attempt_twice(
    database_url: str, receiver: Receiver
) -> None:
    receiver.delay_s = 0.02
    async with process(database_url) as one, process(database_url) as two:
        account_id = await new_account(one)
        ids = {await queue_event(one, account_id, receiver.url) for _ in range(30)}
        sent = 0
        while True:
            counts = await asyncio.gather(
                deliver_due(one, limit=7), deliver_due(two, limit=7), deliver_due(one, limit=7)
            )
            sent += sum(counts)
            if not any(counts):
                break
        per_id = Counter(got.webhook_id for got in receiver.deliveries())
        assert set(per_id) == ids
        assert set(per_id.values()) == {1}
        assert sent == len(ids)
        async with one.sessions() as session:
            recorded = list(await session.scalars(select(WebhookAttempt)))
        assert len(recorded) == len(ids)
        assert {a.outcome for a in recorded} == {"delivered"}


async def test_a_leased_message_is_left_to_its_sender(
    services: Services, receiver: Receiver
) -> None:
    account_id = await new_account(services)
    message_id = await queue_event(services, account_id, receiver.url)
    await set_message(services, message_id, lease_until=utcnow() + timedelta(seconds=60))
    assert await deliver_due(services) == 0
    # The sender died: its lease runs out and the message is taken up again.
    await set_message(services, message_id, lease_until=utcnow() - timedelta(seconds=1))
    assert await deliver_due(services) == 1
    assert receiver.deliveries()[0].webhook_id == message_id


async def test_a_stale_attempt_does_not_decide_the_state(services: Services) -> None:
    account_id = await new_account(services)
    message_id = await queue_event(services, account_id, "https://example.com/hook")
    # Attempt 1 outlived its lease and attempt 2 was claimed meanwhile.
    await set_message(services, message_id, attempts=2)
    queued = await message(services, message_id)
    stale = Claimed(
        id=message_id,
        account_id=account_id,
        event=queued.event,
        url=queued.url,
        payload=queued.payload,
        attempt=1,
        created_at=queued.created_at,
        secrets=(),
    )
    await record_attempt(services, stale, AttemptResult("delivered", 200, 12))
    after = await message(services, message_id)
    assert (after.state, after.attempts) == ("pending", 2)
    [attempt] = await attempts(services, message_id)
    assert (attempt.attempt, attempt.outcome) == (1, "delivered")  # it happened all the same


async def test_after_a_rotation_deliveries_carry_both_signatures_for_a_day(
    services: Services, receiver: Receiver
) -> None:
    settings = services.settings
    account_id = await new_account(services)
    async with transaction(services.sessions) as session:
        old = await current_secret(session, settings, account_id)
        new = await rotate_secret(session, settings, account_id)
    assert new != old

    receiver.reset(secret=old)  # a receiver that has not switched yet
    first = await queue_event(services, account_id, receiver.url)
    await deliver_due(services)
    [got] = receiver.deliveries()
    assert got.verified
    assert got.webhook_id == first
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(got.body, got.headers)  # and one that has

    # A day later the previous secret no longer signs.
    async with transaction(services.sessions) as session:
        await session.execute(
            update(WebhookSigning)
            .where(WebhookSigning.account_id == account_id)
            .values(rotated_at=utcnow() - timedelta(hours=24, minutes=1))
        )
    receiver.reset(secret=old)
    second = await queue_event(services, account_id, receiver.url)
    await deliver_due(services)
    [got] = receiver.deliveries()
    assert not got.verified
    assert got.status == 401
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got.body, got.headers)
    [attempt] = await attempts(services, second)
    assert (attempt.outcome, attempt.status_code) == ("http_error", 401)


# Schedule and periodic work


class _Highest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


class _Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_the_retry_delay_doubles_with_full_jitter_up_to_a_cap() -> None:
    assert [retry_delay(n, 5.0, _Highest()) for n in range(1, 7)] == [5, 10, 20, 40, 80, 160]
    assert retry_delay(12, 5.0, _Highest()) == MAX_RETRY_DELAY_S == 7200
    assert retry_delay(500, 5.0, _Highest()) == MAX_RETRY_DELAY_S
    assert retry_delay(1, 5.0, _Lowest()) == 2.5  # never less than half the base
    assert retry_delay(30, 5.0, _Lowest()) == 2.5
    rng = random.Random(7)
    for attempt in range(1, 40):
        delay = retry_delay(attempt, 5.0, rng)
        assert 2.5 <= delay <= min(5.0 * 2 ** (attempt - 1), MAX_RETRY_DELAY_S)
    # A base above the cap is still honoured.
    assert retry_delay(3, 3600.0 * 3, _Highest()) == 3600.0 * 3


async def test_the_periodic_task_delivers_everything_due(
    services: Services, receiver: Receiver
) -> None:
    [task] = periodic_tasks(services)
    assert not task.per_process  # once per cluster
    assert 1 <= task.every_s <= 2
    account_id = await new_account(services)
    ids = {await queue_event(services, account_id, receiver.url) for _ in range(3)}
    await task.run()
    assert {got.webhook_id for got in receiver.deliveries()} == ids
    for message_id in ids:
        assert (await message(services, message_id)).state == "delivered"
