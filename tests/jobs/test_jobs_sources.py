"""Source jobs end to end (crawl a local site through the API) and a job's signed webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks import Webhook

from alttext.billing.ledger import grant
from alttext.db import transaction
from tests.conftest import openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import FakeOpenRouter
from tests.jobs.helpers import FAST_JOBS, png, wait_for, wait_status
from tests.jobs.site_server import Site
from tests.jobs.webhook_receiver import run_receiver

pytestmark = pytest.mark.anyio

# Fetching cdn.example.org fails fast here (no network): those items fail, as they should.
SETTINGS = {**FAST_JOBS, "fetch_timeout_s": 3.0, "webhook_retry_base_s": 0.2}


def _serve_images(site: Site) -> None:
    for i, name in enumerate(
        ("logo.png", "sourdough.jpg", "divider.png", "search.svg", "shop-2x.jpg", "about-de.png")
    ):
        site.host.image(f"/img/{name}", png(i))


async def _results(svc: Any, headers: dict[str, str], job_id: str) -> dict[str, dict[str, Any]]:
    response = await svc.client.get(
        f"/v1/jobs/{job_id}/results", headers=headers, params={"limit": 1000}
    )
    assert response.status_code == 200
    rows = response.json()["data"]
    by_name = {row["image_url"].rsplit("/", 1)[-1].split("#")[0]: row for row in rows}
    assert len(by_name) == len(rows), "an image URL was described twice"
    return by_name


async def test_a_crawled_site_becomes_items_with_roles_and_kept_alts(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    with running_image_host() as host:
        site = Site(host)
        _serve_images(site)
        async with service_factory(**openrouter_settings(fake_openrouter, **SETTINGS)) as svc:
            account = await svc.create_account(credits=100)
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={"source": {"url": site.url("/index.html"), "max_pages": 4}},
            )
            assert created.status_code == 202, created.text
            job = await wait_status(
                svc.client, created.json()["id"], account.headers, ("completed",)
            )
            assert job["source"]["crawl_state"] == "done"
            assert 2 <= job["source"]["pages_crawled"] <= 4
            rows = await _results(svc, account.headers, job["id"])

            logo = rows["logo.png"]  # on two pages: described once
            assert logo["status"] == "succeeded"
            assert logo["role"] == "functional"
            assert logo["page_url"] == site.url("/index.html")
            kept = rows["sourdough.jpg"]
            assert kept["status"] == "skipped"
            assert kept["existing_alt"] == "A round sourdough loaf with a floured crust"
            assert kept["alt_text"] is None
            decorative = rows["divider.png"]
            assert decorative["status"] == "skipped"
            assert decorative["existing_alt"] == ""
            assert rows["quay.png"]["status"] == "failed"  # another host, unreachable here
            assert job["counts"]["skipped"] >= 2
            assert job["credits_spent"] == job["counts"]["succeeded"]
            assert site.fetched("/private/secret.html") == 0  # robots.txt


async def test_overwrite_replaces_alts_but_keeps_decorative_markings(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    with running_image_host() as host:
        site = Site(host)
        _serve_images(site)
        async with service_factory(**openrouter_settings(fake_openrouter, **SETTINGS)) as svc:
            account = await svc.create_account(credits=100)
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={
                    "source": {"url": site.url("/index.html"), "max_pages": 1},
                    "overwrite": True,
                },
            )
            job = await wait_status(
                svc.client, created.json()["id"], account.headers, ("completed",)
            )
            assert job["source"]["pages_crawled"] == 1
            rows = await _results(svc, account.headers, job["id"])
            assert rows["sourdough.jpg"]["status"] == "succeeded"
            assert rows["sourdough.jpg"]["existing_alt"].startswith("A round sourdough")
            assert rows["divider.png"]["status"] == "skipped"


async def test_an_unreachable_source_fails_the_job_and_says_why(
    service_factory: Callable[..., Any],
) -> None:
    with running_image_host() as host:
        async with service_factory(**SETTINGS) as svc:
            account = await svc.create_account()
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={"source": {"url": host.url("/nothing-here.html")}},
            )
            job = await wait_status(svc.client, created.json()["id"], account.headers, ("failed",))
            assert job["error"]
            assert "404" in job["error"]
            assert job["source"]["crawl_state"] == "failed"
            assert job["total"] == 0
            assert job["credits_spent"] == 0


async def test_job_events_reach_a_verifying_receiver_after_retries(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, **SETTINGS, job_concurrency_per_account=1)
    with running_image_host() as host, run_receiver() as receiver:
        host.image("/a.png", png(1))
        host.image("/b.png", png(2))
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=1)
            secret = (await svc.client.get("/v1/webhooks/secret", headers=account.headers)).json()[
                "secret"
            ]
            receiver.reset(secret)
            receiver.statuses.extend([500, 503])  # the first two deliveries fail
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={
                    "items": [{"image_url": host.url("/a.png")}, {"image_url": host.url("/b.png")}],
                    "webhook_url": receiver.url,
                },
            )
            job_id = created.json()["id"]
            await wait_status(svc.client, job_id, account.headers, ("paused",))

            async def paused_delivered() -> bool:
                return any(d.status == 200 for d in receiver.deliveries())

            await wait_for(paused_delivered, timeout=30)
            tries = receiver.deliveries()
            assert [d.status for d in tries] == [500, 503, 200]
            assert len({d.webhook_id for d in tries}) == 1  # one event, retried
            assert all(d.verified for d in tries)
            event = json.loads(tries[-1].body)
            assert event["type"] == "job.paused"
            assert event["data"]["job"]["id"] == job_id
            assert event["data"]["job"]["status"] == "paused"
            Webhook(secret).verify(tries[-1].body, tries[-1].headers)

            async with transaction(svc.app.state.services.sessions) as session:
                await grant(session, account.id, 5, reason="top-up")
            await wait_status(svc.client, job_id, account.headers, ("completed",))

            async def completed_delivered() -> bool:
                return any(
                    json.loads(d.body)["type"] == "job.completed" for d in receiver.deliveries()
                )

            await wait_for(completed_delivered, timeout=30)
            done = [json.loads(d.body) for d in receiver.deliveries()][-1]
            assert done["data"]["job"]["counts"]["succeeded"] == 2

            # Each attempt is recorded once the receiver has answered: a moment after it got it.
            attempts: list[dict[str, Any]] = []

            async def completed_recorded() -> bool:
                nonlocal attempts
                listed = await svc.client.get("/v1/webhooks/deliveries", headers=account.headers)
                attempts = listed.json()["data"]
                return any(a["event"] == "job.completed" for a in attempts)

            await wait_for(completed_recorded, timeout=30)
            assert [a["outcome"] for a in attempts][-3:] == [
                "delivered",
                "http_error",
                "http_error",
            ]
            assert {a["event"] for a in attempts} == {"job.paused", "job.completed"}
            assert all(a["job_id"] == job_id for a in attempts)
