"""Consent decisions: append-only rows; the latest per kind is the one in force."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from alttext.db import utcnow
from alttext.ids import new_id
from alttext.privacy.models import CONSENT_KINDS, Consent

Source = Literal["signup", "api", "dashboard", "admin"]


async def record_consent(
    session: AsyncSession,
    account_id: str,
    kind: str,
    *,
    granted: bool,
    source: Source,
    version: str | None = None,
) -> Consent:
    if kind not in CONSENT_KINDS:
        raise ValueError(f"unknown consent kind {kind!r}")
    row = Consent(
        id=new_id("cons"),
        account_id=account_id,
        kind=kind,
        version=version,
        granted=granted,
        source=source,
        created_at=utcnow(),
    )
    session.add(row)
    return row
