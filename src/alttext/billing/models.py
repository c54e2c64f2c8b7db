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
