"""Unexpected errors: a 500 problem with the logged request id, on a connection that lives on.

Served by a real uvicorn, because the defect was there: Starlette's last-resort handler answered
outside our middleware (no X-Request-ID) and re-raised, and uvicorn then dropped the connection
without ``Connection: close``, so the client's next request on it failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import Depends

from alttext.app import create_app
from alttext.errors import INTERNAL_DETAIL
from alttext.http.deps import current_principal
from tests.conftest import Account, Service, make_settings
from tests.http.live import live_server, raw_connection, request_head


class Explosion(RuntimeError):
    pass


async def explode() -> None:
    raise Explosion("a message that may quote user input")


def internal_error(request_id: str) -> dict[str, Any]:
    return {
        "type": "https://alttext.dev/errors/internal_error",
        "title": "Internal server error",
        "status": 500,
        "detail": INTERNAL_DETAIL,
        "code": "internal_error",
        "request_id": request_id,
    }


async def test_a_500_carries_the_logged_request_id_and_keeps_the_connection(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alttext")
    settings = make_settings(database_url)
    app = create_app(settings)
    app.add_api_route("/v1/test/explode", explode)
    with live_server(app, settings) as live:
        async with raw_connection(live) as conn:
            await conn.send(request_head("GET", "/v1/test/explode", live))
            failed = await conn.response()
            # The same TCP connection: uvicorn must not have closed it under the client.
            await conn.send(request_head("GET", "/healthz", live))
            after = await conn.response()
        # And as an ordinary client sees it: one keep-alive connection, used twice.
        async with httpx.AsyncClient(base_url=live.url) as client:
            first = await client.get("/v1/test/explode", headers={"X-Request-ID": "mine-1"})
            second = await client.get("/healthz")
            first_addr = first.extensions["network_stream"].get_extra_info("client_addr")
            second_addr = second.extensions["network_stream"].get_extra_info("client_addr")

    assert failed.status == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert "connection" not in failed.headers  # keep-alive, the HTTP/1.1 default
    request_id = failed.headers["x-request-id"]
    assert request_id.startswith("req_")
    assert json.loads(failed.body) == internal_error(request_id)
    assert after.status == 200
    assert json.loads(after.body) == {"status": "ok"}

    assert first.status_code == 500
    assert first.headers["x-request-id"] == "mine-1"
    assert first.json() == internal_error("mine-1")
    assert second.status_code == 200
    assert first_addr == second_addr

    unhandled = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert [(r.name, r.request_id, r.error_type) for r in unhandled] == [  # type: ignore[attr-defined]
        ("alttext.errors", request_id, "Explosion"),
        ("alttext.errors", "mine-1", "Explosion"),
    ]
    assert all(r.exc_info and r.exc_info[0] is Explosion for r in unhandled)
    access = [
        (r.request_id, r.status)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "alttext.access" and r.path == "/v1/test/explode"  # type: ignore[attr-defined]
    ]
    assert access == [(request_id, 500), ("mine-1", 500)]
    # Nothing escaped to uvicorn ("Exception in ASGI application").
    assert [r for r in caplog.records if r.name.startswith("uvicorn")] == []


async def test_a_500_after_authentication_carries_the_rate_limit_headers(
    service: Service, account: Account
) -> None:
    service.app.add_api_route(
        "/v1/test/explode-authed", explode, dependencies=[Depends(current_principal)]
    )
    response = await service.client.get("/v1/test/explode-authed", headers=account.headers)
    assert response.status_code == 500
    assert response.json() == internal_error(response.headers["x-request-id"])
    assert response.headers["ratelimit-limit"] == "120"
    assert response.headers["ratelimit-remaining"] == "119"
