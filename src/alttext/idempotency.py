"""``Idempotency-Key``: the same key and body replay the first response, never charge twice.

A key is claimed by inserting its row (primary key: account and key), so exactly one request
runs; concurrent duplicates poll until it is done and then replay it. A claim whose process
died is taken over after its lock expires. Final answers (2xx and 4xx other than 409/429) are
kept for 24 hours; transient failures (429, 5xx) free the key so a retry runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from alttext.db import Base, UTCDateTime, transaction, utcnow
from alttext.errors import IdempotencyConflict, InvalidRequest, ServiceUnavailable
from alttext.scheduler import PeriodicTask

KEEP_FOR = timedelta(hours=24)
LOCK_FOR = timedelta(minutes=5)  # longer than any generation's time budget
POLL_S = 0.05
WAIT_S = 120.0
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, like Stripe's keys


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12))  # in_progress | done
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def validate_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is ideal).",
            status=400,
        )
    return raw


def request_fingerprint(parts: dict[str, Any], image: bytes | None) -> str:
    """A hash of what the request means (not its bytes on the wire: multipart boundaries vary)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    digest.update(b"\0")
    digest.update(hashlib.sha256(image).digest() if image is not None else b"-")
    return digest.hexdigest()


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    account_id: str,
    key: str,
    request_hash: str,
    wait_s: float = WAIT_S,
) -> Replay | None:
    """None: this request owns the key and must run, then call ``finish`` or ``abandon``.
    A Replay: the first request's stored answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        now = utcnow()
        try:
            async with transaction(sessions) as session:
                session.add(
                    IdempotencyRecord(
                        account_id=account_id,
                        key=key,
                        request_hash=request_hash,
                        state="in_progress",
                        created_at=now,
                        locked_until=now + LOCK_FOR,
                        expires_at=now + KEEP_FOR,
                    )
                )
            return None
        except IntegrityError:
            pass
        async with transaction(sessions) as session:
            record = await session.get(IdempotencyRecord, (account_id, key))
            if record is None:
                continue  # freed in between: claim again
            if record.expires_at < now:
                await session.delete(record)
                continue
            if record.request_hash != request_hash:
                raise IdempotencyConflict(
                    "This Idempotency-Key was used with a different request body. "
                    "Use a new key for a new request."
                )
            if record.state == "done" and record.response_body is not None:
                return Replay(record.status_code or 200, json.loads(record.response_body))
            if record.locked_until < now:
                # The first request's process died: take the key over.
                record.locked_until = now + LOCK_FOR
                return None
        if loop.time() > deadline:
            raise ServiceUnavailable(
                "A request with this Idempotency-Key is still running; retry shortly.",
                retry_after=5,
            )
        await asyncio.sleep(POLL_S)


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    *,
    account_id: str,
    key: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    if status_code in (409, 429) or status_code >= 500:
        await abandon(sessions, account_id=account_id, key=key)
        return
    async with transaction(sessions) as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key)
            .values(state="done", status_code=status_code, response_body=json.dumps(body))
        )


async def abandon(sessions: async_sessionmaker[AsyncSession], *, account_id: str, key: str) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key
            )
        )


async def purge_expired(session: AsyncSession, *, now: datetime | None = None) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < (now or utcnow()))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_expired_records(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessions) as session:
        return await purge_expired(session)


def periodic_tasks(sessions: async_sessionmaker[AsyncSession]) -> list[PeriodicTask]:
    # Hourly, so a replayable answer never outlives its 24 hours by much.
    return [PeriodicTask("idempotency-purge", 3600.0, lambda: purge_expired_records(sessions))]


__all__ = [
    "IdempotencyRecord",
    "Replay",
    "abandon",
    "claim",
    "finish",
    "periodic_tasks",
    "purge_expired",
    "purge_expired_records",
]
