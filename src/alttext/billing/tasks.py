"""The billing domain's periodic work: expired reservations and the Stripe inbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.billing.credits import release_expired
from alttext.billing.webhooks import process_pending
from alttext.config import Settings
from alttext.scheduler import PeriodicTask


def periodic_tasks(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> list[PeriodicTask]:
    return [
        # A reservation whose request died (crash, SIGKILL) gives its credit back.
        PeriodicTask(
            "release-expired", settings.reservation_sweep_s, lambda: release_expired(sessions)
        ),
        # Stripe events that waited for their purchase, or failed on a passing error.
        PeriodicTask("stripe-inbox", 60.0, lambda: process_pending(sessions)),
    ]
