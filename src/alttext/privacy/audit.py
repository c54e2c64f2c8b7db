"""The audit trail of rights exercised: what, when, by whom. Ids, counts and field names only."""

from __future__ import annotations

import json
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from alttext.db import utcnow
from alttext.ids import new_id
from alttext.privacy.models import AuditEvent

Actor = Literal["account", "admin", "system"]


async def record(
    session: AsyncSession, account_id: str, action: str, *, actor: Actor, **detail: Any
) -> AuditEvent:
    """Add one event in the caller's transaction. ``detail`` must never carry content (no
    e-mail addresses, names, tokens or alt text): ids, counts and field names."""
    event = AuditEvent(
        id=new_id("aud"),
        account_id=account_id,
        actor=actor,
        action=action,
        detail=json.dumps(detail, sort_keys=True, separators=(",", ":")) if detail else None,
        created_at=utcnow(),
    )
    session.add(event)
    await session.flush()
    return event
