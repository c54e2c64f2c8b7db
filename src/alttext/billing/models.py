"""The credit ledger: append-only; an account's balance is the sum of its entries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from alttext.db import Base, utcnow

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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
