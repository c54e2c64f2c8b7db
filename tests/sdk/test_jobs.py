"""Bulk jobs through both clients, against the running service of tests/sdk/conftest.py: images
on a fake host (slow where a test needs a job to stay running), results across pages, CSV,
cancelling, a crawled page, pausing, another account's job, retried creation, webhooks."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import httpx
import pytest

from tests.jobs.webhook_receiver import run_receiver
from tests.sdk.conftest import STARTING_CREDITS, JobSite, LossyProxy, Recorder, RunningService

CSV_COLUMNS = [
    "item_id",
    "image_url",
    "page_url",
    "status",
    "alt_text",
    "decorative",
    "role",
    "existing_alt",
    "needs_review",
    "review_reasons",
    "problem",
    "id",
]


def _results_requests(recorder: Recorder, job_id: str) -> list[httpx.Request]:
    return [r for r in recorder.requests if r.url.path == f"/v1/jobs/{job_id}/results"]


def test_a_job_of_urls_is_watched_to_the_end_and_its_results_read_in_pages_and_as_csv(
    sdk_service: RunningService, job_site: JobSite, recorder: Recorder
) -> None:
    from alttext_client import AltText, Job, JobItem, JobResult

    account = sdk_service.new_account(credits=25)
    urls = job_site.images(8, delay_s=0.3)  # 8 items, 4 at a time: two slow waves at least
    items: list[Any] = [
        {"id": f"img-{i}", "image_url": url, "context": f"Photo {i} of the gallery"}
        for i, url in enumerate(urls[:4])
    ]
    items += [JobItem(id=f"img-{i}", image_url=url) for i, url in enumerate(urls[4:7], start=4)]
    items.append(urls[7])  # a bare URL: no id of yours
    ids = [f"img-{i}" for i in range(7)] + [None]

    http = httpx.Client(event_hooks={"request": [recorder.sync_hook]})
    with AltText(api_key=account.key, base_url=sdk_service.base_url, http_client=http) as client:
        job = client.jobs.create(items, defaults={"language": "en", "max_length": 100})
        assert isinstance(job, Job)
        assert job.id.startswith("job_")
        assert job.status in ("queued", "running")
        assert job.total == 8
        assert not job.ended
        create = recorder.requests[0]
        assert create.method == "POST"
        assert create.headers["idempotency-key"]

        seen: list[tuple[str, int]] = []
        returned = job.wait(
            progress=lambda j: seen.append((j.status, j.counts.done)),
            poll_interval=0.1,
            timeout=60,
        )
        assert returned is job  # updated in place
        assert job.status == "completed"
        assert job.ended
        assert (job.counts.succeeded, job.counts.done, job.credits_spent) == (8, 8, 8)
        assert job.finished_at is not None
        dones = [done for _, done in seen]
        assert dones == sorted(dones), dones
        assert dones[0] < 8  # watched while it ran
        assert dones[-1] == 8
        assert seen[-1][0] == "completed"
        assert all(status != "completed" for status, _ in seen[:-1])

        results = list(job.results(page_size=3))
        assert all(isinstance(r, JobResult) for r in results)
        assert [r.id for r in results] == ids
        assert [r.image_url for r in results] == urls
        assert {r.status for r in results} == {"succeeded"}
        assert all(r.item_id.startswith("item_") and r.alt_text is not None for r in results)
        pages = _results_requests(recorder, job.id)
        assert len(pages) == 3  # 3 + 3 + 2
        assert [p.url.params.get("limit") for p in pages] == ["3", "3", "3"]
        assert "starting_after" not in pages[0].url.params
        assert pages[1].url.params["starting_after"] == results[2].item_id

        text = job.results_csv()
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == CSV_COLUMNS
        assert len(rows) == 9
        by_column = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
        assert [r["id"] for r in by_column] == [i or "" for i in ids]
        assert [r["item_id"] for r in by_column] == [r.item_id for r in results]
        assert {r["status"] for r in by_column} == {"succeeded"}

        again = client.jobs.get(job.id)
        assert (again.id, again.status, again.counts) == (job.id, "completed", job.counts)
        assert client.account.get().credits_remaining == 25 - 8
    http.close()


def test_jobs_are_listed_newest_first_page_by_page(sdk_service: RunningService) -> None:
    from alttext_client import AltText

    account = sdk_service.new_account()
    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        created = [
            client.jobs.create([f"http://127.0.0.1:9/{i}.png"], defaults={"role": "informative"})
            for i in range(3)
        ]
        page = client.jobs.list(limit=2)
        assert [j.id for j in page.data] == [created[2].id, created[1].id]
        assert page.has_more
        rest = client.jobs.list(limit=2, starting_after=page.data[-1].id)
        assert [j.id for j in rest.data] == [created[0].id]
        assert not rest.has_more
        everything = list(client.jobs.iter(page_size=2))
        assert [j.id for j in everything] == [j.id for j in reversed(created)]
        # Listed jobs are live handles too: an unreachable image fails its item, uncharged.
        failed = everything[-1].wait(poll_interval=0.1, timeout=60)
        assert failed.status == "failed"
        [row] = list(failed.results())
        assert row.status == "failed"
        assert row.problem is not None
        assert row.problem.code == "image_fetch_failed"
        assert client.account.get().credits_remaining == STARTING_CREDITS


def test_cancel_stops_the_job_at_once(sdk_service: RunningService, job_site: JobSite) -> None:
    from alttext_client import AltText

    account = sdk_service.new_account()
    urls = job_site.images(12, delay_s=1.0)
    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        job = client.jobs.create(urls)
        assert job.cancel() is job
        assert job.status == "cancelled"
        assert job.ended
        # Waiting on an ended job returns at the first poll.
        started = time.monotonic()
        assert job.wait(poll_interval=5).status == "cancelled"
        assert time.monotonic() - started < 5
        assert job.counts.cancelled >= 12 - 4  # at most 4 items of an account run at once
        # Cancelling again (here by id) changes nothing.
        assert client.jobs.cancel(job.id).status == "cancelled"

        # The items that were running finish (and are charged if they succeed); none starts.
        deadline = time.monotonic() + 30
        while job.refresh().counts.running or job.counts.pending:
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        statuses = [r.status for r in job.results()]
        assert len(statuses) == 12
        assert set(statuses) <= {"succeeded", "cancelled"}
        assert statuses.count("cancelled") == job.counts.cancelled
        assert job.credits_spent == statuses.count("succeeded") <= 4


def test_a_source_job_crawls_a_page_and_describes_its_images(
    sdk_service: RunningService, job_site: JobSite
) -> None:
    from alttext_client import AltText

    account = sdk_service.new_account()
    first, second = job_site.images(2)
    page_url = job_site.page(
        "/index.html",
        f"""<!doctype html><html lang="en"><head><title>Our bakery</title></head><body>
        <h1>Fresh bread every morning</h1>
        <figure><img src="{first}"><figcaption>The sourdough loaf</figcaption></figure>
        <p>Visit our shop.</p><a href="/"><img src="{second}"></a>
        </body></html>""",
    )
    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        job = client.jobs.create(source=page_url, max_pages=1)
        assert job.source is not None
        assert job.source.url == page_url
        job.wait(poll_interval=0.1, timeout=60)
        assert job.status == "completed", job
        assert job.source is not None
        assert (job.source.pages_crawled, job.source.crawl_state) == (1, "done")
        assert job.total == 2
        results = list(job.results())
        assert [r.image_url for r in results] == [first, second]
        assert {r.status for r in results} == {"succeeded"}
        assert {r.page_url for r in results} == {page_url}
        assert results[1].role == "functional"  # the only content of a link
        assert job.credits_spent == 2


def test_a_paused_job_ends_the_wait_only_when_asked(
    sdk_service: RunningService, job_site: JobSite
) -> None:
    from alttext_client import AltText, JobTimeoutError

    account = sdk_service.new_account(credits=1)
    urls = job_site.images(3)
    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        job = client.jobs.create(urls)
        job.wait(until_paused=True, poll_interval=0.1, timeout=60)
        assert job.status == "paused"
        # The one credit went to one item; items claimed without a credit go back to pending.
        deadline = time.monotonic() + 30
        while job.refresh().counts.running:
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job.status == "paused"
        assert (job.counts.succeeded, job.counts.pending) == (1, 2)

        # By default a paused job is waited for (it resumes when credits arrive)...
        with pytest.raises(JobTimeoutError) as caught:
            job.wait(poll_interval=0.1, timeout=0.5)
        assert caught.value.job.status == "paused"
        assert isinstance(caught.value, TimeoutError)
        assert job.id in str(caught.value)

        # ...and a grant resumes it.
        sdk_service.grant(account.account_id, 5)
        job.wait(poll_interval=0.1, timeout=60)
        assert job.status == "completed"
        assert (job.counts.succeeded, job.credits_spent) == (3, 3)


def test_another_accounts_job_is_not_found(sdk_service: RunningService) -> None:
    from alttext_client import AltText, NotFoundError

    owner = sdk_service.new_account()
    stranger = sdk_service.new_account()
    with (
        AltText(api_key=owner.key, base_url=sdk_service.base_url) as mine,
        AltText(api_key=stranger.key, base_url=sdk_service.base_url) as theirs,
    ):
        job = mine.jobs.create(["http://127.0.0.1:9/x.png"])
        for attempt in (
            lambda: theirs.jobs.get(job.id),
            lambda: theirs.jobs.cancel(job.id),
            lambda: theirs.jobs.get("job_not-a-real-id"),
        ):
            with pytest.raises(NotFoundError) as caught:
                attempt()
            err = caught.value
            assert (err.status, err.code) == (404, "not_found")
            assert err.request_id is not None
            assert err.request_id.startswith("req_")
        assert theirs.jobs.list().data == []
        assert mine.jobs.get(job.id).status != "cancelled"


@pytest.mark.parametrize("lost_status", [503, 429])
def test_creation_retried_after_a_lost_answer_makes_one_job(
    sdk_service: RunningService, lossy_proxy: LossyProxy, job_site: JobSite, lost_status: int
) -> None:
    from alttext_client import AltText

    account = sdk_service.new_account()
    urls = job_site.images(2)
    lossy_proxy.lose[0] = 2
    lossy_proxy.status[0] = lost_status
    with AltText(api_key=account.key, base_url=lossy_proxy.base_url) as client:
        job = client.jobs.create(urls)
        posts = [s for s in lossy_proxy.seen if s[0] == "/v1/jobs"]
        # The service ran the first attempt; the retries, with the same key, replayed it.
        assert [status for _, _, status in posts] == [lost_status, lost_status, 202]
        assert len({key for _, key, _ in posts}) == 1
        assert posts[0][1]
        assert [j.id for j in client.jobs.list().data] == [job.id]
        assert job.wait(poll_interval=0.1, timeout=60).status == "completed"
        assert job.credits_spent == 2


def test_jobs_are_checked_before_anything_is_sent(sdk_service: RunningService) -> None:
    from alttext_client import AltText, InvalidRequestError, JobItem

    account = sdk_service.new_account()
    with AltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        url = "https://example.com/a.png"
        with pytest.raises(ValueError, match="exactly one of items and source"):
            client.jobs.create([url], source="https://example.com/")
        with pytest.raises(ValueError, match="exactly one of items and source"):
            client.jobs.create()
        with pytest.raises(ValueError, match="http"):
            client.jobs.create(["photos/cat.jpg"])
        with pytest.raises(ValueError, match="http"):
            client.jobs.create([{"id": "a", "context": "no URL"}])
        with pytest.raises(ValueError, match="http"):
            JobItem(image_url="photos/cat.jpg")
        with pytest.raises(TypeError):
            client.jobs.create(url)  # a str is iterable: refused all the same
        with pytest.raises(ValueError, match="1 to 10000"):
            client.jobs.create([])
        with pytest.raises(ValueError, match="max_pages"):
            client.jobs.create([url], max_pages=3)
        # What only the service knows is its answer: a typed 422 naming the field.
        with pytest.raises(InvalidRequestError) as caught:
            client.jobs.create([url], defaults={"colour": "blue"})
        assert caught.value.status == 422
        assert any("colour" in str(e.get("loc", e)) for e in caught.value.errors)
        assert client.jobs.list().data == []
        job = client.jobs.create([url])
        with pytest.raises(ValueError, match="poll_interval"):
            job.wait(poll_interval=0)


def test_webhooks_secret_rotation_and_deliveries(
    sdk_service: RunningService, job_site: JobSite
) -> None:
    from alttext_client import AltText

    account = sdk_service.new_account()
    with (
        AltText(api_key=account.key, base_url=sdk_service.base_url) as client,
        run_receiver() as receiver,
    ):
        first = client.webhooks.secret()
        assert first.secret.startswith("whsec_")
        assert first.rotated_at is None
        rotated = client.webhooks.rotate_secret()
        assert rotated.secret.startswith("whsec_")
        assert rotated.secret != first.secret
        assert rotated.rotated_at is not None
        assert client.webhooks.secret().secret == rotated.secret

        receiver.reset(secret=rotated.secret)
        job = client.jobs.create(job_site.images(1), webhook_url=receiver.url)
        assert job.webhook_url == receiver.url
        job.wait(poll_interval=0.1, timeout=60)
        deadline = time.monotonic() + 30
        while not (deliveries := client.webhooks.deliveries(limit=10).data):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        [delivery] = deliveries
        assert (delivery.event, delivery.job_id, delivery.outcome) == (
            "job.completed",
            job.id,
            "delivered",
        )
        assert delivery.status_code == 200
        [received] = receiver.deliveries()
        assert received.verified  # signed with the secret the SDK returned
        assert received.webhook_id == delivery.message_id


async def test_async_client_jobs(
    sdk_service: RunningService, job_site: JobSite, lossy_proxy: LossyProxy
) -> None:
    from alttext_client import AsyncAltText, AsyncJob, JobItem, JobTimeoutError, NotFoundError

    account = sdk_service.new_account()
    stranger = sdk_service.new_account()
    urls = job_site.images(5, delay_s=0.3)
    async with AsyncAltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        job = await client.jobs.create(
            [JobItem(id=f"a{i}", image_url=url) for i, url in enumerate(urls)],
            defaults={"language": "en"},
        )
        assert isinstance(job, AsyncJob)

        dones: list[int] = []

        async def progress(j: AsyncJob) -> None:
            dones.append(j.counts.done)

        with pytest.raises(JobTimeoutError):
            await job.wait(progress=progress, poll_interval=0.05, timeout=0.1)
        await job.wait(progress=progress, poll_interval=0.1, timeout=60)
        assert job.status == "completed"
        assert dones == sorted(dones)
        assert dones[0] < 5
        assert dones[-1] == 5
        ids = [r.id async for r in job.results(page_size=2)]
        assert ids == [f"a{i}" for i in range(5)]
        rows = list(csv.reader(io.StringIO(await job.results_csv())))
        assert [row[-1] for row in rows[1:]] == ids
        assert [j.id async for j in client.jobs.iter(page_size=1)] == [job.id]

        slow = await client.jobs.create(job_site.images(8, delay_s=1.0))
        assert (await slow.cancel()).status == "cancelled"
        assert (await client.jobs.get(slow.id)).status == "cancelled"

        async with AsyncAltText(api_key=stranger.key, base_url=sdk_service.base_url) as theirs:
            with pytest.raises(NotFoundError) as caught:
                await theirs.jobs.get(job.id)
            assert caught.value.code == "not_found"
            assert caught.value.request_id

        assert (await client.webhooks.secret()).secret.startswith("whsec_")

    lossy_proxy.lose[0] = 1
    async with AsyncAltText(api_key=stranger.key, base_url=lossy_proxy.base_url) as client:
        job = await client.jobs.create(job_site.images(1))
        posts = [s for s in lossy_proxy.seen if s[0] == "/v1/jobs"]
        assert [s[2] for s in posts] == [503, 202]
        assert len({s[1] for s in posts}) == 1
        assert [j.id for j in (await client.jobs.list()).data] == [job.id]
