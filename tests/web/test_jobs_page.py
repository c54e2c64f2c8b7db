"""``/dashboard/jobs`` without a browser: the list with progress, the downloads (the API's CSV,
byte for byte), cancelling after a confirmation, starting a job from the form with every
problem named next to its field, the webhook signing secret (reveal, rotate) and the delivery
attempts; and another account's job is a 404 everywhere."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import select, update

from alttext.accounts.service import create_key
from alttext.db import transaction, utcnow
from alttext.ids import new_id
from alttext.jobs import service as jobs
from alttext.jobs.schemas import JobCreate, JobOut
from alttext.jobs.webhooks import current_secret
from alttext.jobstore.models import Job, JobItem, WebhookAttempt, WebhookMessage
from tests.web.support import Web, csrf_of, hidden, web_service

# No sweep during a test: a job made here stays as the test leaves it.
QUIET = {"job_sweep_s": 600.0}
URLS = [f"https://images.example/photo-{i}.png" for i in range(3)]


@pytest.fixture
async def web(service_factory: Callable[..., Any]) -> AsyncIterator[Web]:
    async with web_service(service_factory, **QUIET) as w:
        yield w


def services(web: Web) -> Any:
    return web.svc.app.state.services


async def make_job(web: Web, account_id: str, spec: dict[str, Any] | None = None) -> JobOut:
    """A job straight through the service, not woken: it stays queued."""
    svc = services(web)
    return await jobs.create_job(
        svc.sessions,
        svc.settings,
        account_id=account_id,
        key_id=None,
        spec=JobCreate.model_validate(spec or {"items": [{"image_url": u} for u in URLS]}),
    )


async def finish_two(web: Web, job_id: str) -> None:
    """The first item succeeded, the second failed; the third is still pending."""
    problem = {
        "type": "https://alttext.dev/errors/image_fetch_failed",
        "title": "Image fetch failed",
        "status": 400,
        "detail": "The image URL answered 404.",
        "code": "image_fetch_failed",
        "request_id": "req_x",
    }
    async with transaction(web.sessions) as session:
        items = list(
            (
                await session.execute(
                    select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.seq)
                )
            ).scalars()
        )
        items[0].status, items[0].alt_text, items[0].decorative = "succeeded", "A teal mug.", False
        items[0].role, items[0].needs_review, items[0].review_reasons = "informative", True, '["x"]'
        items[0].credits, items[0].finished_at = 1, utcnow()
        items[1].status, items[1].problem = "failed", json.dumps(problem)
        items[1].finished_at = utcnow()
        await session.execute(
            update(Job).where(Job.id == job_id).values(status="running", credits_spent=1)
        )


def one(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.S)
    assert match, pattern
    return match.group(1)


# -- the list and the downloads ----------------------------------------------------------------


async def test_anonymous_visits_go_to_the_login_page(web: Web) -> None:
    for path in ("/dashboard/jobs", "/dashboard/jobs/job_00000000000000000000000000/results.csv"):
        r = await web.get(path)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=" + path


async def test_the_list_shows_each_job_with_its_progress_in_words(web: Web) -> None:
    account_id = await web.open_account("list@example.com")
    empty = await web.get("/dashboard/jobs")
    assert empty.status_code == 200
    assert "No jobs yet" in empty.text
    assert empty.text.count("<h1>") == 1
    assert "<main" in empty.text
    assert '<a href="/dashboard/jobs" aria-current="page">Jobs</a>' in empty.text
    nav = one(r'<nav aria-label="Main">(.*?)</nav>', empty.text)
    names = re.findall(r">([^<>]+)</a>", nav)
    assert names == ["Overview", "API keys", "Credits", "Try it", "Jobs", "Account", "Docs"]
    assert "whsec_" not in empty.text  # the secret is hidden until asked for

    job = await make_job(web, account_id)
    await finish_two(web, job.id)
    page = await web.get("/dashboard/jobs")
    assert '<caption id="jobs-caption">Jobs, newest first</caption>' in page.text
    row = one(rf"<tr>\s*<th scope=\"row\"><code id=\"job-{job.id}\">(.*?)</tr>", page.text)
    assert "3 image URLs" in row
    assert "<td>Running</td>" in row  # the status in words, not a colour
    assert f'<progress max="3" value="2" aria-label="Progress of {job.id}"></progress>' in row
    assert "2 of 3 done" in row
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[1:4] == ["1", "0", "1"]  # failed, skipped, credits spent
    assert f'href="/dashboard/jobs/{job.id}/results.csv"' in row
    assert f'href="/dashboard/jobs/{job.id}/results.json"' in row
    assert ">Cancel</button>" in row


async def test_a_long_list_has_a_next_page(web: Web) -> None:
    account_id = await web.open_account("pages@example.com")
    made = [await make_job(web, account_id) for _ in range(21)]
    first = await web.get("/dashboard/jobs")
    assert first.text.count('<th scope="row"><code id="job-') == 20
    assert made[-1].id in first.text
    assert made[0].id not in first.text
    link = one(r'<a href="(/dashboard/jobs\?after=job_\w+)">Next page</a>', first.text)
    second = await web.get(link)
    assert second.text.count('<th scope="row"><code id="job-') == 1
    assert made[0].id in second.text
    assert "Next page" not in second.text
    assert '<a href="/dashboard/jobs">Newest jobs</a>' in second.text


async def test_downloads_are_the_apis_results_as_files(web: Web) -> None:
    account_id = await web.open_account("files@example.com")
    job = await make_job(web, account_id)
    await finish_two(web, job.id)
    r = await web.get(f"/dashboard/jobs/{job.id}/results.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == f'attachment; filename="{job.id}-results.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["image_url"] for row in rows] == URLS
    assert rows[0]["alt_text"] == "A teal mug."
    assert rows[0]["needs_review"] == "true"
    assert "image_fetch_failed" in rows[1]["problem"]
    assert rows[2]["status"] == "pending"

    async with transaction(web.sessions) as session:
        _, secret = await create_key(session, account_id, name="api")
    api = await web.client.get(
        f"/v1/jobs/{job.id}/results",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert api.content == r.content  # one writer for both

    j = await web.get(f"/dashboard/jobs/{job.id}/results.json")
    assert j.status_code == 200
    assert j.headers["content-type"] == "application/json"
    assert j.headers["content-disposition"] == f'attachment; filename="{job.id}-results.json"'
    document = j.json()
    assert document["job"]["id"] == job.id
    assert document["job"]["counts"]["succeeded"] == 1
    assert [row["status"] for row in document["results"]] == ["succeeded", "failed", "pending"]
    assert document["results"][0]["alt_text"] == "A teal mug."
    page = await web.client.get(
        f"/v1/jobs/{job.id}/results", headers={"Authorization": f"Bearer {secret}"}
    )
    assert page.json()["data"] == document["results"]


async def test_another_accounts_job_is_a_404_page_everywhere(web: Web) -> None:
    owner_id = await web.open_account("owner@example.com")
    job = await make_job(web, owner_id)
    other = web.browser()
    await other.open_account("other@example.com")
    for path in (
        f"/dashboard/jobs/{job.id}/results.csv",
        f"/dashboard/jobs/{job.id}/results.json",
        "/dashboard/jobs/job_nope/results.csv",
        "/dashboard/jobs/../results.csv",
    ):
        r = await other.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "<h1>Page not found</h1>" in r.text
    listed = await other.get(f"/dashboard/jobs?cancel={job.id}")
    assert job.id not in listed.text
    assert "Confirm cancel" not in listed.text
    r = await other.client.post(
        f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": csrf_of(listed.text)}
    )
    assert r.status_code == 404
    assert "<h1>Page not found</h1>" in r.text
    assert (await jobs.get_job(web.sessions, owner_id, job.id)).status == "queued"


# -- cancelling --------------------------------------------------------------------------------


async def test_cancel_asks_first_and_needs_the_forms_token(web: Web) -> None:
    account_id = await web.open_account("cancel@example.com")
    job = await make_job(web, account_id)
    confirm = await web.get(f"/dashboard/jobs?cancel={job.id}")
    assert f"Cancel job {job.id}?" in confirm.text
    assert "Confirm cancel</button>" in confirm.text
    assert (await jobs.get_job(web.sessions, account_id, job.id)).status == "queued"  # not yet

    for body in ({}, {"csrf_token": "0" * 64}):
        refused = await web.client.post(f"/dashboard/jobs/{job.id}/cancel", data=body)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "did not come from this site" in refused.text
    assert (await jobs.get_job(web.sessions, account_id, job.id)).status == "queued"

    done = await web.client.post(
        f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/dashboard/jobs?status=job_cancelled"
    after = await web.get(done.headers["location"])
    assert 'role="status"' in after.text
    assert "The job is cancelled" in after.text
    row = one(rf"<code id=\"job-{job.id}\">(.*?)</tr>", after.text)
    assert "<td>Cancelled</td>" in row
    assert ">Cancel</button>" not in row  # only open jobs can be cancelled
    cancelled = await jobs.get_job(web.sessions, account_id, job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.counts.cancelled == 3
    again = await web.get(f"/dashboard/jobs?cancel={job.id}")
    assert "Confirm cancel" not in again.text


# -- starting a job ----------------------------------------------------------------------------


async def _start(web: Web, **fields: str) -> Any:
    page = await web.get("/dashboard/jobs")
    data = {
        "csrf_token": csrf_of(page.text),
        "form_token": hidden(page.text, "form_token"),
        "source_url": "",
        "max_pages": "",
        "image_urls": "",
        "language": "en",
        "webhook_url": "",
        **fields,
    }
    return await web.client.post("/dashboard/jobs", data=data), data


async def _jobs_of(web: Web, account_id: str) -> list[Job]:
    async with web.sessions() as session:
        return list(
            (await session.execute(select(Job).where(Job.account_id == account_id))).scalars()
        )


async def test_a_list_of_image_urls_starts_a_job_once(web: Web) -> None:
    account_id = await web.open_account("start@example.com")
    urls = "https://images.example/a.png\r\n\r\n  https://images.example/b.png  \r\n"
    r, data = await _start(
        web, image_urls=urls, language="de", webhook_url="https://hooks.example/alt"
    )
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    job_id = one(r"^/dashboard/jobs\?status=job_started&job=(job_\w+)$", location)
    twice = await web.client.post("/dashboard/jobs", data=data)  # a double submit
    assert twice.status_code == 303
    assert twice.headers["location"] == location
    (job,) = await _jobs_of(web, account_id)
    assert job.id == job_id
    assert job.total_items == 2
    assert job.source_url is None
    assert json.loads(job.defaults) == {"language": "de"}
    assert job.webhook_url == "https://hooks.example/alt"
    page = await web.get(location)
    status = one(r'<div class="notice success" role="status"[^>]*>(.*?)</div>', page.text)
    assert status == f"Job {job_id} started with 2 images."
    assert f'<code id="job-{job_id}">' in page.text
    # The status names only this account's job: another id falls back to the fixed text.
    other = await web.get("/dashboard/jobs?status=job_started&job=job_00000000000000000000000000")
    assert "Your job has started." in other.text


async def test_a_page_or_sitemap_starts_a_crawl(web: Web) -> None:
    account_id = await web.open_account("crawl@example.com")
    r, _ = await _start(
        web, source_url="https://site.example/sitemap.xml", max_pages="5", overwrite="on"
    )
    assert r.status_code == 303, r.text
    (job,) = await _jobs_of(web, account_id)
    assert job.source_url == "https://site.example/sitemap.xml"
    assert job.max_pages == 5
    assert job.overwrite is True
    page = await web.get(r.headers["location"])
    assert f"Job {job.id} started: crawling https://site.example/sitemap.xml" in page.text
    assert "Crawl of https://site.example/sitemap.xml" in page.text


@pytest.mark.parametrize(
    ("fields", "field", "message", "kept"),
    [
        ({}, "source_url", "What to describe: Enter a page or sitemap URL to crawl", None),
        (
            {"source_url": "https://site.example/", "image_urls": "https://i.example/a.png"},
            "source_url",
            "What to describe: Give either a page or sitemap to crawl or a list",
            "https://i.example/a.png",
        ),
        (
            {"image_urls": "https://i.example/a.png\nftp://i.example/b.png\n\nnot a url"},
            "image_urls",
            "Image URLs: Fix these image URLs",
            "ftp://i.example/b.png",
        ),
        (
            {"image_urls": "\n".join(f"https://i.example/{i}.png" for i in range(10_001))},
            "image_urls",
            "Image URLs: Enter at most 10,000 image URLs",
            "https://i.example/10000.png",
        ),
        (
            {"source_url": "https://site.example/", "max_pages": "lots"},
            "max_pages",
            "Maximum pages: Enter a whole number from 1 to 500",
            "lots",
        ),
        (
            {"source_url": "https://site.example/", "max_pages": "501"},
            "max_pages",
            "Maximum pages: Enter a whole number from 1 to 500",
            "501",
        ),
        (
            {"source_url": "javascript:alert(1)"},
            "source_url",
            "Page or sitemap URL: Enter the full address of a page or sitemap",
            "javascript:alert(1)",
        ),
        (
            {"source_url": "https://site.example/" + "a" * 3000},
            "source_url",
            "Page or sitemap URL: Enter the full address",
            "a" * 3000,
        ),
        (
            {"image_urls": "https://i.example/a.png", "language": "not a language!"},
            "language",
            "Language: Enter one language tag such as en, de or pt-BR.",
            "not a language!",
        ),
        (
            {"image_urls": "https://i.example/a.png", "language": "en, de"},
            "language",
            "Language: Enter one language tag",
            "en, de",
        ),
        (
            {"image_urls": "https://i.example/a.png", "webhook_url": "ftp://hooks.example/x"},
            "webhook_url",
            "Webhook URL: Enter the full https:// address of your receiver",
            "ftp://hooks.example/x",
        ),
        (
            {"image_urls": "https://i.example/a.png", "webhook_url": "http://127.0.0.1/hook"},
            "webhook_url",
            "private, local or reserved address",
            "http://127.0.0.1/hook",
        ),
    ],
)
async def test_each_problem_is_named_at_its_field_and_the_input_is_kept(
    web: Web, fields: dict[str, str], field: str, message: str, kept: str | None
) -> None:
    account_id = await web.open_account("errors@example.com")
    r, _ = await _start(web, **fields)
    assert r.status_code == 422, r.text[:2000]
    text = unescape(r.text)
    assert "<title>Error: Jobs" in text
    summary = one(r'<div class="error-summary" role="alert"(.*?)</div>', text)
    assert message in summary
    assert f'href="#{field}"' in summary
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', r.text) or re.search(
        rf'aria-invalid="true"[^>]*id="{field}"', r.text
    )
    if field != "source_url" or "What" not in message:
        assert f'aria-describedby="{field}-hint {field}-error"' in r.text
    if kept is not None:
        assert kept in text  # what was typed is on the page again
    assert await _jobs_of(web, account_id) == []


async def test_line_numbers_of_bad_urls_count_the_lines_as_typed(web: Web) -> None:
    await web.open_account("lines@example.com")
    r, _ = await _start(web, image_urls="https://i.example/a.png\n\nftp://i.example/b.png")
    assert r.status_code == 422
    assert "line 3: Only http:// and https:// image URLs are allowed" in unescape(r.text)


async def test_a_restricted_account_starts_nothing_and_keeps_its_input(web: Web) -> None:
    account_id = await web.open_account("restricted@example.com")
    await web.form("/dashboard/account", "/dashboard/account/restrict", {"restrict": "on"})
    r, _ = await _start(web, image_urls="https://i.example/kept.png")
    assert r.status_code == 403
    assert 'role="alert"' in r.text
    assert "restricted processing" in r.text
    assert "https://i.example/kept.png" in r.text
    assert await _jobs_of(web, account_id) == []


# -- webhooks ----------------------------------------------------------------------------------


async def _secret(web: Web, account_id: str) -> str:
    svc = services(web)
    async with svc.sessions() as session:
        return await current_secret(session, svc.settings, account_id)


async def test_the_signing_secret_shows_only_when_asked_for_with_a_post(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account_id = await web.open_account("secret@example.com")
    secret = await _secret(web, account_id)
    page = await web.get("/dashboard/jobs")
    assert secret not in page.text
    assert "Reveal signing secret</button>" in page.text
    refused = await web.client.post("/dashboard/jobs/webhook-secret/reveal", data={})
    assert refused.status_code == 403
    assert secret not in refused.text
    shown = await web.form("/dashboard/jobs", "/dashboard/jobs/webhook-secret/reveal", {})
    assert shown.status_code == 200
    assert f'<code id="webhook-secret">{secret}</code>' in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert "Reveal signing secret" not in shown.text
    assert secret not in (await web.get("/dashboard/jobs")).text  # once, on that answer
    assert secret not in caplog.text  # never logged


async def test_rotating_asks_first_explains_the_overlap_and_needs_the_token(web: Web) -> None:
    account_id = await web.open_account("rotate@example.com")
    old = await _secret(web, account_id)
    confirm = await web.get("/dashboard/jobs?rotate=1")
    assert "Rotate the signing secret?" in confirm.text
    assert "24 hours" in confirm.text
    assert "Confirm rotate</button>" in confirm.text
    refused = await web.client.post("/dashboard/jobs/webhook-secret/rotate", data={})
    assert refused.status_code == 403
    assert await _secret(web, account_id) == old
    done = await web.client.post(
        "/dashboard/jobs/webhook-secret/rotate", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("/dashboard/jobs?status=secret_rotated")
    new = await _secret(web, account_id)
    assert new != old
    assert new.startswith("whsec_")
    page = await web.get(done.headers["location"])
    assert "The signing secret is rotated" in page.text
    assert "deliveries also carry a signature with the previous secret" in page.text
    assert old not in page.text
    assert new not in page.text
    shown = await web.form("/dashboard/jobs", "/dashboard/jobs/webhook-secret/reveal", {})
    assert new in shown.text
    assert old not in shown.text


async def test_the_delivery_attempts_are_listed_in_a_table(web: Web) -> None:
    account_id = await web.open_account("hooks@example.com")
    job = await make_job(web, account_id)
    assert "No delivery attempts yet" in (await web.get("/dashboard/jobs")).text
    message_id = new_id("msg")
    async with transaction(web.sessions) as session:
        session.add(
            WebhookMessage(
                id=message_id,
                account_id=account_id,
                job_id=job.id,
                event="job.completed",
                url="https://hooks.example/alt",
                payload="{}",
                state="pending",
                attempts=1,
                next_attempt_at=utcnow() + timedelta(minutes=1),
                created_at=utcnow(),
            )
        )
        await session.flush()
        session.add(
            WebhookAttempt(
                id=new_id("wha"),
                message_id=message_id,
                account_id=account_id,
                event="job.completed",
                url="https://hooks.example/alt",
                attempt=1,
                outcome="http_error",
                status_code=500,
                latency_ms=1234,
                attempted_at=utcnow(),
            )
        )
    page = await web.get("/dashboard/jobs")
    assert "Webhook delivery attempts, newest first</caption>" in page.text
    body = one(r'<caption id="deliveries-caption">.*?<tbody>(.*?)</tbody>', page.text)
    cells = re.findall(r"<td>(.*?)</td>", body, re.S)
    assert "<code>job.completed</code>" in cells[0]
    assert job.id in cells[0]
    assert cells[1:] == [
        '<code class="url">https://hooks.example/alt</code>',
        "1",
        "Refused by the receiver",
        "500",
        "1,234 ms",
    ]
    other = web.browser()
    await other.open_account("nohooks@example.com")
    assert "hooks.example" not in (await other.get("/dashboard/jobs")).text


async def test_every_field_in_trouble_is_named_at_once(web: Web) -> None:
    await web.open_account("all@example.com")
    r, _ = await _start(
        web, image_urls="https://i.example/a.png\nftp://i.example/b.png", webhook_url="ftp://y"
    )
    assert r.status_code == 422
    summary = one(r'<div class="error-summary" role="alert"(.*?)</div>', unescape(r.text))
    assert "There are 2 problems" in summary
    assert 'href="#image_urls">Image URLs: ' in summary
    assert "line 2:" in summary
    assert 'href="#webhook_url">Webhook URL: ' in summary


async def test_the_dashboard_rate_limit_applies_and_the_input_stays(
    service_factory: Callable[..., Any],
) -> None:
    async with web_service(service_factory, rate_limit_per_minute=1, **QUIET) as web:
        account_id = await web.open_account("busy@example.com")
        first, _ = await _start(web, image_urls="https://i.example/one.png")
        assert first.status_code == 303
        second, _ = await _start(web, image_urls="https://i.example/two.png")
        assert second.status_code == 429
        assert int(second.headers["retry-after"]) >= 1
        assert 'role="alert"' in second.text
        assert "Too many requests" in second.text
        assert "https://i.example/two.png" in second.text
        assert len(await _jobs_of(web, account_id)) == 1
        page = await web.get("/dashboard/jobs")
        refused = await web.client.post(
            "/dashboard/jobs/webhook-secret/reveal", data={"csrf_token": csrf_of(page.text)}
        )
        assert refused.status_code == 429
        assert "whsec_" not in refused.text
