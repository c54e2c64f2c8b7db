"""Shared by the sign-up and rights tests: a mailer that keeps mail, and a few helpers."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from alttext.mail import Mail
from alttext.privacy.models import AuditEvent

TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")
SIGNUP = {"accept_terms": True, "accept_privacy": True, "confirm_age_18": True}


@dataclass
class FakeMailer:
    kind: str = "fake"
    sent: list[Mail] = field(default_factory=list)

    async def send(self, mail: Mail) -> None:
        self.sent.append(mail)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.sent if m.to == address]

    def token_for(self, address: str) -> str:
        """The token in the latest mail to ``address``."""
        match = TOKEN.search(self.to(address)[-1].body)
        assert match, "no token in the mail"
        return match.group(1)


@dataclass
class RightsService:
    svc: Any
    mail: FakeMailer

    @property
    def client(self) -> Any:
        return self.svc.client

    @property
    def sessions(self) -> Any:
        return self.svc.app.state.services.sessions

    async def signup(self, email: str, **extra: Any) -> Any:
        return await self.client.post("/v1/signup", json={"email": email, **SIGNUP, **extra})

    async def open_account(self, email: str) -> tuple[str, dict[str, str], str]:
        """Sign up and verify: (account id, auth headers, key prefix)."""
        assert (await self.signup(email)).status_code == 202
        r = await self.client.post("/v1/signup/verify", json={"token": self.mail.token_for(email)})
        assert r.status_code == 201, r.text
        key = r.json()["api_key"]
        return (
            r.json()["account_id"],
            {"Authorization": f"Bearer {key['secret']}"},
            key["secret"][:12],
        )

    async def audit(self, account_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(AuditEvent)
                .where(AuditEvent.account_id == account_id)
                .order_by(AuditEvent.created_at, AuditEvent.id)
            )
            return [
                (e.actor, e.action, json.loads(e.detail) if e.detail else {})
                for e in rows.scalars()
            ]


def rights_service(service_factory: Callable[..., Any], **settings: Any) -> Any:
    @asynccontextmanager
    async def run() -> AsyncIterator[RightsService]:
        values = {"free_credits": 5, **settings}
        async with service_factory(**values) as svc:
            mailer = FakeMailer()
            svc.app.state.services.mailer = mailer
            yield RightsService(svc=svc, mail=mailer)

    return run()
