"""The no-storage promise, end to end: every way an image arrives, through every outcome.

Ways: a multipart upload, base64 in JSON, a data URI in JSON, an ``image_url`` served by the
fake image host, and a batch carrying all three JSON forms. Outcomes, per way: success, the
model failing (a non-retryable 400, then 502 on every attempt), validation failing (a truncated
image, a bad field), the client disconnecting while the model is slow, and an internal error.

Each request runs under the file witnesses (audit hook, spool spy, private temp folder, new file
descriptors); afterwards the database, the logs (every record at DEBUG and the app's JSON
stream, plus anything written to the process's stdout and stderr), the idempotency records,
Redis (when ``ALTTEXT_TEST_REDIS_URL`` is set) and every error body are searched for the
image's random marker (raw, hex, base64 and repr forms), a 4 KB run of the raw bytes and of the
base64, and the base64 prefix; the logs also for the API key, the alt text, the client's IP
address and a query string. Only successes are charged and every reservation is closed.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from alttext.billing.models import CreditReservation
from alttext.idempotency import IdempotencyRecord
from alttext.logging_setup import configure_logging
from alttext.usage.models import UsageEvent
from tests.conftest import REDIS_URL, Account, Service, openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.openrouter import DEFAULT_ALT_TEXT, FakeOpenRouter, Slow, Status
from tests.privacy import nostorage
from tests.privacy.nostorage import LogCapture, Upload, Witness

CREDITS = 100
CLIENT_IP = "203.0.113.77"  # the ASGI client address: must never be logged
QUERY_MARKER = "qs-marker-5f3a9c"
WAYS = ["multipart", "base64", "data_uri", "image_url", "batch"]
BATCH_FORMS = ("base64", "data_uri", "image_url")


@pytest.fixture
def witness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Witness:
    return nostorage.make_witness(monkeypatch, tmp_path)


@dataclass
class Harness:
    service: Service
    client: httpx.AsyncClient
    account: Account
    fake: FakeOpenRouter
    host: FakeImageHost
    database_url: str
    witness: Witness
    logs: LogCapture
    uploads: list[Upload] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    charged: int = 0

    def _items(self, upload: Upload, options: dict[str, Any]) -> list[dict[str, Any]]:
        items = []
        for form in BATCH_FORMS:
            item = {"id": form, **self._json_image(form, upload), **options}
            items.append(item)
        return items

    def _json_image(self, form: str, upload: Upload) -> dict[str, str]:
        if form == "base64":
            return {"image": upload.b64}
        if form == "data_uri":
            return {"image": upload.data_uri}
        path = f"/{upload.name}-{len(self.host.requests)}.png"
        self.host.image(path, upload.data)
        return {"image_url": self.host.url(path)}

    def request_args(
        self, way: str, upload: Upload, options: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if way == "multipart":
            data = {k: str(v) for k, v in options.items()}
            return "/v1/alt-text", {
                "files": {"image": (f"{upload.name}.png", upload.data, upload.mime)},
                "data": data,
            }
        if way == "batch":
            return "/v1/alt-text/batch", {"json": {"items": self._items(upload, options)}}
        return "/v1/alt-text", {"json": {**self._json_image(way, upload), **options}}

    async def send(
        self,
        way: str,
        upload: Upload,
        *,
        options: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> httpx.Response:
        """One request under every file witness."""
        if upload not in self.uploads:
            self.uploads.append(upload)
        url, kwargs = self.request_args(way, upload, options or {})
        temp_before = sorted(os.listdir(tempfile.gettempdir()))
        fds_before = nostorage.open_files()
        mark = (len(self.witness.writes), len(self.witness.spooled))
        with nostorage.recording(self.witness):
            response = await self.client.post(
                url + query, headers={**self.account.headers, **(headers or {})}, **kwargs
            )
        self.requests += 1
        self.check_files(temp_before, fds_before, mark)
        self.collect_problems(way, response)
        return response

    def check_files(
        self, temp_before: list[str], fds_before: dict[int, str], mark: tuple[int, int]
    ) -> None:
        allowed = nostorage.allowed_writes(self.database_url)
        new_writes = self.witness.writes[mark[0] :]
        assert [w for w in new_writes if not allowed(w[1])] == [], "a request wrote to disk"
        assert self.witness.spooled[mark[1] :] == [], "a request spooled to a temporary file"
        assert sorted(os.listdir(tempfile.gettempdir())) == temp_before
        nostorage.assert_no_new_file_descriptors(fds_before, self.database_url)

    def collect_problems(self, way: str, response: httpx.Response) -> None:
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            self.problems.append((f"{way} {response.status_code}", response.text))
        elif way == "batch":
            for item in response.json()["data"]:
                if item["error"] is not None:
                    self.problems.append((f"batch item {item['id']}", json.dumps(item["error"])))

    async def balance(self) -> int:
        response = await self.client.get("/v1/account", headers=self.account.headers)
        credits: int = response.json()["credits_remaining"]
        return credits


def _items_per(way: str) -> int:
    return len(BATCH_FORMS) if way == "batch" else 1


@asynccontextmanager
async def harness(
    service_factory: Callable[..., Any],
    database_url: str,
    fake: FakeOpenRouter,
    witness: Witness,
) -> AsyncIterator[Harness]:
    settings = openrouter_settings(
        fake,
        allow_private_urls=True,  # the fake image host listens on 127.0.0.1
        upstream_timeout_s=5.0,
        upstream_budget_s=3.0,
        redis_url=REDIS_URL,
        # The same picture every time, and each request must reach the model; what the result
        # cache keeps is checked in tests/generation/test_cache.py.
        cache_ttl_s=0,
    )
    with running_image_host() as host:
        async with service_factory(**settings) as service:
            account = await service.create_account(email="nostorage@example.com", credits=CREDITS)
            transport = httpx.ASGITransport(
                app=service.app, raise_app_exceptions=False, client=(CLIENT_IP, 51234)
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                # Warm-up outside the witnesses: lazy imports may write bytecode caches.
                warm = nostorage.marked_png(32)
                response = await c.post(
                    "/v1/alt-text",
                    headers=account.headers,
                    files={"image": ("w.png", warm.data, "image/png")},
                )
                assert response.status_code == 200, response.text
                with nostorage.capture_logs() as logs:
                    yield Harness(service, c, account, fake, host, database_url, witness, logs)


# -- the outcomes ----------------------------------------------------------------------------------


async def succeed(h: Harness, way: str) -> None:
    # A PNG (Pillow's header, libvips' decode) and a JPEG (OpenCV's decode).
    for upload in (nostorage.marked_png(), nostorage.marked_jpeg()):
        response = await h.send(
            way,
            upload,
            options={"context": "A test card for the no-storage suite"},
            # The key and a marker in the query string: neither may reach the access log.
            query=f"?api_key={h.account.key}&utm={QUERY_MARKER}",
            headers={"Idempotency-Key": f"ok-{way}-{upload.name}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if way == "batch":
            assert body["succeeded"] == len(BATCH_FORMS), body
            assert all(item["result"]["alt_text"] == DEFAULT_ALT_TEXT for item in body["data"])
        else:
            assert body["alt_text"] == DEFAULT_ALT_TEXT
            assert body["image"]["width"] == 224
        h.charged += _items_per(way)
        # The model saw the image, re-encoded without the marker-bearing chunks or segments.
        sent = h.fake.images[-_items_per(way) :]
        assert len(sent) == _items_per(way)
        assert all(
            upload.marker not in i.data and upload.marker.hex().encode() not in i.data for i in sent
        )


async def model_fails(h: Harness, way: str) -> None:
    """A non-retryable 400; then a 502, retried, and a 502 whose Retry-After is too long to
    wait out (so the request ends with the upstream error, not a budget timeout)."""
    n = _items_per(way)
    bad_request = [Status(400, "Scripted bad request")] * n
    bad_gateway = [Status(502, "Scripted bad gateway")] * n
    # Twice as many as needed: however the items interleave, none reaches a default answer.
    too_long = [Status(502, "Scripted bad gateway", retry_after=3600)] * 2 * n
    for behaviours in (bad_request, bad_gateway + too_long):
        before = len(h.fake.chat_requests)
        h.fake.script(*behaviours)
        response = await h.send(way, nostorage.marked_png())
        h.fake.script()
        assert len(h.fake.chat_requests) >= before + n
        if way == "batch":
            assert response.status_code == 200, response.text
            codes = {item["error"]["code"] for item in response.json()["data"]}
            # An item unlucky enough to meet three plain 502s may run out of time instead.
            assert codes <= {"upstream_error", "upstream_timeout"}, response.text
        else:
            assert response.status_code == 502, response.text
            assert response.json()["code"] == "upstream_error"


async def validation_fails(h: Harness, way: str) -> None:
    before = len(h.fake.chat_requests)
    truncated = nostorage.marked_png().truncated()
    bad_field = nostorage.marked_png()
    cases: list[tuple[Upload, dict[str, Any], int, str, dict[str, str]]] = [
        (truncated, {}, 400, "invalid_image", {"Idempotency-Key": f"bad-{way}"}),
        (bad_field, {"max_length": 5}, 422, "invalid_request", {}),
    ]
    for upload, options, status, code, headers in cases:
        response = await h.send(way, upload, options=options, headers=headers)
        if way == "batch":
            assert response.status_code == 200, response.text
            codes = {item["error"]["code"] for item in response.json()["data"]}
            assert codes == {code}, response.text
        else:
            assert response.status_code == status, response.text
            assert response.json()["code"] == code
    assert len(h.fake.chat_requests) == before  # refused before any model call


async def client_disconnects(h: Harness, way: str) -> None:
    """The client gives up while the model is slow: the request is cancelled, nothing charged."""
    n = _items_per(way)
    before = len(h.fake.chat_requests)
    h.fake.script(*[Slow(3)] * n)
    task = asyncio.create_task(h.send(way, nostorage.marked_png()))
    async with asyncio.timeout(10):
        while len(h.fake.chat_requests) < before + n:
            assert not task.done(), task.result().text
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    h.fake.script()
    # The release is shielded from the cancellation; under a cancel scope that cancels again it
    # may finish just after the request task: it must finish, promptly.
    async with asyncio.timeout(10):
        while await held_reservations(h):
            await asyncio.sleep(0.02)


async def held_reservations(h: Harness) -> list[str]:
    async with h.service.app.state.services.sessions() as session:
        held = await session.scalars(
            select(CreditReservation.id).where(CreditReservation.state == "held")
        )
        return list(held)


async def internal_error(h: Harness, way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = h.service.app.state.services.runtime.engine

    async def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(engine, "describe_prepared", boom)  # the model step of a generation
        response = await h.send(way, nostorage.marked_png())
    if way == "batch":  # a bug fails only its item: the batch still answers 200
        assert response.status_code == 200, response.text
        codes = {item["error"]["code"] for item in response.json()["data"]}
        assert codes == {"internal_error"}, response.text
    else:
        assert response.status_code == 500, response.text
        assert response.json()["code"] == "internal_error"
    assert "boom" not in response.text


# -- what must hold afterwards ---------------------------------------------------------------------


def forbidden_in_logs(h: Harness) -> dict[str, str]:
    return {
        **nostorage.text_needles(*h.uploads),
        "API key": h.account.key,
        "alt text": DEFAULT_ALT_TEXT,
        "client IP": CLIENT_IP,
        "loopback IP": "127.0.0.1",
        "test client name": "testclient",
        "query string": QUERY_MARKER,
        "e-mail": h.account.email,
    }


def assert_logs_clean(h: Harness, printed: str) -> None:
    access = h.logs.access()
    # Control: the capture works (one access record per request, the 500 logged with its error).
    assert len(access) >= h.requests
    failures = [r for r in h.logs.records if r.getMessage() == "unhandled error"]
    assert failures
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)
    for record in access:
        path = record.__dict__["path"]
        assert "?" not in path, path
        assert path.startswith("/v1/"), path
    forbidden = forbidden_in_logs(h)
    for number, text_ in enumerate(h.logs.texts()):
        nostorage.assert_text_free_of(text_, forbidden, f"log record {number}")
    nostorage.assert_text_free_of(h.logs.stream.getvalue(), forbidden, "the app's log stream")
    nostorage.assert_text_free_of(printed, forbidden, "stdout/stderr")


def assert_problems_clean(h: Harness) -> None:
    assert h.problems
    nostorage.assert_absent({label: body.encode() for label, body in h.problems}, *h.uploads)
    for label, body in h.problems:
        assert h.account.key not in body, label


async def assert_money_and_records(h: Harness, way: str) -> None:
    assert await h.balance() == CREDITS - 1 - h.charged  # the warm-up, then successes only
    assert await held_reservations(h) == []
    sessions = h.service.app.state.services.sessions
    async with sessions() as session:
        aborted = await session.scalars(
            select(UsageEvent.id).where(UsageEvent.error_code == "aborted")
        )
        assert len(list(aborted)) >= 2  # the disconnect and the internal error, released
        records = list(await session.scalars(select(IdempotencyRecord)))
    # The only response cache holds responses (alt text, problem documents), never the image:
    # one per key, and for a batch one per charged item (kept in the item's charge).
    keys = {f"ok-{way}-png224", f"ok-{way}-jpeg224", f"bad-{way}"}
    assert {r.key for r in records if not r.key.startswith("part ")} == keys
    parts = [r for r in records if r.key.startswith("part ")]
    assert len(parts) == (2 * _items_per(way) if way == "batch" else 0)  # two successful batches
    assert any(DEFAULT_ALT_TEXT in (r.response_body or "") for r in records)
    nostorage.assert_absent(
        {f"idempotency {r.key}": (r.response_body or "").encode() for r in records}, *h.uploads
    )


async def assert_redis_clean(h: Harness) -> None:
    if not REDIS_URL:
        return
    stored = await nostorage.redis_values(REDIS_URL)
    assert any(h.account.key_id in name for name in stored), sorted(stored)  # control
    nostorage.assert_absent(stored, *h.uploads)
    for where, value in stored.items():
        assert h.account.key.encode() not in value, where
        assert h.account.email.encode() not in value, where


@pytest.mark.parametrize("way", WAYS)
async def test_no_image_byte_is_kept_anywhere(
    way: str,
    service_factory: Callable[..., Any],
    database_url: str,
    fake_openrouter: FakeOpenRouter,
    witness: Witness,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    with capfd.disabled():
        # The app's log handler keeps the stderr it finds: not capfd's, closed after this test.
        configure_logging()
    async with harness(service_factory, database_url, fake_openrouter, witness) as h:
        await succeed(h, way)
        await model_fails(h, way)
        await validation_fails(h, way)
        await client_disconnects(h, way)
        await internal_error(h, way, monkeypatch)

        assert_logs_clean(h, "".join(capfd.readouterr()))
        assert_problems_clean(h)
        await assert_money_and_records(h, way)
        await assert_redis_clean(h)
        await nostorage.assert_not_stored(
            h.service.app.state.services.sessions, database_url, h.account.email, *h.uploads
        )


def test_file_descriptor_witness_sees_an_unlinked_temporary_file(
    witness: Witness, database_url: str
) -> None:
    """Control: a temporary file opened (and already unlinked) during a request is caught."""
    before = nostorage.open_files()
    with tempfile.TemporaryFile() as spool:
        spool.write(b"image bytes")
        with pytest.raises(AssertionError, match=r"unlinked|temporary"):
            nostorage.assert_no_new_file_descriptors(before, database_url)
    nostorage.assert_no_new_file_descriptors(before, database_url)
