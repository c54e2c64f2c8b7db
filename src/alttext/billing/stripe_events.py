"""What each Stripe event does to the ledger, in the caller's transaction.

Every booking's reference names the Stripe object, so a payment credits once however many
events report it (``checkout.session.completed`` and ``…async_payment_succeeded`` share the
reference ``stripe:purchase:<PaymentIntent id>``). An event about a payment that is not booked
yet (a refund, a receipt or a dispute delivered before the purchase) answers ``pending`` and is
retried once the purchase is booked, so any delivery order ends in the same ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.models import Account
from alttext.billing.ledger import DuplicateEntry, book
from alttext.billing.models import CreditEntry

MAX_PACK_CREDITS = 100_000_000
PURCHASE_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
# Only these fields are kept in the inbox: no names, addresses, e-mails or card details.
_KEPT_FIELDS = frozenset(
    {
        "id",
        "object",
        "mode",
        "status",
        "payment_status",
        "payment_intent",
        "metadata",
        "client_reference_id",
        "customer",
        "amount_total",
        "currency",
        "amount",
        "amount_refunded",
        "refunded",
        "receipt_url",
        "charge",
        "reason",
    }
)


@dataclass
class Outcome:
    state: str  # pending | processed | ignored | unmatched
    detail: str
    account_id: str | None = None
    booked_purchase: bool = False


def slim_event(event: dict[str, Any]) -> dict[str, Any]:
    obj = event["data"]["object"]
    kept = {k: v for k, v in obj.items() if k in _KEPT_FIELDS}
    return {
        "id": event["id"],
        "type": event["type"],
        "created": event.get("created"),
        "livemode": bool(event.get("livemode")),
        "data": {"object": kept},
    }


def _str(value: Any) -> str | None:
    """An id field: a string, or the ``id`` of an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def payment_key(event_type: str, obj: dict[str, Any]) -> str | None:
    if event_type.startswith("checkout.session."):
        return _str(obj.get("payment_intent")) or _str(obj.get("id"))
    return _str(obj.get("payment_intent"))


def purchase_reference(key: str) -> str:
    return f"stripe:purchase:{key}"


async def find_account(session: AsyncSession, obj: dict[str, Any]) -> str | None:
    """The account from our metadata, the client reference, or the Stripe customer id.

    Metadata alone suffices, so a webhook that beats the checkout response still lands.
    """
    metadata = _metadata(obj)
    for candidate in (_str(metadata.get("account_id")), _str(obj.get("client_reference_id"))):
        if candidate and await session.get(Account, candidate) is not None:
            return candidate
    customer = _str(obj.get("customer"))
    if customer:
        found = await session.scalar(
            select(Account.id).where(Account.stripe_customer_id == customer)
        )
        return str(found) if found else None
    return None


async def _purchase_entry(session: AsyncSession, obj: dict[str, Any]) -> CreditEntry | None:
    key = _str(obj.get("payment_intent"))
    if key is None:
        return None
    return (
        await session.execute(
            select(CreditEntry).where(CreditEntry.reference == purchase_reference(key))
        )
    ).scalar_one_or_none()


def _waiting(obj: dict[str, Any]) -> Outcome:
    key = _str(obj.get("payment_intent")) or "(no payment intent)"
    return Outcome("pending", f"waiting for the purchase {key} to be booked")


async def credit_purchase(session: AsyncSession, event_type: str, obj: dict[str, Any]) -> Outcome:
    if obj.get("payment_status") != "paid":
        return Outcome(
            "processed",
            f"not paid yet (payment_status={obj.get('payment_status')!s}); nothing credited",
            await find_account(session, obj),
        )
    account_id = await find_account(session, obj)
    if account_id is None:
        return Outcome("unmatched", "paid, but no AltText account matches this session")
    metadata = _metadata(obj)
    credits = _int(metadata.get("credits"))
    cents = _int(obj.get("amount_total"))
    if credits is None or not 0 < credits <= MAX_PACK_CREDITS or cents is None:
        return Outcome("unmatched", "paid, but the session has no credit count", account_id)
    if str(obj.get("currency", "")).lower() != "usd":
        return Outcome("unmatched", f"paid in {obj.get('currency')!s}, not usd", account_id)
    key = payment_key(event_type, obj)
    assert key is not None  # a session always has an id
    try:
        await book(
            session,
            account_id=account_id,
            kind="purchase",
            credits=credits,
            reference=purchase_reference(key),
            amount_usd=cents / 100,
            note=f"Stripe Checkout {_str(obj.get('id'))}",
        )
    except DuplicateEntry:
        return Outcome("processed", f"{key} was credited before", account_id)
    return Outcome("processed", f"credited {credits} credits", account_id, booked_purchase=True)


async def record_receipt(session: AsyncSession, obj: dict[str, Any]) -> Outcome:
    entry = await _purchase_entry(session, obj)
    if entry is None:
        return _waiting(obj)
    receipt = _str(obj.get("receipt_url"))
    if receipt and not entry.receipt_url:
        entry.receipt_url = receipt
    return Outcome("processed", "receipt recorded", entry.account_id)


def _refund_share(refunded_cents: int, charge_cents: int, credits: int) -> int:
    """Credits matching the refunded share, rounded half up, never more than were bought."""
    if charge_cents <= 0:
        return credits
    return min(credits, (2 * refunded_cents * credits + charge_cents) // (2 * charge_cents))


async def remove_refunded(session: AsyncSession, obj: dict[str, Any]) -> Outcome:
    """``charge.refunded`` carries the charge's cumulative ``amount_refunded``: each refund
    state is booked once (its reference holds that amount), and an older state arriving after
    a newer one changes nothing. Credits already spent are not taken back: the balance never
    goes below zero, and the entry's note says how many were used already."""
    purchase = await _purchase_entry(session, obj)
    if purchase is None:
        return _waiting(obj)
    charge_id = _str(obj.get("id"))
    refunded, amount = _int(obj.get("amount_refunded")), _int(obj.get("amount"))
    if charge_id is None or refunded is None or amount is None or refunded <= 0:
        return Outcome("unmatched", "a refund event without amounts", purchase.account_id)
    account_id = purchase.account_id
    balance = int(
        await session.scalar(
            select(Account.credits_balance).where(Account.id == account_id).with_for_update()
        )
        or 0
    )
    prefix = f"stripe:refund:{charge_id}:"
    prior = list(
        (
            await session.execute(
                select(CreditEntry).where(CreditEntry.reference.startswith(prefix, autoescape=True))
            )
        ).scalars()
    )
    seen = max((int(p.reference.rsplit(":", 1)[1]) for p in prior), default=0)
    if refunded <= seen:
        return Outcome("processed", "this refund was accounted for before", account_id)
    removed_before = -sum(p.credits for p in prior)
    due = max(0, _refund_share(refunded, amount, purchase.credits) - removed_before)
    removed = min(due, max(balance, 0))
    note = f"refund of ${(refunded - seen) / 100:.2f}: {removed} credits removed"
    if due > removed:
        note += f" ({due - removed} had been used already)"
    entry = await book(
        session,
        account_id=account_id,
        kind="refund",
        credits=-removed,
        reference=f"{prefix}{refunded}",
        amount_usd=-(refunded - seen) / 100,
        note=note,
    )
    receipt = _str(obj.get("receipt_url"))
    entry.receipt_url = receipt
    if receipt and not purchase.receipt_url:
        purchase.receipt_url = receipt
    return Outcome("processed", note, account_id)


async def suspend_for_dispute(session: AsyncSession, obj: dict[str, Any]) -> Outcome:
    """A dispute stops paid usage at once (status ``suspended``; generation answers 403) and
    is recorded as a zero-credit ``adjustment``. Credits stay, so a won dispute needs only the
    status set back (by an operator); a lost one is followed by Stripe's own refund events."""
    purchase = await _purchase_entry(session, obj)
    if purchase is None:
        return _waiting(obj)
    dispute_id = _str(obj.get("id")) or "unknown"
    cents = _int(obj.get("amount")) or 0
    note = (
        f"payment {_str(obj.get('payment_intent'))} disputed (${cents / 100:.2f}, reason: "
        f"{_str(obj.get('reason')) or 'unknown'}); account suspended"
    )
    try:
        await book(
            session,
            account_id=purchase.account_id,
            kind="adjustment",
            credits=0,
            reference=f"stripe:dispute:{dispute_id}",
            note=note,
        )
    except DuplicateEntry:
        return Outcome("processed", "dispute recorded before", purchase.account_id)
    await session.execute(
        update(Account).where(Account.id == purchase.account_id).values(status="suspended")
    )
    return Outcome("processed", note, purchase.account_id)


async def handle(session: AsyncSession, event_type: str, obj: dict[str, Any]) -> Outcome:
    if event_type in PURCHASE_EVENTS:
        return await credit_purchase(session, event_type, obj)
    if event_type == "checkout.session.async_payment_failed":
        account_id = await find_account(session, obj)
        if account_id is None:
            return Outcome("unmatched", "payment failed; no AltText account matches")
        return Outcome("processed", "payment failed; nothing credited", account_id)
    if event_type == "charge.succeeded":
        return await record_receipt(session, obj)
    if event_type == "charge.refunded":
        return await remove_refunded(session, obj)
    if event_type == "charge.dispute.created":
        return await suspend_for_dispute(session, obj)
    return Outcome("ignored", f"{event_type} is not used by AltText")
