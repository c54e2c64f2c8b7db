"""generation.service: the memory budget around one generation, and what settling does when
the database aborts or refuses it."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from alttext import db, metrics
from alttext.billing import credits
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.describe.image import PreparedImage
from alttext.generation import metering
from alttext.generation import service as generation_service
from alttext.generation.service import prepared_footprint
from alttext.inflight import EXPANSION
from alttext.usage.models import UsageEvent
from tests.conftest import Account, Service


def noisy_jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((width, height), 80).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


async def test_the_decode_hold_is_given_back_before_the_model_call(
    service: Service, account: Account
) -> None:
    services = service.app.state.services
    budget = services.inflight
    engine = services.runtime.engine
    real = engine.describe_prepared
    seen: list[tuple[int, PreparedImage]] = []

    async def model_call(prepared: PreparedImage, *args: Any, **kwargs: Any) -> Any:
        seen.append((budget.used - budget.bodies, prepared))  # what the holds keep now
        return await real(prepared, *args, **kwargs)

    engine.describe_prepared = model_call
    image = noisy_jpeg(1600, 1200)
    response = await service.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("a.jpg", image, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    [(held, prepared)] = seen
    assert held == prepared_footprint(prepared)  # its bytes and pixels only
    assert held < EXPANSION * len(image) / 4
    assert budget.used == 0


class _Aborted(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


async def _money(service: Service, account: Account) -> dict[str, Any]:
    async with service.app.state.services.sessions() as session:
        reservations = dict(
            (
                await session.execute(
                    select(CreditReservation.state, func.count()).group_by(CreditReservation.state)
                )
            ).all()
        )
        events = (await session.execute(select(UsageEvent.status, UsageEvent.error_code))).all()
        balance = await credits.balance(session, account.id)
        ledger = await session.scalar(select(func.sum(CreditEntry.credits)))
    return {
        "reservations": reservations,
        "events": [tuple(e) for e in events],
        "balance": balance,
        "ledger": ledger,
    }


async def test_a_settlement_the_database_aborts_for_a_deadlock_runs_again_and_charges_once(
    service: Service, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "_RETRY_BASE_S", 0.001)
    runs = 0

    async def aborted_once(*args: Any, **kwargs: Any) -> int:
        nonlocal runs
        runs += 1
        remaining = await metering.settle(*args, **kwargs)  # its writes, then the abort
        if runs == 1:
            raise DBAPIError("UPDATE credit_reservations …", {}, _Aborted("40P01"))
        return remaining

    monkeypatch.setattr(generation_service, "settle", aborted_once)
    spent_before = metrics.CREDITS_SPENT._value.get()
    response = await service.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("a.jpg", noisy_jpeg(64, 48), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["credits_remaining"] == 99
    money = await _money(service, account)
    assert runs == 2
    # The aborted run's settlement was rolled back, so only the committed one is counted.
    assert metrics.CREDITS_SPENT._value.get() - spent_before == 1
    # One reservation, settled once; one usage event; the ledger agrees with the balance.
    assert money == {
        "reservations": {"settled": 1},
        "events": [("succeeded", None)],
        "balance": 99,
        "ledger": 99,
    }


async def test_a_settlement_that_fails_gives_the_credit_back_at_once(
    service: Service, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the settlement failed")

    monkeypatch.setattr(generation_service, "settle", broken)
    transport = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/v1/alt-text",
            headers=account.headers,
            files={"image": ("a.jpg", noisy_jpeg(64, 48), "image/jpeg")},
        )
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    # Not held until the reservation expires (ten minutes): released with the failure.
    assert await _money(service, account) == {
        "reservations": {"released": 1},
        "events": [("failed", "aborted")],
        "balance": 100,
        "ledger": 100,
    }
