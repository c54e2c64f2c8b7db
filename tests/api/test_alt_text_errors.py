"""Bad input to ``POST /v1/alt-text`` gets a clear 4xx problem+json, and nothing else.

Every case checks the status, ``application/problem+json``, the stable ``code`` from API.md, a
``detail`` a person can act on, the ``request_id``, and that the account's balance did not move:
failed generations are never charged. A hypothesis fuzz at the end posts junk and asserts that
nothing ever turns into a 500.

The generic "public URL redirects to a private address" case is covered by the fetcher's unit
tests (tests/describe/test_fetch.py, with an injected resolver); here the app-level redirect case
is a redirect to a refused scheme.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.api.test_alt_text_basic import text_png
from tests.conftest import Account, Service
from tests.fakes.fixtures import running_image_host

CREDITS = 100
URL = "/v1/alt-text"
SMALL_CAP = 100_000  # max_image_bytes for the body-cap cases


# -- images ----------------------------------------------------------------------------------------


def noise(size: tuple[int, int], fmt: str) -> bytes:
    img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    data = noise((400, 300), "JPEG")
    return data[: len(data) * 6 // 10]


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def _replace_chunk(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """``png`` with its first ``kind`` chunk's payload replaced (CRC recomputed)."""
    at = png.index(kind) - 4
    (length,) = struct.unpack(">I", png[at : at + 4])
    return png[:at] + _chunk(kind, payload) + png[at + 12 + length :]


def corrupt_png() -> bytes:
    """Valid signature, IHDR and chunk CRCs; the IDAT payload is random (not a zlib stream)."""
    png = noise((100, 100), "PNG")
    at = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[at : at + 4])
    return _replace_chunk(png, b"IDAT", os.urandom(length))


def bomb_png() -> bytes:
    """A few hundred bytes whose IHDR declares 100000 x 100000 pixels."""
    png = noise((16, 16), "PNG")
    at = png.index(b"IHDR") + 4
    ihdr = struct.pack(">II", 100_000, 100_000) + png[at + 8 : at + 13]
    return _replace_chunk(png, b"IHDR", ihdr)


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, format="PNG")
    return buf.getvalue()


PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<circle cx="50" cy="50" r="40" fill="red"/></svg>'
)
TEXT = b"Hello, this is a plain text file and certainly not an image.\n" * 4


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- assertions ------------------------------------------------------------------------------------


async def balance(service: Service, account: Account) -> int:
    response = await service.client.get("/v1/account", headers=account.headers)
    assert response.status_code == 200, response.text
    credits: int = response.json()["credits_remaining"]
    return credits


async def assert_problem(
    service: Service,
    account: Account,
    response: httpx.Response,
    status: int,
    code: str,
    *,
    detail: str | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"https://alttext.dev/errors/{code}"
    assert isinstance(body["title"], str)
    assert body["title"]
    # Helpful: a sentence, not a bare code; never a stack trace.
    assert isinstance(body["detail"], str)
    assert len(body["detail"]) >= 15, body
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    if detail is not None:
        assert detail.lower() in body["detail"].lower(), body["detail"]
    assert body["request_id"]
    assert body["request_id"] == response.headers["x-request-id"]
    if field is not None:
        fields = [e.get("field") or "" for e in body.get("errors") or []]
        assert any(field in f for f in fields), body
        assert all(isinstance(e.get("message"), str) and e["message"] for e in body["errors"])
    # Failed generations are never charged.
    assert await balance(service, account) == CREDITS
    return body


@pytest.fixture
async def svc(service_factory: Callable[..., Any]) -> AsyncIterator[Service]:
    async with service_factory(rate_limit_per_minute=100_000) as service:
        yield service


@pytest.fixture
async def acct(svc: Service) -> Account:
    return await svc.create_account(credits=CREDITS)


# -- images that are not (usable) images -----------------------------------------------------------

BAD_UPLOADS: list[tuple[str, Callable[[], bytes], int, str, str]] = [
    ("truncated_jpeg", truncated_jpeg, 400, "invalid_image", "truncated or corrupt"),
    ("corrupt_png", corrupt_png, 400, "invalid_image", "truncated or corrupt"),
    ("text", lambda: TEXT, 415, "unsupported_media_type", "JPEG, PNG"),
    ("pdf", lambda: PDF, 415, "unsupported_media_type", "JPEG, PNG"),
    ("svg", lambda: SVG, 415, "unsupported_media_type", "JPEG, PNG"),
    ("too_small", tiny_png, 400, "invalid_image", "4x4"),
    ("bomb", bomb_png, 413, "image_too_large", "pixels"),
]


@pytest.mark.parametrize(
    ("make", "status", "code", "detail"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
async def test_bad_image_bytes_multipart_and_json(
    svc: Service, acct: Account, make: Callable[[], bytes], status: int, code: str, detail: str
) -> None:
    data = make()
    # The file name and declared type lie on purpose: the format comes from the bytes.
    multipart = await svc.client.post(
        URL, headers=acct.headers, files={"image": ("photo.png", data, "image/png")}
    )
    await assert_problem(svc, acct, multipart, status, code, detail=detail)
    as_json = await svc.client.post(URL, headers=acct.headers, json={"image": b64(data)})
    await assert_problem(svc, acct, as_json, status, code, detail=detail)


def test_bomb_is_small_but_declares_ten_billion_pixels() -> None:
    data = bomb_png()
    assert len(data) < 2_000
    at = data.index(b"IHDR") + 4
    assert struct.unpack(">II", data[at : at + 8]) == (100_000, 100_000)
    with pytest.raises(Image.DecompressionBombError):  # Pillow itself sees the declared size
        Image.open(io.BytesIO(data))


# -- the image field -------------------------------------------------------------------------------

IMAGE_FIELDS = [
    ("empty", "", "empty"),
    ("whitespace", "  \n ", "empty"),
    ("invalid_base64", "this is *not* base64!", "not valid base64"),
    ("data_uri_without_base64", "data:image/png,iVBORw0KGgo=", "data:image/...;base64"),
    ("data_uri_empty", "data:image/png;base64,", "empty"),
    ("non_ascii", "iVBORw0K\u00e9\u00e9==", "not valid base64"),
]


@pytest.mark.parametrize(
    ("value", "detail"), [c[1:] for c in IMAGE_FIELDS], ids=[c[0] for c in IMAGE_FIELDS]
)
async def test_unusable_image_field(svc: Service, acct: Account, value: str, detail: str) -> None:
    response = await svc.client.post(URL, headers=acct.headers, json={"image": value})
    body = await assert_problem(svc, acct, response, 400, "invalid_image", detail=detail)
    assert value.strip() == "" or value not in body["detail"]  # the input is never echoed


async def test_empty_upload(svc: Service, acct: Account) -> None:
    response = await svc.client.post(
        URL, headers=acct.headers, files={"image": ("empty.png", b"", "image/png")}
    )
    await assert_problem(svc, acct, response, 400, "invalid_image", detail="empty")


# -- fields ----------------------------------------------------------------------------------------

GOOD = b64(text_png())
FIELD_CASES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    # (id, body, errors[].field that must be named, detail substring)
    ("both_images", {"image": GOOD, "image_url": "https://example.com/a.png"}, None, None),
    ("neither_image", {"context": "A page about cats"}, None, None),
    ("unknown_field", {"image": GOOD, "colour": "red"}, "colour", None),
    ("role_banana", {"image": GOOD, "role": "banana"}, "role", None),
    ("language_unknown", {"image": GOOD, "language": "xx-nope"}, "language", None),
    ("language_list_unknown", {"image": GOOD, "language": ["en", "xx-nope"]}, "language", None),
    ("language_list_too_long", {"image": GOOD, "language": ["en", "de", "fr", "es", "it", "nl"]},
     "language", None),
    ("language_empty_list", {"image": GOOD, "language": []}, "language", None),
    ("max_length_19", {"image": GOOD, "max_length": 19}, "max_length", None),
    ("max_length_1001", {"image": GOOD, "max_length": 1001}, "max_length", None),
    ("max_length_text", {"image": GOOD, "max_length": "long"}, "max_length", None),
    ("keywords_11", {"image": GOOD, "keywords": [f"kw{i}" for i in range(11)]}, "keywords", None),
    ("context_2001", {"image": GOOD, "context": "x" * 2001}, "context", None),
    ("image_not_string", {"image": 12345}, "image", None),
    ("model_not_offered", {"image": GOOD, "model": "openai/o1-pro"}, "model", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "field", "detail"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
async def test_invalid_fields_are_422_with_errors(
    svc: Service, acct: Account, payload: dict[str, Any], field: str | None, detail: str | None
) -> None:
    response = await svc.client.post(URL, headers=acct.headers, json=payload)
    body = await assert_problem(svc, acct, response, 422, "invalid_request", field=field)
    assert body["errors"], body
    if field is None:
        # A whole-body rule: the message says what to do.
        assert any("exactly one of image and image_url" in e["message"] for e in body["errors"])
    assert GOOD[:40] not in response.text  # the base64 image is never echoed


MULTIPART_FIELD_CASES: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("unknown_field", {"colour": "red"}, "colour", "invalid or missing"),
    ("role_banana", {"role": "banana"}, "role", "invalid or missing"),
    ("max_length_19", {"max_length": "19"}, "max_length", "invalid or missing"),
    ("keywords_11", {"keywords": ",".join(f"kw{i}" for i in range(11))}, "keywords", "invalid"),
    ("both_images", {"image_url": "https://example.com/a.png"}, None, "exactly one"),
]


@pytest.mark.parametrize(
    ("fields", "field", "detail"),
    [c[1:] for c in MULTIPART_FIELD_CASES],
    ids=[c[0] for c in MULTIPART_FIELD_CASES],
)
async def test_invalid_multipart_fields_are_422(
    svc: Service, acct: Account, fields: dict[str, Any], field: str | None, detail: str
) -> None:
    response = await svc.client.post(
        URL, headers=acct.headers, files={"image": ("a.png", text_png(), "image/png")}, data=fields
    )
    await assert_problem(svc, acct, response, 422, "invalid_request", field=field, detail=detail)


async def test_multipart_without_any_image(svc: Service, acct: Account) -> None:
    response = await svc.client.post(
        URL, headers=acct.headers, files={"role": (None, "informative")}
    )
    await assert_problem(svc, acct, response, 422, "invalid_request", detail="field 'image'")


async def test_multipart_image_sent_as_text_field(svc: Service, acct: Account) -> None:
    # A multipart text part (no filename) named "image", as a form serialiser would send base64.
    response = await svc.client.post(URL, headers=acct.headers, files={"image": (None, GOOD)})
    await assert_problem(svc, acct, response, 422, "invalid_request", detail="as a file")


async def test_multipart_with_two_files(svc: Service, acct: Account) -> None:
    twice = await svc.client.post(
        URL,
        headers=acct.headers,
        files=[
            ("image", ("a.png", text_png(), "image/png")),
            ("image", ("b.png", tiny_png(), "image/png")),
        ],
    )
    await assert_problem(svc, acct, twice, 400, "invalid_request", detail="more than one file")
    other = await svc.client.post(
        URL,
        headers=acct.headers,
        files=[
            ("image", ("a.png", text_png(), "image/png")),
            ("extra", ("b.png", tiny_png(), "image/png")),
        ],
    )
    await assert_problem(svc, acct, other, 422, "invalid_request", detail="extra")


# -- the body itself -------------------------------------------------------------------------------


async def test_malformed_json_is_400(svc: Service, acct: Account) -> None:
    headers = {**acct.headers, "Content-Type": "application/json"}
    for raw in (b'{"image": "abc"', b"\xff\xfe not utf-8", b"", b"{'image': 'abc'}"):
        response = await svc.client.post(URL, headers=headers, content=raw)
        await assert_problem(svc, acct, response, 400, "invalid_request", detail="not valid JSON")


@pytest.mark.parametrize("value", [[{"image": GOOD}], "just a string", 42, None])
async def test_json_that_is_not_an_object_is_400(svc: Service, acct: Account, value: Any) -> None:
    response = await svc.client.post(
        URL,
        headers={**acct.headers, "Content-Type": "application/json"},
        content=json.dumps(value).encode(),
    )
    await assert_problem(svc, acct, response, 400, "invalid_request", detail="JSON object")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "image/png", "application/x-www-form-urlencoded", None]
)
async def test_wrong_content_type_is_415(
    svc: Service, acct: Account, content_type: str | None
) -> None:
    headers = dict(acct.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await svc.client.post(URL, headers=headers, content=json.dumps({"image": GOOD}))
    await assert_problem(
        svc, acct, response, 415, "unsupported_media_type", detail="multipart/form-data"
    )


async def test_multipart_without_boundary_is_400(svc: Service, acct: Account) -> None:
    response = await svc.client.post(
        URL, headers={**acct.headers, "Content-Type": "multipart/form-data"}, content=b"--x--"
    )
    await assert_problem(svc, acct, response, 400, "invalid_request", detail="boundary")


class CountingBody:
    """An async body of ``total`` bytes in 64 KiB chunks that counts what the server pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = b"A" * 65_536
        while self.sent < self.total:
            piece = chunk[: self.total - self.sent]
            self.sent += len(piece)
            yield piece


async def test_body_over_the_cap_is_413_before_it_is_read(
    service_factory: Callable[..., Any],
) -> None:
    async with service_factory(max_image_bytes=SMALL_CAP) as small:
        account = await small.create_account(credits=CREDITS)
        total = 8_000_000
        json_headers = {**account.headers, "Content-Type": "application/json"}

        # Declared: refused on the header, before a single body byte is pulled.
        declared = CountingBody(total)
        response = await small.client.post(
            URL,
            headers={**json_headers, "Content-Length": str(total)},
            content=declared.__aiter__(),
        )
        await assert_problem(small, account, response, 413, "image_too_large", detail="limit")
        assert declared.sent <= 65_536, declared.sent

        # Streamed without Content-Length: refused once the running count passes the cap.
        streamed = CountingBody(total)
        response = await small.client.post(URL, headers=json_headers, content=streamed.__aiter__())
        assert "content-length" not in response.request.headers
        await assert_problem(small, account, response, 413, "image_too_large", detail="limit")
        assert streamed.sent < 1_000_000, streamed.sent

        # A multipart upload over the cap (httpx declares its length).
        response = await small.client.post(
            URL,
            headers=account.headers,
            files={"image": ("big.png", os.urandom(SMALL_CAP * 5), "image/png")},
        )
        await assert_problem(small, account, response, 413, "image_too_large", detail="limit")

        # Under the body cap, but the decoded image is over max_image_bytes.
        response = await small.client.post(
            URL, headers=account.headers, json={"image": b64(noise((300, 300), "PNG"))}
        )
        await assert_problem(small, account, response, 413, "image_too_large", detail="limit")


async def test_content_length_that_is_not_a_number_is_400(svc: Service, acct: Account) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"{}"

    response = await svc.client.post(
        URL,
        headers={**acct.headers, "Content-Type": "application/json", "Content-Length": "lots"},
        content=body(),
    )
    await assert_problem(svc, acct, response, 400, "invalid_request", detail="Content-Length")


# -- image_url -------------------------------------------------------------------------------------

SSRF_URLS = [
    ("http://127.0.0.1/", "refused"),
    ("http://localhost/", "refused"),
    ("http://169.254.169.254/latest/meta-data/", "refused"),
    ("http://2130706433/", "refused"),
    ("http://0177.0.0.1/", "not a valid url"),  # httpx itself refuses a leading-zero dotted quad
    ("http://0x7f.1/", "refused"),
    ("http://[::1]/", "refused"),
    ("http://[::ffff:127.0.0.1]/", "refused"),
    ("http://10.0.0.1/", "refused"),
    ("http://user:pass@93.184.215.14/", "user name or password"),
    ("file:///etc/passwd", "only http"),
    ("gopher://x", "only http"),
    ("ftp://x", "only http"),
]


@pytest.mark.parametrize(("url", "detail"), SSRF_URLS, ids=[u for u, _ in SSRF_URLS])
async def test_private_and_non_http_urls_are_refused(
    svc: Service, acct: Account, url: str, detail: str
) -> None:
    assert svc.settings.allow_private_urls is False
    response = await svc.client.post(URL, headers=acct.headers, json={"image_url": url})
    body = await assert_problem(svc, acct, response, 400, "image_fetch_failed", detail=detail)
    assert "root:" not in body["detail"]


async def test_url_fetch_failures(service_factory: Callable[..., Any]) -> None:
    """Against a real local server (private addresses allowed so it can be reached at all)."""
    with running_image_host() as host:
        host.redirect("/to-file", "file:///etc/passwd")
        host.drip("/drip", interval_s=0.05)
        host.stall("/stall")
        host.error("/gone", 404)
        host.image("/ok.png", text_png())
        async with service_factory(
            allow_private_urls=True, fetch_timeout_s=1.0, rate_limit_per_minute=100_000
        ) as svc:
            account = await svc.create_account(credits=CREDITS)
            cases = [
                ("/to-file", "only http"),
                ("/drip", "timed out"),
                ("/stall", "timed out"),
                ("/gone", "HTTP 404"),
            ]
            for path, detail in cases:
                response = await svc.client.post(
                    URL, headers=account.headers, json={"image_url": host.url(path)}
                )
                await assert_problem(
                    svc, account, response, 400, "image_fetch_failed", detail=detail
                )
            assert not host.requests_to("/etc/passwd")
            # Control: the same service does fetch a good URL (so the failures above are real).
            ok = await svc.client.post(
                URL, headers=account.headers, json={"image_url": host.url("/ok.png")}
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["credits_remaining"] == CREDITS - 1


# -- never a 500 -----------------------------------------------------------------------------------

_KEYS = [
    "image", "image_url", "context", "role", "link_target", "language", "max_length",
    "keywords", "long_description", "model", "", "Image", "extra", "__proto__",
]  # fmt: skip
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        ["auto", "decorative", "en", "de-CH", "zh-Hant-TW", "data:image/png;base64,", "=" * 7,
         b64(tiny_png()), b64(corrupt_png()), b64(b"\x89PNG\r\n\x1a\n" + bytes(40)),
         "http://127.0.0.1/", "ftp://x", "http://[::1", "http://256.1.1.1/", "\x00", "\ud7ff"]
    )
)  # fmt: skip
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=12,
)
# Mostly-valid options around a real image, so the fuzz also reaches the engine and the rules.
_plausible = {
    "context": st.text(max_size=300) | _json_values,
    "role": st.sampled_from(["auto", "informative", "decorative", "functional", "text", "complex"])
    | _json_values,
    "link_target": st.text(max_size=50),
    "language": st.sampled_from(["en", "de", "fr-CA", ["en", "ja"], ["en", "en"], "EN_us"])
    | _json_values,
    "max_length": st.integers(min_value=0, max_value=1_100) | _json_values,
    "keywords": st.lists(st.text(max_size=70), max_size=12) | _json_values,
    "long_description": st.booleans() | _json_values,
}
_near_valid = st.fixed_dictionaries(
    {"image": st.just(b64(text_png("Open 9 to 5", (240, 80))))}, optional=_plausible
)
_bodies = st.one_of(
    _near_valid,
    st.dictionaries(st.sampled_from(_KEYS), _json_values, max_size=6),
    _json_values,
)
_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM",
          b"II*\x00", b"\x00\x00\x00\x18ftypheic", b"\x00\x00\x00\x18ftypavif"]  # fmt: skip
_uploads = st.tuples(st.sampled_from(_MAGIC), st.binary(max_size=3_000)).map(lambda t: t[0] + t[1])


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # random TIFF-ish bytes
async def test_fuzz_never_500(svc: Service) -> None:
    account = await svc.create_account("fuzz@example.com", credits=10_000)
    loop = asyncio.get_running_loop()
    statuses: list[int] = []
    charged: list[int] = []  # a caller-decorative success is free

    def post(headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        # Hypothesis runs in a worker thread; the requests run on the test's event loop.
        future = asyncio.run_coroutine_threadsafe(
            svc.client.post(URL, headers={**account.headers, **(headers or {})}, **kwargs), loop
        )
        response = future.result(timeout=60)
        if response.status_code == 200:
            charged.append(response.json()["usage"]["credits"])
        return response

    fuzz = settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    @fuzz
    @given(body=_bodies)
    def json_bodies(body: Any) -> None:
        raw = json.dumps(body, allow_nan=True).encode()
        response = post(content=raw, headers={"Content-Type": "application/json"})
        statuses.append(response.status_code)
        assert response.status_code < 500, (body, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    @fuzz
    @given(
        data=_uploads,
        fields=st.dictionaries(st.sampled_from(_KEYS[1:]), st.text(max_size=30), max_size=3),
    )
    def uploads(data: bytes, fields: dict[str, str]) -> None:
        response = post(files={"image": ("f", data, "application/octet-stream")}, data=fields)
        statuses.append(response.status_code)
        assert response.status_code < 500, (data[:40], fields, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"

    @fuzz
    @given(raw=st.binary(max_size=2_000), content_type=st.sampled_from(
        ["application/json", "multipart/form-data; boundary=xyz", "multipart/form-data",
         "application/problem+json", "text/plain"]))  # fmt: skip
    def raw_bodies(raw: bytes, content_type: str) -> None:
        response = post(content=raw, headers={"Content-Type": content_type})
        statuses.append(response.status_code)
        assert response.status_code < 500, (raw[:40], content_type, response.text)

    await loop.run_in_executor(None, json_bodies)
    await loop.run_in_executor(None, uploads)
    await loop.run_in_executor(None, raw_bodies)
    assert len(statuses) >= 100
    assert {400, 415, 422} <= set(statuses)  # the fuzz reached the parser, fields and images
    # Whatever failed was not charged; only successes (if any) cost a credit.
    assert len(charged) == statuses.count(200)
    assert await balance(svc, account) == 10_000 - sum(charged)
