"""Accounts, their API keys, dashboard sessions and the failed-login log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from alttext.db import Base, UTCDateTime, utcnow


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # active | unverified (sign-up not confirmed) | suspended (payment dispute) | erased
    status: Mapped[str] = mapped_column(String(20), default="active")
    # GDPR Art. 18: while set, no processing (403 account_restricted); independent of status.
    restricted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    product_email_opt_in: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Derived from the credit ledger; changed only in the same transaction as a ledger entry.
    credits_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    history_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set on the first checkout (billing/checkout.py); unique so two accounts never share one.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Argon2id (accounts/passwords.py); None until a password is set (API sign-ups).
    password_hash: Mapped[str | None] = mapped_column(String(255))


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A dashboard sign-in. The cookie holds a random secret; only its SHA-256 is stored here,
    so deleting the row ends the session at once, everywhere."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LoginFailure(Base):
    """One failed dashboard login, counted for throttling and deleted after the window.

    ``subject`` is a keyed hash (HMAC-SHA256 with the service's secret key) of the e-mail
    address tried, or of the client's IP address: never the address itself.
    """

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
