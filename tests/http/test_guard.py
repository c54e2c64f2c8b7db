"""RequestGuard: a cap on the request head, a timeout on stalled bodies, quiet disconnects.

The head cap is checked exactly on a bare ASGI call; the rest against a real uvicorn over raw
sockets, because only there do a stalled or abandoned body and 1 MB of headers happen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from alttext.app import create_app
from alttext.http.guard import RequestGuard, head_size
from tests.conftest import make_settings
from tests.http.live import Live, live_server, raw_connection, request_head, seed_key

# -- the head cap, exactly -----------------------------------------------------------------------


def scope_with(headers: list[tuple[bytes, bytes]], cap: int) -> Scope:
    settings = make_settings("sqlite+aiosqlite:///:memory:", max_header_bytes=cap)
    app = SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(settings=settings)))
    return {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"a=1",
        "headers": headers,
        "app": app,
        "state": {"request_id": "req_test"},
    }


async def call_guard(scope: Scope) -> tuple[list[Message], bool]:
    reached = False

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reached
        reached = True
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestGuard(inner)(scope, receive, send)
    return sent, reached


def test_head_size_counts_the_target_and_each_header_line() -> None:
    scope = scope_with([(b"host", b"x"), (b"x-a", b"12345")], cap=1024)
    # "/healthz" + "a=1", then "host: x\r\n" and "x-a: 12345\r\n".
    assert head_size(scope) == 8 + 3 + (4 + 1 + 4) + (3 + 5 + 4)


async def test_a_head_at_the_cap_passes_one_byte_more_is_431() -> None:
    base = scope_with([(b"x-filler", b"")], cap=1024)
    filler = b"f" * (1024 - head_size(base))
    at_cap = scope_with([(b"x-filler", filler)], cap=1024)
    assert head_size(at_cap) == 1024
    sent, reached = await call_guard(at_cap)
    assert reached
    assert sent[0]["status"] == 204

    over = scope_with([(b"x-filler", filler + b"f")], cap=1024)
    sent, reached = await call_guard(over)
    assert not reached
    start, body = sent
    assert start["status"] == 431
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"connection"] == b"close"
    assert json.loads(body["body"]) == {
        "type": "https://alttext.dev/errors/headers_too_large",
        "title": "Request headers too large",
        "status": 431,
        "detail": "The request line and headers are 1025 bytes; the limit is 1024 bytes.",
        "code": "headers_too_large",
        "request_id": "req_test",
    }


# -- against a real server -----------------------------------------------------------------------


@pytest.fixture
def serve(database_url: str) -> Callable[..., Any]:
    def start(**overrides: Any) -> Any:
        settings = make_settings(database_url, **overrides)
        return live_server(create_app(settings), settings)

    return start


async def test_a_megabyte_of_headers_is_431_not_200(serve: Callable[..., Any]) -> None:
    with serve() as live:
        async with raw_connection(live) as conn:
            await conn.send(request_head("GET", "/healthz", live, {"X-Big": "b" * 1_000_000}))
            response = await conn.response()
            closed = await conn.closed_by_server()
        async with raw_connection(live) as conn:  # the server itself is fine
            await conn.send(request_head("GET", "/healthz", live, {"X-Fine": "f" * 8_000}))
            fine = await conn.response()
    assert response.status == 431
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    body = json.loads(response.body)
    assert body["code"] == "headers_too_large"
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["detail"].endswith("the limit is 16384 bytes.")
    assert closed
    assert fine.status == 200


STALL_S = 0.5


async def stalled(live: Live, method: str, path: str, headers: dict[str, str]) -> Any:
    """Send the head and 10 of 1,000 promised body bytes, then nothing."""
    async with raw_connection(live) as conn:
        head = {**headers, "Content-Type": "application/json", "Content-Length": "1000"}
        await conn.send(request_head(method, path, live, head) + b'{"email": ')
        started = time.monotonic()
        response = await conn.response(timeout=30)
        waited = time.monotonic() - started
        closed = await conn.closed_by_server()
    return response, waited, closed


async def test_a_stalled_body_is_408_and_the_connection_is_closed(
    serve: Callable[..., Any], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alttext")
    key = await seed_key(database_url)
    auth = {"Authorization": f"Bearer {key}"}
    with serve(body_read_timeout_s=STALL_S) as live:
        cases = [
            ("POST", "/v1/alt-text", auth),  # a body the route reads itself
            ("POST", "/v1/alt-text/batch", auth),
            ("POST", "/v1/signup", {}),  # a body FastAPI reads for a model
            ("POST", "/webhooks/stripe", {}),
        ]
        results = [await stalled(live, *case) for case in cases]
    for (_, path, _), (response, waited, closed) in zip(cases, results, strict=True):
        assert response.status == 408, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["connection"] == "close"
        assert json.loads(response.body) == {
            "type": "https://alttext.dev/errors/request_timeout",
            "title": "Request timeout",
            "status": 408,
            "detail": "No part of the request body arrived for 0.5 seconds.",
            "code": "request_timeout",
            "request_id": response.headers["x-request-id"],
        }
        assert waited >= STALL_S
        assert closed, path
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_slow_but_steady_body_is_not_a_stall(serve: Callable[..., Any]) -> None:
    timeout_s, pause_s = 1.5, 0.3
    body = json.dumps(
        {"email": "slow@example.com", "accept_terms": True, "accept_privacy": True}
        | {"confirm_age_18": True}
    ).encode()
    pieces = [body[i : i + 10] for i in range(0, len(body), 10)]
    assert len(pieces) * pause_s > timeout_s  # in all longer than the timeout, each pause shorter
    with serve(body_read_timeout_s=timeout_s) as live:
        async with raw_connection(live) as conn:
            head = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            await conn.send(request_head("POST", "/v1/signup", live, head))
            for piece in pieces:
                await asyncio.sleep(pause_s)
                await conn.send(piece)
            response = await conn.response()
    assert response.status == 202, response.body


async def abandoned(live: Live, path: str, headers: dict[str, str]) -> None:
    """Send the head and part of the body, then reset the connection."""
    async with raw_connection(live) as conn:
        head = {**headers, "Content-Type": "application/json", "Content-Length": "50000"}
        await conn.send(request_head("POST", path, live, head) + b'{"image": "' + b"A" * 5_000)
        await asyncio.sleep(0.2)
        conn.abort()


async def test_a_client_leaving_mid_body_is_a_quiet_499(
    serve: Callable[..., Any], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alttext")
    key = await seed_key(database_url)
    paths = ["/v1/alt-text", "/v1/alt-text/batch", "/v1/signup"]

    def access() -> list[tuple[str, int]]:
        return [
            (r.path, r.status)  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "alttext.access"
        ]

    with serve() as live:
        for path in paths:
            await abandoned(live, path, {"Authorization": f"Bearer {key}"})
        deadline = time.monotonic() + 15
        while len(access()) < len(paths) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert sorted(access()) == sorted((path, 499) for path in paths)
    gone = [
        r for r in caplog.records if r.getMessage() == "client disconnected during the request body"
    ]
    assert [(r.levelno, r.name) for r in gone] == [(logging.INFO, "alttext.http")] * len(paths)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r for r in caplog.records if r.getMessage() == "unhandled error"] == []
