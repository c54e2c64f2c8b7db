"""Usage events of the three kinds and how ``aggregate`` (GET /v1/usage, ``alttext usage``)
counts them: a decorative request is a success that costs nothing, never a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from alttext.accounts.models import Account as AccountRow
from alttext.accounts.service import Principal, create_account
from alttext.billing import credits
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditReservation
from alttext.db import create_engine, session_factory, transaction
from alttext.describe.types import Description, ImageInfo, Timing, Usage
from alttext.generation.metering import settle
from alttext.generation.service import DECORATIVE_STATUS
from alttext.usage.models import UsageEvent
from alttext.usage.service import aggregate
from tests.conftest import Account, Service


def event(n: int, account: Account, status: str, credits: int, model: str | None) -> UsageEvent:
    return UsageEvent(
        id=f"req_{status}{n}",
        account_id=account.id,
        key_id=account.key_id,
        status=status,
        model=model,
        credits=credits,
        input_tokens=100 if credits else 0,
        output_tokens=10 if credits else 0,
        upstream_cost_usd=0.001 if credits else 0.0,
    )


async def test_aggregate_counts_decorative_as_free_success(
    service: Service, account: Account
) -> None:
    sessions = service.app.state.services.sessions
    async with transaction(sessions) as session:
        session.add_all(
            [
                event(1, account, "succeeded", 1, "m/one"),
                event(2, account, "succeeded", 1, "m/one"),
                event(1, account, "failed", 0, None),
                event(1, account, DECORATIVE_STATUS, 0, None),
                event(2, account, DECORATIVE_STATUS, 0, None),
            ]
        )
    now = datetime.now(UTC)
    async with sessions() as session:
        rows = await aggregate(
            session,
            account.id,
            start=now - timedelta(days=1),
            end=now + timedelta(days=1),
            granularity="day",
        )
    assert sum(r.requests for r in rows) == 5
    assert sum(r.succeeded for r in rows) == 4
    assert sum(r.failed for r in rows) == 1
    assert sum(r.decorative for r in rows) == 2
    assert sum(r.credits for r in rows) == 2
    # The bill reconciles: what was charged is what succeeded with a model.
    assert sum(r.succeeded - r.decorative for r in rows) == sum(r.credits for r in rows)
    by_model = {r.model: r for r in rows}
    assert by_model[None].decorative == 2
    assert by_model[None].input_tokens == 0


def test_decorative_status_fits_the_column() -> None:
    assert len(DECORATIVE_STATUS) <= UsageEvent.__table__.c.status.type.length


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _account(sessions) -> str:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        account = await create_account(s, "spender@example.com")
        await grant_starting_credits(s, account, 5)
    return account.id


async def _state(sessions, account_id: str) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        balance = await s.scalar(
            select(AccountRow.credits_balance).where(AccountRow.id == account_id)
        )
        held = (await s.execute(select(CreditReservation.state))).scalars()
        return int(balance or 0), list(held)


def _description() -> Description:
    return Description(
        alt_text="A red bicycle.",
        alt_texts={"en": "A red bicycle."},
        decorative=False,
        role="informative",
        language="en",
        long_description=None,
        text_in_image=None,
        needs_review=False,
        review_reasons=[],
        model="m/one",
        image=ImageInfo(width=10, height=10, format="jpeg", sent_width=10, sent_height=10),
        usage=Usage(input_tokens=1, output_tokens=1, upstream_cost_usd=0.0),
        timing=Timing(prepare_ms=1, upstream_ms=1),
    )


async def test_settling_reports_the_balance_the_reservation_left(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions)
    principal = Principal(account_id, "key_1", "active", None)
    async with transaction(sessions) as s:
        left = await credits.reserve(s, account_id=account_id, request_id="req_1", ttl_s=60)
    async with transaction(sessions) as s:
        reported = await settle(
            s, "req_1", principal, _description(), 5, None, balance_after_reserve=left
        )
    balance, held = await _state(sessions, account_id)
    assert reported == balance == 4
    assert held == ["settled"]
    async with sessions() as s:
        event = await s.get(UsageEvent, "req_1")
    assert event is not None
    assert event.credits == 1


async def test_settling_after_expiry_reports_the_credit_given_back(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions)
    principal = Principal(account_id, "key_1", "active", None)
    async with transaction(sessions) as s:
        left = await credits.reserve(s, account_id=account_id, request_id="req_1", ttl_s=60)
    async with transaction(sessions) as s:
        assert await credits.release(s, request_id="req_1", note="reservation expired")
    async with transaction(sessions) as s:
        reported = await settle(
            s, "req_1", principal, _description(), 5, None, balance_after_reserve=left
        )
    balance, held = await _state(sessions, account_id)
    # Not the balance the reservation left (4): the expired reservation's credit came back.
    assert reported == balance == 5
    assert held == ["released"]
