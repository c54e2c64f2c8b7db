"""Bulk jobs end to end in one process (the embedded in-memory broker): create, run, read,
results as JSON and CSV, cancel, out of credits and resume, isolation between accounts."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from alttext.billing.ledger import grant
from alttext.db import transaction
from tests.conftest import Service, openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.openrouter import FakeOpenRouter
from tests.jobs.helpers import FAST_JOBS, ledger_sum, png, wait_for, wait_status

pytestmark = pytest.mark.anyio


def _items(host: FakeImageHost, n: int, *, prefix: str = "img") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        path = f"/{prefix}{i}.png"
        host.image(path, png(i))
        out.append({"id": f"{prefix}-{i}", "image_url": host.url(path)})
    return out


async def _balance(service: Service, headers: dict[str, str]) -> int:
    response = await service.client.get("/v1/account", headers=headers)
    return int(response.json()["credits_remaining"])


async def test_a_job_runs_every_item_and_charges_only_successes(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    with running_image_host() as host:
        async with service_factory(**openrouter_settings(fake_openrouter, **FAST_JOBS)) as svc:
            account = await svc.create_account(credits=100)
            items = _items(host, 12)
            items.append({"id": "gone", "image_url": host.url("/missing.png")})
            items[0]["context"] = "Product page for a teal ceramic mug."
            created = await svc.client.post(
                "/v1/jobs",
                headers=account.headers,
                json={"items": items, "defaults": {"language": "en", "max_length": 100}},
            )
            assert created.status_code == 202, created.text
            job = created.json()
            assert job["id"].startswith("job_")
            assert created.headers["location"] == f"/v1/jobs/{job['id']}"
            assert job["status"] == "queued"
            assert job["total"] == 13

            done = await wait_status(svc.client, job["id"], account.headers, ("completed",))
            assert done["counts"]["succeeded"] == 12
            assert done["counts"]["failed"] == 1
            assert done["counts"]["pending"] == done["counts"]["running"] == 0
            assert done["credits_spent"] == 12
            assert done["finished_at"] is not None
            assert await _balance(svc, account.headers) == 88
            sessions = svc.app.state.services.sessions
            assert await ledger_sum(sessions, account.id) == 88

            page = await svc.client.get(
                f"/v1/jobs/{job['id']}/results", headers=account.headers, params={"limit": 5}
            )
            assert page.status_code == 200
            body = page.json()
            assert body["has_more"] is True
            assert len(body["data"]) == 5
            assert [row["id"] for row in body["data"]] == [f"img-{i}" for i in range(5)]
            first = body["data"][0]
            assert first["status"] == "succeeded"
            assert first["alt_text"]
            assert first["image_url"] == items[0]["image_url"]
            rest = await svc.client.get(
                f"/v1/jobs/{job['id']}/results",
                headers=account.headers,
                params={"limit": 100, "starting_after": body["data"][-1]["item_id"]},
            )
            rows = rest.json()["data"]
            assert len(rows) == 8
            assert rest.json()["has_more"] is False
            failed = rows[-1]
            assert failed["id"] == "gone"
            assert failed["status"] == "failed"
            assert failed["problem"]["code"] == "image_fetch_failed"
            assert failed["alt_text"] is None

            download = await svc.client.get(
                f"/v1/jobs/{job['id']}/results", headers=account.headers, params={"format": "csv"}
            )
            assert download.status_code == 200
            assert download.headers["content-type"].startswith("text/csv")
            table = list(csv.DictReader(io.StringIO(download.text)))
            assert len(table) == 13
            assert table[0]["status"] == "succeeded"
            assert table[0]["alt_text"]
            assert "image_fetch_failed" in table[-1]["problem"]

            listed = await svc.client.get("/v1/jobs", headers=account.headers)
            assert [j["id"] for j in listed.json()["data"]] == [job["id"]]


async def test_another_accounts_job_is_not_found(service: Service) -> None:
    owner = await service.create_account("owner@example.com")
    other = await service.create_account("other@example.com")
    created = await service.client.post(
        "/v1/jobs",
        headers=owner.headers,
        json={"items": [{"image_url": "https://images.example/a.png"}]},
    )
    job_id = created.json()["id"]
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/results"),
        ("GET", f"/v1/jobs/{job_id}/results?format=csv"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ):
        response = await service.client.request(method, path, headers=other.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"
    assert (await service.client.get("/v1/jobs", headers=other.headers)).json()["data"] == []
    assert (await service.client.get("/v1/jobs/job_nope", headers=owner.headers)).status_code == 404


async def test_bad_jobs_are_refused_with_the_field_named(service: Service) -> None:
    account = await service.create_account()
    cases: list[tuple[Any, str | None]] = [
        ({"items": [{"image_url": "https://x.example/a.png", "language": "xx-nope"}]}, "items"),
        ({"items": [{"image_url": "ftp://x.example/a.png"}]}, "items[0].image_url"),
        ({"items": [{"image_url": "http://127.0.0.1/a.png"}]}, "items[0].image_url"),
        ({"items": [], "source": {"url": "https://x.example/"}}, None),
        ({"source": {"url": "https://x.example/"}, "items": [{"image_url": "https://a/b"}]}, None),
        ({}, None),
        (
            {
                "items": [{"image_url": "https://x.example/a.png"}],
                "webhook_url": "http://10.0.0.1/",
            },
            "webhook_url",
        ),
        ({"items": [{"image_url": "https://x.example/a.png", "colour": "red"}]}, "items"),
        ({"items": [{"image_url": "https://x.example/a.png"}] * 10_001}, "items"),
    ]
    for body, field in cases:
        response = await service.client.post("/v1/jobs", headers=account.headers, json=body)
        assert response.status_code in (400, 422), body if len(str(body)) < 300 else field
        problem = response.json()
        assert problem["code"] == "invalid_request"
        if field is not None:
            fields = [e["field"] for e in problem["errors"]]
            assert any(f.startswith(field) for f in fields), (field, fields)
    wrong_type = await service.client.post(
        "/v1/jobs", headers={**account.headers, "content-type": "text/plain"}, content=b"{}"
    )
    assert wrong_type.status_code == 415
    broken = await service.client.post(
        "/v1/jobs",
        headers={**account.headers, "content-type": "application/json"},
        content=b"{not json",
    )
    assert broken.status_code == 400
    assert (await service.client.get("/v1/jobs", headers=account.headers)).json()["data"] == []


async def test_the_same_idempotency_key_returns_the_same_job(service: Service) -> None:
    account = await service.create_account()
    body = {"items": [{"image_url": "https://images.example/a.png"}]}
    headers = {**account.headers, "Idempotency-Key": "job-create-1"}
    first = await service.client.post("/v1/jobs", headers=headers, json=body)
    again = await service.client.post("/v1/jobs", headers=headers, json=body)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await service.client.post(
        "/v1/jobs", headers=headers, json={"items": [{"image_url": "https://images.example/b"}]}
    )
    assert other.status_code == 409
    listed = (await service.client.get("/v1/jobs", headers=account.headers)).json()["data"]
    assert len(listed) == 1


async def test_out_of_credits_pauses_and_a_grant_resumes(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, **FAST_JOBS, job_concurrency_per_account=1)
    with running_image_host() as host:
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=3)
            created = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": _items(host, 8)}
            )
            job_id = created.json()["id"]
            paused = await wait_status(svc.client, job_id, account.headers, ("paused",))
            assert paused["counts"]["succeeded"] == 3
            assert paused["counts"]["pending"] == 5
            assert paused["credits_spent"] == 3
            assert await _balance(svc, account.headers) == 0

            async with transaction(svc.app.state.services.sessions) as session:
                await grant(session, account.id, 10, reason="bought more")
            done = await wait_status(svc.client, job_id, account.headers, ("completed",))
            assert done["counts"]["succeeded"] == 8
            assert done["credits_spent"] == 8
            assert await _balance(svc, account.headers) == 5
            assert await ledger_sum(svc.app.state.services.sessions, account.id) == 5


async def test_cancel_stops_pending_items_and_reports_what_was_done(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, **FAST_JOBS, job_concurrency_per_account=1)
    with running_image_host() as host:
        items = _items(host, 2)
        host.drip("/slow.png", interval_s=0.2)  # keeps the third item running a while
        items.append({"id": "slow", "image_url": host.url("/slow.png")})
        items += _items(host, 20, prefix="later")
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=100)
            created = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": items}
            )
            job_id = created.json()["id"]
            await wait_status(svc.client, job_id, account.headers, ("running",))

            async def slow_started() -> bool:
                return bool(host.requests_to("/slow.png"))

            await wait_for(slow_started)
            cancelled = await svc.client.delete(f"/v1/jobs/{job_id}", headers=account.headers)
            assert cancelled.status_code == 200
            job = cancelled.json()
            assert job["status"] == "cancelled"
            assert job["finished_at"]
            assert job["counts"]["cancelled"] == 20
            assert job["counts"]["succeeded"] == 2
            # No later item ever starts.
            again = await svc.client.delete(f"/v1/jobs/{job_id}", headers=account.headers)
            assert again.json()["status"] == "cancelled"
            assert not any(r.path.startswith("/later") for r in host.requests)


async def test_a_running_job_leaves_the_accounts_interactive_slots_free(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    # One interactive slot; a job holding two slow items must not take it.
    settings = openrouter_settings(
        fake_openrouter, **FAST_JOBS, max_concurrent_per_account=1, job_concurrency_per_account=2
    )
    with running_image_host() as host:
        host.drip("/slow-a.png", interval_s=0.3)
        host.drip("/slow-b.png", interval_s=0.3)
        host.image("/now.png", png(9))
        async with service_factory(**settings) as svc:
            account = await svc.create_account(credits=10)
            items = [{"image_url": host.url(p)} for p in ("/slow-a.png", "/slow-b.png")]
            created = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": items}
            )
            job_id = created.json()["id"]

            async def both_running() -> bool:
                job = await svc.client.get(f"/v1/jobs/{job_id}", headers=account.headers)
                return bool(job.json()["counts"]["running"] == 2)

            await wait_for(both_running)
            now = await svc.client.post(
                "/v1/alt-text", headers=account.headers, json={"image_url": host.url("/now.png")}
            )
            assert now.status_code == 200, now.text
            await svc.client.delete(f"/v1/jobs/{job_id}", headers=account.headers)
