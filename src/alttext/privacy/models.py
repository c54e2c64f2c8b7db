"""What the privacy rights and the retention policy need: consents, an audit trail, e-mail
tokens and anonymous usage totals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from alttext.db import Base, UTCDateTime, utcnow

CONSENT_KINDS = ("terms", "privacy", "age_18", "product_email", "history")


class Consent(Base):
    """One decision of the account holder, append-only (the latest per kind is in force)."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    version: Mapped[str | None] = mapped_column(String(20))  # of the terms or policy accepted
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(20))  # signup | api | dashboard | admin
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who exercised which right, when. Ids and names of actions only, never content.

    ``account_id`` has no foreign key on purpose: the record of an erasure outlives the account
    (it then names the anonymised accounting id, not the erased one).
    """

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(20))  # account | admin | system
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)  # JSON: ids, counts, field names
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailToken(Base):
    """A one-time link sent by e-mail: sign-up verification, an e-mail change, a password reset."""

    __tablename__ = "email_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(
        String(20)
    )  # verify_signup | change_email | reset_password
    email: Mapped[str] = mapped_column(String(320))  # where it was sent
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsageRollup(Base):
    """Anonymous monthly totals that usage detail is rolled into before it is deleted."""

    __tablename__ = "usage_rollups"
    __table_args__ = (UniqueConstraint("month", "model", name="uq_usage_rollups_month_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM (UTC)
    model: Mapped[str] = mapped_column(String(200))  # "" when no model answered
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    succeeded: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    upstream_cost_usd: Mapped[float] = mapped_column(Numeric(16, 8, asdecimal=False), default=0)


class TrialMark(Base):
    """A keyed hash of an address that has received trial credits, so that signing up again
    with it (after an erasure, or with a +tag) does not grant them twice.

    No account id: it outlives the account on purpose (docs/privacy.md).
    """

    __tablename__ = "trial_marks"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
