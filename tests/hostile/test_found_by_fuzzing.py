"""What Schemathesis found (tests/api/test_fuzz_openapi.py), each pinned down on its own."""

from __future__ import annotations

import pytest

from tests.conftest import Account, Service, ServiceFactory
from tests.fakes.stripe import DEFAULT_WEBHOOK_SECRET, sign


@pytest.mark.parametrize(
    "query",
    [
        {"to": "0001-01-01"},  # 500: the default `from`, 29 days earlier, was before year 1
        {"from": "0001-01-01", "to": "0001-01-01", "granularity": "month"},
        {"from": "9999-12-31", "to": "9999-12-31"},  # 500: the day after was past year 9999
    ],
)
async def test_usage_at_the_ends_of_the_calendar(
    service: Service, account: Account, query: dict[str, str]
) -> None:
    response = await service.client.get("/v1/usage", headers=account.headers, params=query)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize("day", ["2026-01-31T00:00:00Z", "2026-W05-1", "20260131", "2026-1-31"])
async def test_usage_takes_dates_written_as_documented_only(
    service: Service, account: Account, day: str
) -> None:
    # The document says `format: date` (YYYY-MM-DD); a timestamp's date part used to pass.
    response = await service.client.get("/v1/usage", headers=account.headers, params={"to": day})
    assert response.status_code == 422
    assert response.json()["detail"] == "'to' must be a date such as 2026-01-31."


async def test_a_stripe_event_that_is_not_utf8_is_a_400(service_factory: ServiceFactory) -> None:
    # The Stripe SDK decodes the body before checking the signature: this was a 500.
    async with service_factory(stripe_webhook_secret=DEFAULT_WEBHOOK_SECRET) as service:
        body = b"\xf2\xe2R\\"
        response = await service.client.post(
            "/webhooks/stripe",
            content=body,
            headers={
                "Stripe-Signature": "t=1,v1=00",
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Invalid webhook signature"
        # Signed properly, it is refused too: it cannot be a Stripe event.
        response = await service.client.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": sign(body, DEFAULT_WEBHOOK_SECRET)},
        )
        assert response.status_code == 400
        assert response.json()["detail"] == "The payload is not UTF-8, so it is not a Stripe event."


async def test_a_malformed_cursor_is_refused_for_csv_too(
    service: Service, account: Account
) -> None:
    created = await service.client.post(
        "/v1/jobs",
        headers=account.headers,
        json={"items": [{"image_url": "https://example.com/a.png"}]},
    )
    assert created.status_code == 202
    url = f"/v1/jobs/{created.json()['id']}/results"
    for params in ({"format": "csv", "starting_after": "nope"}, {"starting_after": "nope"}):
        response = await service.client.get(url, headers=account.headers, params=params)
        assert response.status_code == 400, params
        assert response.json()["detail"] == "starting_after must be an item id (item_…)."
    csv = await service.client.get(url, headers=account.headers, params={"format": "csv"})
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/account", "DELETE, GET, PATCH"),
        ("OPTIONS", "/v1/account/restrict", "DELETE, POST"),
        ("PUT", "/v1/keys", "GET, POST"),
        ("PATCH", "/v1/jobs", "GET, POST"),
        ("POST", "/v1/jobs/job_0000000000000000000000000a", "DELETE, GET"),
        ("GET", "/v1/keys/key_0000000000000000000000000a", "DELETE"),
        ("GET", "/v1/alt-text", "POST"),
    ],
)
async def test_405_names_every_method_of_the_resource(
    service: Service, account: Account, method: str, path: str, allow: str
) -> None:
    # Starlette named the methods of the first route on the path only: `Allow: GET` for
    # /v1/account, which takes PATCH and DELETE too.
    response = await service.client.request(method, path, headers=account.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("defaults", "field"),
    [
        ({"max_length": 5}, "defaults.max_length"),
        ({"language": "xx"}, "defaults.language"),
        ({"colour": "red"}, "defaults.colour"),
        (False, None),
        ([], None),
    ],
)
async def test_bad_batch_defaults_refuse_the_batch(
    service: Service, account: Account, defaults: object, field: str | None
) -> None:
    # They failed every item alone in a 200 (`false` and `[]` even passed as no defaults);
    # the document says `defaults` is AltTextOptions or null, as for /v1/jobs.
    response = await service.client.post(
        "/v1/alt-text/batch",
        headers=account.headers,
        json={
            "items": [{"id": "a", "image_url": "https://example.com/a.png"}],
            "defaults": defaults,
        },
    )
    assert response.status_code == 422, response.text
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [field]
    shown = await service.client.get("/v1/account", headers=account.headers)
    assert shown.json()["credits_remaining"] == 100
