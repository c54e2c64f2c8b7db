"""The mailers: the log mailer (development), SMTP URL parsing, and SMTP delivery and failure
against a minimal SMTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from alttext.mail import LogMailer, Mail, MailFailed, SmtpMailer, build_mailer, parse_smtp_url
from tests.conftest import make_settings


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    received: ClassVar[list[str]] = []

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 fake ESMTP")
        while line := self.rfile.readline().decode().strip():
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                self._say("250-fake")
                self._say("250 AUTH PLAIN")
            elif verb == "AUTH":
                self._say("235 ok")
            elif verb == "DATA":
                self._say("354 go on")
                lines = []
                while (data := self.rfile.readline().decode()) != ".\r\n":
                    lines.append(data)
                _Smtp.received.append("".join(lines))
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


@pytest.fixture
def smtp_port() -> Iterator[int]:
    _Smtp.received.clear()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_smtp_url_parsing() -> None:
    c = parse_smtp_url("smtps://me%40x.org:p%40ss@mail.x.org?from=hi@x.org", default_sender="n@x")
    assert (c.host, c.port, c.tls, c.username, c.password, c.sender) == (
        "mail.x.org",
        465,
        True,
        "me@x.org",
        "p@ss",
        "hi@x.org",
    )
    plain = parse_smtp_url("smtp://relay", default_sender="n@x")
    assert (plain.port, plain.tls, plain.username, plain.sender) == (587, False, None, "n@x")
    with pytest.raises(ValueError, match="smtp://"):
        parse_smtp_url("http://relay", default_sender="n@x")


def test_build_mailer_picks_by_setting() -> None:
    assert isinstance(build_mailer(make_settings("sqlite+aiosqlite://")), LogMailer)
    smtp = build_mailer(make_settings("sqlite+aiosqlite://", smtp_url="smtp://h:25"))
    assert isinstance(smtp, SmtpMailer)
    assert smtp.config.sender == "noreply@127.0.0.1"


async def test_log_mailer_writes_to_the_mail_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="alttext.mail"):
        await LogMailer().send(Mail(to="a@example.com", subject="Hi", body="token=abc"))
    record = next(r for r in caplog.records if r.name == "alttext.mail")
    assert "a@example.com" in record.getMessage()
    assert "token=abc" in record.getMessage()


async def test_smtp_mailer_delivers(smtp_port: int) -> None:
    mailer = SmtpMailer(
        parse_smtp_url(f"smtp://u:p@127.0.0.1:{smtp_port}", default_sender="noreply@x.org")
    )
    await mailer.send(Mail(to="b@example.com", subject="Confirm", body="token=xyz"))
    assert len(_Smtp.received) == 1
    message = _Smtp.received[0]
    assert "To: b@example.com" in message
    assert "From: noreply@x.org" in message
    assert "token=xyz" in message


async def test_smtp_failure_is_a_503_without_the_address(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mailer = SmtpMailer(parse_smtp_url(f"smtp://127.0.0.1:{port}", default_sender="n@x"))
    with pytest.raises(MailFailed) as info:
        await mailer.send(Mail(to="secret@example.com", subject="s", body="b"))
    assert info.value.http_status == 503
    assert all("secret@example.com" not in r.getMessage() for r in caplog.records)
