"""Trial credits, once per e-mail address.

A verified sign-up receives ``ALTTEXT_FREE_CREDITS`` only if its address has not had them
before. What is kept to know that is a keyed hash of the address's canonical form (HMAC-SHA256
with a key derived from ``ALTTEXT_SECRET_KEY``) in ``trial_marks``, with no account id, so it
survives the account's erasure: erasing and signing up again, or adding a ``+tag``, does not
farm a second trial. The hash cannot be turned back into an address; it can only confirm an
address someone already has. Marks are deleted after ``TRIAL_MARK_KEEP``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.db import utcnow
from alttext.privacy.models import TrialMark

TRIAL_MARK_KEEP = timedelta(days=3 * 365 + 1)
# Providers that ignore dots in the local part.
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def canonical_address(email: str) -> str:
    """One form for the addresses that reach the same mailbox: lower case, no ``+tag``, and
    no dots at the providers that ignore them."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _DOTLESS:
        domain = _DOTLESS[domain]
        local = local.replace(".", "")
    return f"{local}@{domain}"


def address_mark(secret_key: str, email: str) -> str:
    key = hashlib.sha256(f"alttext trial marks|{secret_key}".encode()).digest()
    return hmac.new(key, canonical_address(email).encode(), hashlib.sha256).hexdigest()


async def claim_trial(session: AsyncSession, secret_key: str, email: str) -> bool:
    """True the first time an address claims its trial; False ever after."""
    mark = address_mark(secret_key, email)
    if await session.get(TrialMark, mark) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(TrialMark(email_hash=mark, created_at=utcnow()))
            await session.flush()
    except IntegrityError:  # a concurrent verification of the same address won
        return False
    return True
