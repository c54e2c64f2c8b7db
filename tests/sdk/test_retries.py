"""Retries with one Idempotency-Key per call, against running services:

* the service itself failing (its fake OpenRouter upstream rejects twice: 502 twice, then 200);
* the service succeeding and charging, but its answer lost on the way (a proxy answers 503 with
  Retry-After twice): the retry replays the first result, and the charge is never doubled.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.fakes.openrouter import Status
from tests.sdk.conftest import (
    STARTING_CREDITS,
    LossyProxy,
    Recorder,
    RunningService,
    photo,
)


def _charged(client: Any) -> int:
    """Credits spent per the ledger: usage entries (reservations) less their releases."""
    entries = client.billing.transactions(limit=100).data
    return -sum(t.credits for t in entries if t.kind in ("usage", "release"))


def test_upstream_failing_twice_is_retried_with_one_key_and_charged_once(
    sdk_openrouter_service: tuple[RunningService, Any], recorder: Recorder
) -> None:
    from alttext_client import AltText

    service, fake = sdk_openrouter_service
    fake.reset()
    fake.enqueue(Status(400, "Scripted failure 1"), Status(400, "Scripted failure 2"))
    account = service.new_account()
    http = httpx.Client(event_hooks={"request": [recorder.sync_hook]})
    with AltText(api_key=account.key, base_url=service.base_url, http_client=http) as client:
        result = client.alt_text.create(photo(seed=30))
        assert result.usage.credits == 1
        keys = recorder.keys()
        assert len(keys) == 3  # 502, 502, 200
        assert keys[0] is not None
        assert len(set(keys)) == 1
        assert len(fake.chat_requests) == 3
        assert client.account.get().credits_remaining == STARTING_CREDITS - 1
        assert _charged(client) == 1
    http.close()


def test_without_retries_the_upstream_error_is_raised(
    sdk_openrouter_service: tuple[RunningService, Any],
) -> None:
    from alttext_client import AltText, UpstreamError

    service, fake = sdk_openrouter_service
    fake.reset()
    fake.enqueue(Status(400, "Scripted failure"))
    account = service.new_account()
    with AltText(api_key=account.key, base_url=service.base_url, max_retries=0) as client:
        with pytest.raises(UpstreamError) as caught:
            client.alt_text.create(photo(seed=31))
        assert (caught.value.status, caught.value.code) == (502, "upstream_error")
        assert caught.value.request_id
        assert client.account.get().credits_remaining == STARTING_CREDITS


def test_lost_answers_are_retried_after_retry_after_and_never_charged_twice(
    sdk_service: RunningService, lossy_proxy: LossyProxy
) -> None:
    from alttext_client import AltText

    account = sdk_service.new_account()
    lossy_proxy.lose[0] = 2
    with AltText(api_key=account.key, base_url=lossy_proxy.base_url) as client:
        started = time.monotonic()
        result = client.alt_text.create(photo(seed=32))
        waited = time.monotonic() - started
        posts = [s for s in lossy_proxy.seen if s[0] == "/v1/alt-text"]
        assert [status for _, _, status in posts] == [503, 503, 200]
        assert len({key for _, key, _ in posts}) == 1
        assert posts[0][1]
        assert waited >= 2.0  # Retry-After: 1, twice
        # The service ran the first attempt and charged it; the retries replayed it.
        assert client.account.get().credits_remaining == STARTING_CREDITS - 1
        assert _charged(client) == 1
        assert result.credits_remaining == STARTING_CREDITS - 1


def test_retries_stop_after_max_retries(
    sdk_service: RunningService, lossy_proxy: LossyProxy
) -> None:
    from alttext_client import AltText, ServiceUnavailableError

    account = sdk_service.new_account()
    lossy_proxy.lose[0] = 5
    with AltText(api_key=account.key, base_url=lossy_proxy.base_url, max_retries=1) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            client.alt_text.batch([photo(seed=33)])
        assert caught.value.retry_after == 1.0
    assert [s[2] for s in lossy_proxy.seen] == [503, 503]
    assert len({s[1] for s in lossy_proxy.seen}) == 1


async def test_async_client_retries_with_one_key_and_charges_once(
    sdk_openrouter_service: tuple[RunningService, Any],
    sdk_service: RunningService,
    lossy_proxy: LossyProxy,
    recorder: Recorder,
) -> None:
    from alttext_client import AsyncAltText

    service, fake = sdk_openrouter_service
    fake.reset()
    fake.enqueue(Status(400, "Scripted failure 1"), Status(400, "Scripted failure 2"))
    account = service.new_account()
    http = httpx.AsyncClient(event_hooks={"request": [recorder.async_hook]})
    async with AsyncAltText(
        api_key=account.key, base_url=service.base_url, http_client=http
    ) as client:
        result = await client.alt_text.create(photo(seed=34))
        assert result.usage.credits == 1
        keys = recorder.keys()
        assert len(keys) == 3
        assert keys[0]
        assert len(set(keys)) == 1
        assert (await client.account.get()).credits_remaining == STARTING_CREDITS - 1
    await http.aclose()

    other = sdk_service.new_account()
    lossy_proxy.lose[0] = 2
    async with AsyncAltText(api_key=other.key, base_url=lossy_proxy.base_url) as client:
        batch = await client.alt_text.batch([photo(seed=35), photo(seed=36)])
        assert batch.succeeded == 2
        posts = [s for s in lossy_proxy.seen if s[0] == "/v1/alt-text/batch"]
        assert [s[2] for s in posts] == [503, 503, 200]
        assert len({s[1] for s in posts}) == 1
        ledger = await client.billing.transactions(limit=100)
        spent = -sum(t.credits for t in ledger.data if t.kind in ("usage", "release"))
        assert spent == 2  # two items, charged once each
        assert (await client.account.get()).credits_remaining == STARTING_CREDITS - 2
