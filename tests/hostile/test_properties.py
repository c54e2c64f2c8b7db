"""Properties over any input: any bytes into the image pipeline give a result or an
``AppError``; any JSON into the endpoints that read JSON gives a 2xx or a 4xx problem.

Bytes are drawn three ways: plain, behind each accepted format's magic number (so the decoders
are reached, not only the sniffer), and as valid small images of every format with bytes
flipped, cut or inserted. JSON is drawn as any JSON value, and as objects with the endpoint's
own field names holding any JSON or values close to valid ones (a real image, URLs, language
tags, amounts at their limits).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alttext.describe.errors import AppError
from alttext.describe.image import ImageLimits, prepare_image, read_header, sniff_format
from alttext.generation.schemas import EXAMPLE_IMAGE
from tests.conftest import Account, Service, make_settings, running_service
from tests.fakes.stripe import run_fake_stripe
from tests.hostile.corpus import encode, photo

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
FORMATS = {"jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"}

# --- bytes into the engine ---------------------------------------------------------------------

MAGICS = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xc2\x00\x11\x08",  # progressive SOF, no tables
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF87a",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\xff\xff\xff\xffWEBPVP8L",
    b"RIFF\x20\x00\x00\x00WEBPVP8X",
    b"BM",
    b"II*\x00\x08\x00\x00\x00",
    b"MM\x00*\x00\x00\x00\x08",
    b"II+\x00\x08\x00\x00\x00",
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
    b"\x00\x00\x00\x10ftypmif1\x00\x00\x00\x00",
]
SEEDS = [
    encode(photo(24, 16), "JPEG"),
    encode(photo(24, 16), "JPEG", progressive=True),
    encode(photo(24, 16), "PNG"),
    encode(photo(24, 16).convert("P"), "GIF"),
    encode(photo(24, 16), "WEBP"),
    encode(photo(24, 16), "WEBP", lossless=True),
    encode(photo(24, 16), "BMP"),
    encode(photo(24, 16), "TIFF"),
    encode(photo(24, 16), "TIFF", compression="tiff_lzw"),
    encode(photo(24, 16), "HEIF"),
    encode(photo(24, 16), "AVIF"),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for position, value in draw(st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)))):
        data[position % len(data)] = value
    insert_at = draw(st.integers(0, len(data)))
    data[insert_at:insert_at] = draw(st.binary(max_size=16))
    return bytes(data[: max(1, len(data) * draw(st.integers(1, 100)) // 100)])


ANY_BYTES = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGICS), st.binary(max_size=4096)),
    mutated(),
)


def test_any_bytes_give_a_result_or_an_app_error() -> None:
    seen: set[tuple[str, int]] = set()

    @settings(max_examples=1500, deadline=None, database=None)
    @given(ANY_BYTES, st.sampled_from([ImageLimits(), ImageLimits(max_pixels=1_000_000)]))
    def run(data: bytes, limits: ImageLimits) -> None:
        assert sniff_format(data) in FORMATS | {None}
        for function in (read_header, prepare_image):
            try:
                function(data, limits)
                status = 200
            except AppError as exc:
                status = exc.http_status
            assert status in (200, 400, 413, 415)
            seen.add((function.__name__, status))

    run()
    # Past the sniffer: images prepared, and refused by the decoders.
    assert {("prepare_image", 200), ("prepare_image", 400), ("read_header", 415)} <= seen


# --- JSON into the endpoints -------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
# Values near valid ones, so the checks past the first are reached too.
NEAR = st.sampled_from(
    [
        EXAMPLE_IMAGE,
        f"data:image/png;base64,{EXAMPLE_IMAGE}",
        EXAMPLE_IMAGE[:-4],
        "",
        "https://example.com/a.png",
        "http://127.0.0.1/x.png",
        "ftp://example.com/a.png",
        "en",
        " EN-us ",
        "xx",
        ["en", "de"],
        ["en", "EN"],
        [],
        "decorative",
        "functional",
        20,
        19,
        1000,
        1001,
        "5.00",
        5,
        4.99,
        10_000.01,
        1e308,
        "1e3",
        "user@example.com",
        "not an address",
        "job_0000000000000000000000000a",
        True,
    ]
)
VALUE = st.one_of(NEAR, JSON)
FIELDS = {
    "alt_text": [
        "image",
        "image_url",
        "context",
        "role",
        "link_target",
        "language",
        "max_length",
        "keywords",
        "long_description",
        "model",
    ],
    "account": ["name", "email", "history", "product_email"],
    "keys": ["name"],
    "checkout": ["amount_usd"],
    "signup": [
        "email",
        "name",
        "accept_terms",
        "accept_privacy",
        "confirm_age_18",
        "product_email",
    ],
}


def objects(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={name: VALUE for name in fields})


ALT_TEXT_ITEM = st.one_of(
    objects(FIELDS["alt_text"]),
    st.builds(lambda item, id_: {**item, "id": id_}, objects(FIELDS["alt_text"]), st.text()),
)
BODIES = {
    ("POST", "/v1/alt-text"): objects(FIELDS["alt_text"]),
    ("POST", "/v1/alt-text/batch"): st.fixed_dictionaries(
        {},
        optional={
            "items": st.one_of(st.lists(ALT_TEXT_ITEM, max_size=4), JSON),
            "defaults": st.one_of(objects(FIELDS["alt_text"]), JSON),
        },
    ),
    ("POST", "/v1/jobs"): st.fixed_dictionaries(
        {},
        optional={
            "items": st.one_of(st.lists(ALT_TEXT_ITEM, max_size=3), JSON),
            "source": st.one_of(objects(["url", "max_pages"]), JSON),
            "overwrite": VALUE,
            "defaults": st.one_of(objects(FIELDS["alt_text"]), JSON),
            "webhook_url": VALUE,
        },
    ),
    ("PATCH", "/v1/account"): objects(FIELDS["account"]),
    ("POST", "/v1/keys"): objects(FIELDS["keys"]),
    ("POST", "/v1/billing/checkout"): objects(FIELDS["checkout"]),
    ("POST", "/v1/signup"): objects(FIELDS["signup"]),
}


class SyncService:
    """The app in this thread's own event loop, so that Hypothesis' synchronous tests drive it."""

    def __init__(self, settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._running = running_service(settings)
        self.service: Service = self.loop.run_until_complete(self._running.__aenter__())
        self.account: Account = self.loop.run_until_complete(
            self.service.create_account(credits=1_000_000)
        )

    def request(self, method: str, path: str, body: bytes) -> httpx.Response:
        headers = {**self.account.headers, "Content-Type": "application/json"}
        call = self.service.client.request(method, path, content=body, headers=headers)
        return self.loop.run_until_complete(call)

    def close(self) -> None:
        self.loop.run_until_complete(self._running.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def sync_service(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Any]:
    path = tmp_path_factory.mktemp("hostile") / "test.db"
    shutil.copy(sqlite_template, path)
    with run_fake_stripe() as stripe:
        settings = make_settings(
            f"sqlite+aiosqlite:///{path}",
            rate_limit_per_minute=1_000_000,
            stripe_secret_key=stripe.api_key,
            stripe_api_base=stripe.base_url,
            stripe_webhook_secret=stripe.webhook_secret,
        )
        service = SyncService(settings)
        try:
            yield service
        finally:
            service.close()


@pytest.mark.parametrize(("method", "path"), list(BODIES))
def test_any_json_gives_a_2xx_or_a_4xx_problem(sync_service: Any, method: str, path: str) -> None:
    statuses: set[int] = set()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=st.one_of(BODIES[(method, path)], JSON))
    def run(body: Any) -> None:
        response = sync_service.request(method, path, json.dumps(body).encode())
        statuses.add(response.status_code)
        assert 200 <= response.status_code < 500, (body, response.text[:300])
        assert response.headers["x-request-id"]
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["status"] == response.status_code
            assert problem["code"]

    run()
    # The drawn bodies reached past the parser: some were refused field by field (422).
    assert 422 in statuses, statuses
