"""Account, keys, usage, billing and typed errors of both clients against a running service."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.processes import free_port
from tests.sdk.conftest import STARTING_CREDITS, Credentials, ImageHost, RunningService, photo


def test_account_keys_usage_and_transactions(
    sdk_service: RunningService, account: Credentials
) -> None:
    from alttext_client import AltText, AuthenticationError, NotFoundError

    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        me = client.account.get()
        assert (me.id, me.email, me.credits_remaining) == (
            account.account_id,
            account.email,
            STARTING_CREDITS,
        )
        client.alt_text.create(photo(seed=20))

        keys = client.keys.list()
        assert [k.id for k in keys.data] == [account.key_id]
        assert not hasattr(keys.data[0], "secret")
        created = client.keys.create(name="ci")
        assert created.secret.startswith("at_live_")
        assert created.name == "ci"
        assert {k.id for k in client.keys.list().data} == {account.key_id, created.id}

        with AltText(api_key=created.secret, base_url=sdk_service.base_url) as second:
            assert second.account.get().id == account.account_id
            client.keys.revoke(created.id)
            with pytest.raises(AuthenticationError):
                second.account.get()
        with pytest.raises(NotFoundError) as not_found:
            client.keys.revoke("key_01aaaaaaaaaaaaaaaaaaaaaaaa")
        assert not_found.value.status == 404

        today = datetime.now(UTC).date()
        usage = client.usage.get(today, today, granularity="day")
        assert usage.totals.credits == 1
        assert usage.totals.succeeded == 1
        assert client.usage.get().totals.requests == 1

        ledger = client.billing.transactions(limit=10)
        kinds = [t.kind for t in ledger.data]
        assert "grant" in kinds
        assert kinds.count("usage") == 1
        assert sum(t.credits for t in ledger.data) == STARTING_CREDITS - 1
        first = client.billing.transactions(limit=1)
        assert first.has_more
        rest = client.billing.transactions(limit=10, starting_after=first.data[0].id)
        assert [t.id for t in rest.data] == [t.id for t in ledger.data[1:]]
        grants = client.billing.transactions(kind="grant")
        assert [t.kind for t in grants.data] == ["grant"]


def test_bad_key_is_authentication_error_with_request_id(sdk_service: RunningService) -> None:
    from alttext_client import AltText, AltTextError, AuthenticationError

    client = AltText(api_key="at_live_not-a-real-key", base_url=sdk_service.base_url)
    with client, pytest.raises(AuthenticationError) as caught:
        client.account.get()
    err = caught.value
    assert isinstance(err, AltTextError)
    assert (err.status, err.code) == (401, "unauthorized")
    assert err.request_id is not None
    assert err.request_id.startswith("req_")
    assert err.title
    assert err.detail
    assert err.request_id in str(err)


def test_zero_credits_is_insufficient_credits_and_not_retried(
    sdk_service: RunningService,
) -> None:
    from alttext_client import AltText, InsufficientCreditsError

    broke = sdk_service.new_account(credits=0)
    seen: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [seen.append]})
    with AltText(api_key=broke.key, base_url=sdk_service.base_url, http_client=http) as client:
        with pytest.raises(InsufficientCreditsError) as caught:
            client.alt_text.create(photo(seed=21))
        assert caught.value.status == 402
        assert caught.value.code == "insufficient_credits"
        assert caught.value.request_id
        assert len(seen) == 1  # a 4xx is final
        assert client.account.get().credits_remaining == 0
    http.close()


def test_request_errors_are_typed(
    sdk_service: RunningService, account: Credentials, image_host: ImageHost
) -> None:
    from alttext_client import (
        AltText,
        IdempotencyConflictError,
        ImageFetchError,
        InvalidRequestError,
        UnsupportedMediaTypeError,
    )

    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        with pytest.raises(InvalidRequestError) as invalid:
            client.alt_text.create(photo(seed=22), max_length=5)
        assert invalid.value.status == 422
        assert invalid.value.code == "invalid_request"
        assert [e["field"] for e in invalid.value.errors] == ["max_length"]

        with pytest.raises(UnsupportedMediaTypeError) as unsupported:
            client.alt_text.create(b"plain text, not an image")
        assert isinstance(unsupported.value, InvalidRequestError)
        assert unsupported.value.status == 415

        with pytest.raises(ImageFetchError) as fetch:
            client.alt_text.create(f"{image_host.base_url}/nope.png")
        assert fetch.value.status == 400
        assert fetch.value.code == "image_fetch_failed"

        with pytest.raises(InvalidRequestError) as checkout:
            client.billing.checkout(1)
        assert checkout.value.errors
        assert checkout.value.errors[0]["field"] == "amount_usd"

        client.alt_text.create(photo(seed=23), idempotency_key="sdk-conflict-1")
        with pytest.raises(IdempotencyConflictError) as conflict:
            client.alt_text.create(photo(seed=24), idempotency_key="sdk-conflict-1")
        assert conflict.value.status == 409
        assert client.account.get().credits_remaining == STARTING_CREDITS - 1


def test_unreachable_service_is_connection_error_after_retries() -> None:
    from alttext_client import AltText, APIConnectionError

    seen: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [seen.append]})
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = AltText(api_key="at_live_x", base_url=url, max_retries=2, http_client=http)
    with client, pytest.raises(APIConnectionError):
        client.alt_text.create(photo())
    http.close()
    assert len(seen) == 3
    assert len({r.headers["idempotency-key"] for r in seen}) == 1


def test_configuration_from_the_environment(
    sdk_service: RunningService, account: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alttext_client import AltText

    monkeypatch.setenv("ALTTEXT_API_KEY", account.key)
    monkeypatch.setenv("ALTTEXT_API_URL", sdk_service.base_url + "/v1/")
    with AltText() as client:
        assert client.base_url == sdk_service.base_url
        assert client.account.get().id == account.account_id
    monkeypatch.delenv("ALTTEXT_API_KEY")
    with pytest.raises(ValueError, match="ALTTEXT_API_KEY"):
        AltText()


async def test_async_account_keys_usage_and_errors(
    sdk_service: RunningService, account: Credentials
) -> None:
    from alttext_client import AsyncAltText, AuthenticationError, InsufficientCreditsError

    async with AsyncAltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        me = await client.account.get()
        assert me.credits_remaining == STARTING_CREDITS
        created = await client.keys.create()
        assert created.secret.startswith("at_live_")
        assert len((await client.keys.list()).data) == 2
        await client.keys.revoke(created.id)
        listed = {k.id: k for k in (await client.keys.list()).data}
        assert listed[created.id].revoked_at is not None
        usage = await client.usage.get(granularity="month")
        assert usage.granularity == "month"
        ledger = await client.billing.transactions()
        assert [t.kind for t in ledger.data] == ["grant"]

    async with AsyncAltText(api_key="at_live_nope", base_url=sdk_service.base_url) as bad:
        with pytest.raises(AuthenticationError) as caught:
            await bad.models.list()
        assert caught.value.request_id

    broke = sdk_service.new_account(credits=0)
    async with AsyncAltText(api_key=broke.key, base_url=sdk_service.base_url) as client:
        with pytest.raises(InsufficientCreditsError):
            await client.alt_text.create(photo(seed=25))
