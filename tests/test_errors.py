"""Which failures of the database are outages (503, retry) and which are our bugs (500)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from alttext.errors import install_error_handlers, is_database_outage


class _DriverError(Exception):
    pass


def _dropped_mid_statement() -> DBAPIError:
    # What SQLAlchemy raises when asyncpg loses the connection inside a statement.
    return DBAPIError(
        "SELECT 1",
        {},
        _DriverError("connection was closed in the middle of operation"),
        connection_invalidated=True,
    )


FAILURES: dict[str, tuple[BaseException, int]] = {
    "dropped": (_dropped_mid_statement(), 503),
    "refused": (OperationalError("SELECT 1", {}, _DriverError("refused")), 503),
    "pool": (PoolTimeout("QueuePool limit of size 10 overflow 20 reached"), 503),
    "connect-timeout": (TimeoutError(), 503),
    "reset": (ConnectionResetError(), 503),
    "constraint": (IntegrityError("INSERT", {}, _DriverError("duplicate key")), 500),
    "other-dbapi": (DBAPIError("SELECT 1", {}, _DriverError("syntax error")), 500),
}


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail/{name}")
    async def fail(name: str) -> None:
        raise FAILURES[name][0]

    return app


@pytest.mark.parametrize("name", sorted(FAILURES))
async def test_database_failures_answer_503_only_when_the_database_is_out(name: str) -> None:
    exc, status = FAILURES[name]
    assert is_database_outage(exc) is (status == 503)
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(f"/fail/{name}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    if status == 503:
        assert response.headers["retry-after"] == "5"
        assert response.json()["code"] == "service_unavailable"
    else:
        assert response.json()["code"] == "internal_error"
