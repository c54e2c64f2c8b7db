"""After the response, the process holds nothing of the image.

For a multipart upload, base64 in JSON and an ``image_url`` (and for a model failure and a
truncated upload, where tracebacks could keep frames and their locals alive), each request of
a ~1 MB image runs with three witnesses:

* every PIL image constructed (in any thread) is tracked by a weak reference: after the
  response and ``gc.collect()`` all must be dead;
* tracemalloc runs only during the request, so its final snapshot (after ``gc.collect()``)
  lists exactly what the request allocated and is still alive: nothing may be as large as the
  image (bytes, base64 strings and buffers are not weak-referenceable, this sees them);
* finally every object the garbage collector knows is walked, and every string, bytes or
  buffer it references is searched for the images' markers and runs of their bytes or base64.

The fakes (model provider and image host) keep what they received for assertions; they are
reset before measuring so that only the service's own memory is judged.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.openrouter import FakeOpenRouter, Status
from tests.privacy import nostorage
from tests.privacy.nostorage import Upload

SIDE = 600  # an uncompressed PNG of about 1 MB
CASES = [
    ("multipart", None, 200),
    ("base64", None, 200),
    ("image_url", None, 200),
    ("multipart", Status(400, "Scripted bad request"), 502),
    ("truncated", None, 400),
]


def request_args(way: str, upload: Upload, host: FakeImageHost) -> tuple[str, dict[str, Any]]:
    if way == "multipart":
        return "/v1/alt-text", {"files": {"image": ("i.png", upload.data, "image/png")}}
    if way == "image_url":
        host.image("/image.png", upload.data)
        return "/v1/alt-text", {"json": {"image_url": host.url("/image.png")}}
    if way == "truncated":
        return "/v1/alt-text", {"json": {"image": upload.truncated().b64}}
    return "/v1/alt-text", {"json": {"image": upload.b64}}


async def run_one(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    way: str,
    upload: Upload,
    host: FakeImageHost,
    fake: FakeOpenRouter,
) -> int:
    """The request; only its status survives, and the fakes forget what they received."""
    url, kwargs = request_args(way, upload, host)
    response = await client.post(url, headers=headers, **kwargs)
    status = response.status_code
    del response, kwargs
    host.error("/image.png")  # drops the route holding the image
    fake.reset()
    return status


async def test_no_reference_survives_the_response(
    service_factory: Callable[..., Any],
    fake_openrouter: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = openrouter_settings(fake_openrouter, allow_private_urls=True, upstream_budget_s=3.0)
    needles: dict[str, bytes] = {}
    with running_image_host() as host:
        async with service_factory(**settings) as service:
            account = await service.create_account(credits=100)
            client, headers = service.client, account.headers
            # Warm every path once: lazy imports and first-use caches are not the image's.
            for way, behaviour, expected in CASES:
                warm = nostorage.marked_png(64)
                if behaviour is not None:
                    fake_openrouter.script(behaviour)
                status = await run_one(client, headers, way, warm, host, fake_openrouter)
                assert status == expected, way
            del warm

            for way, behaviour, expected in CASES:
                upload = nostorage.marked_png(SIDE, compress_level=0)
                size = len(upload.data)
                assert size > 1_000_000
                needles.update({f"{way} {k}": v for k, v in upload.needles().items()})
                if behaviour is not None:
                    fake_openrouter.script(behaviour)
                with (
                    nostorage.tracking_images(monkeypatch) as refs,
                    nostorage.tracing_allocations() as snapshots,
                ):
                    status = await run_one(client, headers, way, upload, host, fake_openrouter)
                    del upload
                assert status == expected, way
                if way != "truncated":
                    assert refs, "control: the request made PIL images"
                alive = nostorage.live_images(refs)
                assert alive == [], f"{way}: PIL images still alive: {alive}"
                large = nostorage.large_allocations(snapshots[0], size // 2)
                assert large == [], f"{way}: large allocations still alive:\n" + "\n".join(large)

            copies = nostorage.live_copies(needles, keep=[needles])
            assert copies == [], copies


def test_witnesses_see_a_kept_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: each memory witness catches an image, bytes or base64 that is kept."""
    upload = nostorage.marked_png(SIDE, compress_level=0)
    needles = upload.needles()
    kept: list[Any] = []
    with (
        nostorage.tracking_images(monkeypatch) as refs,
        nostorage.tracing_allocations() as snapshots,
    ):
        kept.append(Image.new("RGB", (8, 8)).copy())
        kept.append(upload.data[1:])  # a copy made while tracing
        kept.append(upload.b64)
    assert len(nostorage.live_images(refs)) >= 1
    assert len(nostorage.large_allocations(snapshots[0], len(upload.data) // 2)) >= 2
    del upload
    holders = nostorage.live_copies(needles, keep=[needles])
    assert any("bytes" in h for h in holders)
    assert any("str" in h for h in holders)
    kept.clear()
    assert nostorage.live_copies(needles, keep=[needles]) == []
    assert not tracemalloc.is_tracing()
    assert all(isinstance(r, weakref.ref) for r in refs)
    gc.collect()
