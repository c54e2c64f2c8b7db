"""Usage events of the three kinds and how ``aggregate`` (GET /v1/usage, ``alttext usage``)
counts them: a decorative request is a success that costs nothing, never a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alttext.db import transaction
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
