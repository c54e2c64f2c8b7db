"""Outgoing e-mail: sign-up verification, address changes, notices.

Two mailers behind one protocol, chosen once at start-up by :func:`build_mailer`:

- :class:`LogMailer` (``ALTTEXT_SMTP_URL`` unset) writes each mail to the log (logger
  ``alttext.mail``). Development only: the log then holds addresses and one-time links.
- :class:`SmtpMailer` (``smtp://user:pass@host:587`` with STARTTLS when offered, or
  ``smtps://user:pass@host:465`` with TLS from the start; ``?from=noreply@example.com`` sets
  the sender) sends with :mod:`smtplib` in a worker thread, with a timeout, so the event loop
  never waits on a mail server.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from alttext.config import Settings
from alttext.errors import ServiceUnavailable

log = logging.getLogger("alttext.mail")

SMTP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class MailFailed(ServiceUnavailable):
    title = "E-mail could not be sent"


@runtime_checkable
class Mailer(Protocol):
    kind: str  # "log" | "smtp"

    async def send(self, mail: Mail) -> None:
        """Deliver one mail or raise :class:`MailFailed`."""
        ...


class LogMailer:
    """Development only: the mail goes to the log instead of a mail server."""

    kind = "log"

    async def send(self, mail: Mail) -> None:
        log.info(
            "mail not sent (ALTTEXT_SMTP_URL is unset; development only)\nTo: %s\nSubject: %s"
            "\n\n%s",
            mail.to,
            mail.subject,
            mail.body,
        )


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: bool  # smtps: TLS from the first byte; otherwise STARTTLS when the server offers it
    username: str | None
    password: str | None
    sender: str


def parse_smtp_url(url: str, *, default_sender: str) -> SmtpConfig:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("ALTTEXT_SMTP_URL must look like smtp://user:pass@host:587")
    tls = parts.scheme == "smtps"
    query = parse_qs(parts.query)
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if tls else 587),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=query.get("from", [default_sender])[0],
    )


class SmtpMailer:
    kind = "smtp"

    def __init__(self, config: SmtpConfig, *, timeout_s: float = SMTP_TIMEOUT_S) -> None:
        self.config = config
        self.timeout_s = timeout_s

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self._send_sync, message), timeout=self.timeout_s + 5
            )
        except (OSError, smtplib.SMTPException, TimeoutError) as exc:
            # The recipient is personal data: only the failure's type is logged.
            log.warning("mail failed", extra={"error_type": type(exc).__name__})
            raise MailFailed(
                "The e-mail could not be sent just now; nothing was changed. Retry shortly.",
                retry_after=30,
            ) from exc

    def _send_sync(self, message: EmailMessage) -> None:
        c = self.config
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if c.tls:
            client = smtplib.SMTP_SSL(c.host, c.port, timeout=self.timeout_s, context=context)
        else:
            client = smtplib.SMTP(c.host, c.port, timeout=self.timeout_s)
        with client:
            client.ehlo()
            if not c.tls and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if c.username:
                client.login(c.username, c.password or "")
            client.send_message(message)


def default_sender(settings: Settings) -> str:
    host = urlsplit(settings.public_url).hostname or "localhost"
    return f"noreply@{host}"


def build_mailer(settings: Settings) -> Mailer:
    if not settings.smtp_url:
        if settings.env == "production":
            log.warning("ALTTEXT_SMTP_URL is unset: mail is written to the log, not sent")
        return LogMailer()
    return SmtpMailer(parse_smtp_url(settings.smtp_url, default_sender=default_sender(settings)))
