"""No image byte reaches disk: 5 MB uploads, multipart and JSON, on success and failure paths.

Three independent witnesses watch each request:

* a process-wide audit hook (``sys.addaudithook``, installed once, inert unless a test is
  recording) that records every ``open`` that writes or creates (``w``/``a``/``x``/``+`` modes,
  ``O_WRONLY``/``O_RDWR``/``O_CREAT``/``O_TMPFILE`` flags), every ``tempfile.mkstemp``/``mkdtemp``
  and every rename, link, truncate or ``shutil`` copy/move, from any thread;
* a spy on ``SpooledTemporaryFile`` wherever it is imported (Starlette's form parser spools
  parts over 1 MB to disk; ours must never be reached);
* ``tempfile.gettempdir()`` (redirected, with ``TMPDIR``, to a private folder so other processes
  on the machine cannot disturb it), listed before and after.

The witnesses live in ``tests/privacy/nostorage.py`` (shared with the privacy suite, which
covers every way an image arrives and every outcome). SQLite writes through C, below the audit
hook, so the only files allowed to be written are the test database and its
``-wal``/``-shm``/``-journal`` siblings; their bytes, and every row of every table (so
PostgreSQL is covered too), are then searched for a random marker embedded in the image (a PNG
``tEXt`` chunk, a JPEG ``COM`` segment), for a 4 KB run of the raw file and for a 4 KB run of
its base64. A control test runs Starlette's own form parser under the same
witnesses to show they do catch a spool to disk.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import Account, Service
from tests.fakes.openrouter import FakeOpenRouter, Status, run_fake_openrouter
from tests.privacy import nostorage
from tests.privacy.nostorage import Upload, Witness, allowed_writes, recording

URL = "/v1/alt-text"
CREDITS = 100
SIZE = 5_000_000


@pytest.fixture
def witness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Witness:
    return nostorage.make_witness(monkeypatch, tmp_path)


# -- images with a marker --------------------------------------------------------------------------


def _noise(side: int) -> Image.Image:
    return Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))


def big_png() -> Upload:
    marker = os.urandom(64)
    info = PngInfo()
    info.add_text("Comment", marker.hex())
    buf = io.BytesIO()
    _noise(1300).save(buf, format="PNG", pnginfo=info)
    return Upload("png", buf.getvalue(), marker)


def big_jpeg() -> Upload:
    marker = os.urandom(64)
    buf = io.BytesIO()
    _noise(1600).save(buf, format="JPEG", quality=100, comment=marker)
    return Upload("jpeg", buf.getvalue(), marker)


def big_unsupported() -> Upload:
    marker = os.urandom(64)
    data = b"%PDF-1.7\n" + marker + os.urandom(SIZE)
    return Upload("pdf", data, marker)


@pytest.fixture(scope="module")
def png() -> Upload:
    upload = big_png()
    assert len(upload.data) >= SIZE
    assert upload.marker.hex().encode() in upload.data
    return upload


@pytest.fixture(scope="module")
def jpeg() -> Upload:
    upload = big_jpeg()
    assert len(upload.data) >= SIZE
    assert upload.marker in upload.data
    return upload


# -- the service under watch -----------------------------------------------------------------------


@dataclass
class Setup:
    service: Service
    account: Account
    fake: FakeOpenRouter
    database_url: str


@asynccontextmanager
async def watched_service(
    service_factory: Callable[..., Any], database_url: str
) -> AsyncIterator[Setup]:
    with run_fake_openrouter() as fake:
        async with service_factory(
            provider="openrouter",
            openrouter_api_key=fake.api_key,
            openrouter_base_url=fake.base_url,
            upstream_timeout_s=2.0,
            # Longer than every backoff (max 3.5 s): four 502s end as 502, never as a budget
            # timeout (a budget just spent by backoff starts a last attempt with 0 s: a 504).
            upstream_budget_s=5.0,
        ) as service:
            account = await service.create_account(credits=CREDITS)
            # Warm up every code path once (lazy imports may write bytecode caches).
            small = io.BytesIO()
            _noise(64).save(small, format="PNG")
            warm = await service.client.post(
                URL,
                headers=account.headers,
                files={"image": ("w.png", small.getvalue(), "image/png")},
            )
            assert warm.status_code == 200, warm.text
            yield Setup(service, account, fake, database_url)


async def post_watched(setup: Setup, witness: Witness, **kwargs: Any) -> httpx.Response:
    temp_before = sorted(os.listdir(tempfile.gettempdir()))
    mark = (len(witness.writes), len(witness.spooled))
    headers = {**setup.account.headers, **kwargs.pop("headers", {})}
    with recording(witness):
        response = await setup.service.client.post(URL, headers=headers, **kwargs)
    allowed = allowed_writes(setup.database_url)
    new_writes = witness.writes[mark[0] :]
    assert [w for w in new_writes if not allowed(w[1])] == [], "a request wrote to disk"
    assert witness.spooled[mark[1] :] == [], "a request spooled to a temporary file"
    assert sorted(os.listdir(tempfile.gettempdir())) == temp_before
    return response


async def assert_not_stored(setup: Setup, *uploads: Upload) -> None:
    sessions = setup.service.app.state.services.sessions
    await nostorage.assert_not_stored(sessions, setup.database_url, setup.account.email, *uploads)


async def balance(setup: Setup) -> int:
    response = await setup.service.client.get("/v1/account", headers=setup.account.headers)
    credits: int = response.json()["credits_remaining"]
    return credits


# -- tests -----------------------------------------------------------------------------------------


async def test_success_paths_write_nothing(
    service_factory: Callable[..., Any],
    database_url: str,
    witness: Witness,
    png: Upload,
    jpeg: Upload,
) -> None:
    async with watched_service(service_factory, database_url) as setup:
        multipart = await post_watched(
            setup, witness, files={"image": ("big.png", png.data, "image/png")}
        )
        assert multipart.status_code == 200, multipart.text
        assert multipart.json()["image"]["width"] == 1300

        as_json = await post_watched(
            setup,
            witness,
            json={"image": jpeg.b64, "context": "A test card"},
            headers={"Idempotency-Key": "no-disk-json-1"},
        )
        assert as_json.status_code == 200, as_json.text
        assert as_json.json()["image"]["format"] == "jpeg"

        # Both really went to the model (downscaled, without the marker-bearing metadata).
        sent = setup.fake.images[-2:]
        assert [max(i.size) for i in sent] == [768, 768]
        assert all(png.marker.hex().encode() not in i.data for i in sent)
        assert all(jpeg.marker not in i.data for i in sent)
        assert await balance(setup) == CREDITS - 3  # the warm-up and the two uploads
        await assert_not_stored(setup, png, jpeg)


async def test_failure_paths_write_nothing(
    service_factory: Callable[..., Any],
    database_url: str,
    witness: Witness,
    png: Upload,
    jpeg: Upload,
) -> None:
    unsupported = big_unsupported()
    truncated_png = Upload("png-truncated", png.data[: len(png.data) * 3 // 4], png.marker)
    truncated_jpeg = Upload("jpeg-truncated", jpeg.data[: len(jpeg.data) * 3 // 4], jpeg.marker)
    async with watched_service(service_factory, database_url) as setup:
        before_model = len(setup.fake.chat_requests)
        cases: list[tuple[Upload, str, int, str]] = [
            (truncated_png, "multipart", 400, "invalid_image"),
            (truncated_jpeg, "json", 400, "invalid_image"),
            (unsupported, "multipart", 415, "unsupported_media_type"),
            (unsupported, "json", 415, "unsupported_media_type"),
        ]
        for upload, how, status, code in cases:
            if how == "multipart":
                kwargs: dict[str, Any] = {"files": {"image": ("f.bin", upload.data, "image/png")}}
            else:
                kwargs = {"json": {"image": upload.b64}}
            response = await post_watched(setup, witness, **kwargs)
            assert response.status_code == status, (upload.name, how, response.text)
            assert response.json()["code"] == code
        assert len(setup.fake.chat_requests) == before_model  # refused before any model call

        # The model fails: a non-retryable 400, then 502 on every attempt.
        setup.fake.enqueue(Status(400, "Scripted bad request"))
        response = await post_watched(
            setup, witness, files={"image": ("big.png", png.data, "image/png")}
        )
        assert response.status_code == 502, response.text
        assert response.json()["code"] == "upstream_error"
        setup.fake.enqueue(*[Status(502, "Scripted bad gateway")] * 10)
        response = await post_watched(setup, witness, json={"image": jpeg.b64})
        assert response.status_code == 502, response.text
        assert response.json()["code"] == "upstream_error"
        assert len(setup.fake.chat_requests) >= before_model + 2

        assert await balance(setup) == CREDITS - 1  # only the warm-up was charged
        await assert_not_stored(setup, png, jpeg, unsupported)


async def test_witnesses_catch_starlettes_spooling(witness: Witness, png: Upload) -> None:
    """Control: Starlette's own form parser on the same upload is caught by the witnesses."""

    async def form_endpoint(request: Request) -> JSONResponse:
        async with request.form() as form:
            upload = form["image"]
            assert not isinstance(upload, str)
            return JSONResponse({"size": len(await upload.read())})

    app = Starlette(routes=[Route("/upload", form_endpoint, methods=["POST"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        with recording(witness):
            response = await client.post(
                "/upload", files={"image": ("big.png", png.data, "image/png")}
            )
    assert response.json() == {"size": len(png.data)}
    assert witness.spooled, "the SpooledTemporaryFile spy saw nothing"
    assert witness.writes, "the audit hook saw no write for a spool past 1 MB"
    assert all(path.startswith(tempfile.gettempdir()) for _event, path in witness.writes)


def test_audit_hook_sees_writes_and_stays_inert(tmp_path: Path) -> None:
    """Control: each kind of write is recorded while recording, and nothing otherwise."""
    target = tmp_path / "x.bin"
    outside = Witness()
    with recording(outside):
        pass
    target.write_bytes(b"before")  # not recording: not seen
    inside = Witness()
    with recording(inside):
        target.write_bytes(b"data")
        fd = os.open(tmp_path / "y.bin", os.O_WRONLY | os.O_CREAT)
        os.close(fd)
        os.rename(tmp_path / "y.bin", tmp_path / "z.bin")
        handle, name = tempfile.mkstemp(dir=tmp_path)
        os.close(handle)
        with tempfile.TemporaryFile(dir=tmp_path) as anonymous:
            anonymous.write(b"data")
        target.read_bytes()  # reading is not writing
    paths = [path for _event, path in inside.writes]
    assert str(target) in paths
    assert str(tmp_path / "y.bin") in paths
    assert str(tmp_path / "z.bin") in paths
    assert name in paths
    assert any(event == "open" and path == str(tmp_path) for event, path in inside.writes)
    assert paths.count(str(target)) == 1
    assert outside.writes == []
