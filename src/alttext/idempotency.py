"""``Idempotency-Key``: the same key and body replay the first response, never charge twice.

A key is claimed by inserting its row (primary key: account and key), so exactly one request
runs; concurrent duplicates poll until it is done and then replay it. A claim whose process
died is taken over after its lock expires. Final answers (2xx and 4xx other than 409/429) are
kept for 24 hours; transient failures (429, 5xx) free the key so a retry runs again.

A charge and its answer commit together: the call records its answer with ``keep`` inside the
transaction that charges (generation's ``keep`` hook), so a process that dies between that
commit and ``finish`` leaves a claim that already holds its answer. Once its lock expires a
retry replays that answer instead of running (and charging) again; ``abandon`` never frees a
key whose answer was kept. Each claim is owned through its ``locked_until`` (a takeover sets a
new one), so a stale owner can neither keep, finish nor free a key taken over from it.
Calls that charge several times (a batch) keep one answer per part (``keep_part``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, delete, select, update
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


@dataclass(frozen=True)
class Claim:
    """A key this request owns. ``token`` is the ``locked_until`` it set: a takeover changes it."""

    account_id: str
    key: str
    request_hash: str
    token: datetime


# The claim of the call running now (set by the HTTP layer around the call), so the code that
# charges can keep the answer in its own transaction.
_CURRENT: ContextVar[Claim | None] = ContextVar("idempotency_claim", default=None)


def current_claim() -> Claim | None:
    return _CURRENT.get()


def set_current(claim: Claim | None) -> Any:
    return _CURRENT.set(claim)


def reset_current(token: Any) -> None:
    _CURRENT.reset(token)


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
) -> Replay | Claim:
    """A Claim: this request owns the key and must run, then call ``finish`` or ``abandon``.
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
            return Claim(account_id, key, request_hash, now + LOCK_FOR)
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
                if record.response_body is not None:
                    # The first request's process died after charging: its answer was kept.
                    record.state = "done"
                    return Replay(record.status_code or 200, json.loads(record.response_body))
                # The first request's process died before charging: take the key over.
                record.locked_until = now + LOCK_FOR
                return Claim(account_id, key, request_hash, record.locked_until)
        if loop.time() > deadline:
            raise ServiceUnavailable(
                "A request with this Idempotency-Key is still running; retry shortly.",
                retry_after=5,
            )
        await asyncio.sleep(POLL_S)


def _owned(claim: Claim) -> Any:
    return (
        (IdempotencyRecord.account_id == claim.account_id)
        & (IdempotencyRecord.key == claim.key)
        & (IdempotencyRecord.state == "in_progress")
        & (IdempotencyRecord.locked_until == claim.token)
    )


async def keep(session: AsyncSession, claim: Claim, *, status_code: int, body: Any) -> bool:
    """Record the answer in the caller's transaction, the one that charges for it. False if
    the claim is no longer this request's (taken over after its lock expired): the caller must
    then roll back or release what it charged."""
    result = await session.execute(
        update(IdempotencyRecord)
        .where(_owned(claim))
        .values(status_code=status_code, response_body=json.dumps(body))
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def _part_key(claim: Claim, part: str) -> str:
    # The space keeps it apart from every client's key (visible ASCII only).
    digest = hashlib.sha256(f"{claim.key}\0{part}".encode()).hexdigest()
    return f"part {digest}"


async def keep_part(
    session: AsyncSession, claim: Claim, part: str, *, status_code: int, body: Any
) -> bool:
    """``keep`` for one of several charges of a call (a batch item). False if this part was
    kept already (by an earlier run of the same key): the caller must release its charge."""
    now = utcnow()
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyRecord(
                    account_id=claim.account_id,
                    key=_part_key(claim, part),
                    request_hash=claim.request_hash,
                    state="done",
                    status_code=status_code,
                    response_body=json.dumps(body),
                    created_at=now,
                    locked_until=now,
                    expires_at=now + KEEP_FOR,
                )
            )
    except IntegrityError:
        return False
    return True


async def kept_part(
    sessions: async_sessionmaker[AsyncSession], claim: Claim, part: str
) -> Replay | None:
    """The answer an earlier run of this key (and body) kept for ``part``, if any."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(IdempotencyRecord.status_code, IdempotencyRecord.response_body).where(
                    IdempotencyRecord.account_id == claim.account_id,
                    IdempotencyRecord.key == _part_key(claim, part),
                    IdempotencyRecord.request_hash == claim.request_hash,
                    IdempotencyRecord.expires_at >= utcnow(),
                )
            )
        ).one_or_none()
    if row is None or row.response_body is None:
        return None
    return Replay(row.status_code or 200, json.loads(row.response_body))


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    claim: Claim,
    *,
    status_code: int,
    body: dict[str, Any],
) -> None:
    """Store the final answer. A failure after the call kept a charged answer stores nothing
    new: the kept answer stays (and is replayed), since that charge stands."""
    if status_code < 400:
        async with transaction(sessions) as session:
            await session.execute(
                update(IdempotencyRecord)
                .where(_owned(claim))
                .values(state="done", status_code=status_code, response_body=json.dumps(body))
            )
        return
    if status_code in (409, 429) or status_code >= 500:
        await abandon(sessions, claim)
        return
    async with transaction(sessions) as session:
        await _close_kept(session, claim)
        await session.execute(
            update(IdempotencyRecord)
            .where(_owned(claim), IdempotencyRecord.response_body.is_(None))
            .values(state="done", status_code=status_code, response_body=json.dumps(body))
        )


async def _close_kept(session: AsyncSession, claim: Claim) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(_owned(claim), IdempotencyRecord.response_body.is_not(None))
        .values(state="done")
    )


async def abandon(sessions: async_sessionmaker[AsyncSession], claim: Claim) -> None:
    """Free the key so a retry runs again, unless a charged answer was kept for it."""
    async with transaction(sessions) as session:
        await _close_kept(session, claim)
        await session.execute(
            delete(IdempotencyRecord).where(
                _owned(claim), IdempotencyRecord.response_body.is_(None)
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
    "Claim",
    "IdempotencyRecord",
    "Replay",
    "abandon",
    "claim",
    "current_claim",
    "finish",
    "keep",
    "keep_part",
    "kept_part",
    "periodic_tasks",
    "purge_expired",
    "purge_expired_records",
]
