"""The credit ledger: append-only; an account's balance is the sum of its entries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from alttext.db import Base, UTCDateTime, utcnow

# grant (sign-up, admin) | purchase | usage | release | refund | adjustment
ENTRY_KINDS = ("grant", "purchase", "usage", "release", "refund", "adjustment")


class CreditEntry(Base):
    __tablename__ = "credit_entries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    credits: Mapped[int] = mapped_column(BigInteger)  # signed: + adds, - spends
    # The event booked (request id, payment id, admin grant id): unique so nothing books twice.
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    amount_usd: Mapped[float | None] = mapped_column(Numeric(12, 4, asdecimal=False))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Stripe's receipt for a purchase or refund, when Stripe sent one (charge.receipt_url).
    receipt_url: Mapped[str | None] = mapped_column(String(1000))


class CreditReservation(Base):
    """One credit held for one request while the model runs (reserve -> settle | release).

    The credit leaves the balance at once as a ``usage`` entry; a failure, or the reservation
    expiring after a crash, books a ``release`` entry that gives it back. So the balance always
    equals the ledger's sum, and every path ends in exactly one of settled or released.
    """

    __tablename__ = "credit_reservations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the request id
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    credits: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10), default="held")  # held | settled | released
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# pending (to process, or waiting for an earlier event) | processed | ignored (a type we do not
# act on) | unmatched (flagged: no account, or never matched a purchase; needs a human)
EVENT_STATES = ("pending", "processed", "ignored", "unmatched")


class StripeEvent(Base):
    """The webhook inbox: one row per Stripe event id, so a redelivery is recognised.

    ``payload`` keeps only the fields processing needs (billing/stripe_events.py), not the
    customer's name, address or card details that Stripe's objects also carry.
    """

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    account_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    # The payment the event is about (PaymentIntent id, else the Checkout Session id): events
    # waiting for a purchase are retried as soon as that purchase is booked.
    payment_key: Mapped[str | None] = mapped_column(String(255), index=True)
    payload: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    livemode: Mapped[bool] = mapped_column(default=False)
    stripe_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
