"""Driving the dashboard's pages over HTTP like a browser without script: cookies, CSRF tokens
from the page, forms posted as a browser posts them, and mail kept by a fake mailer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
from sqlalchemy import select

from alttext.accounts.models import Account
from tests.privacy.rights_support import FakeMailer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return unescape(match.group(1))


@dataclass
class Web:
    """One browser: its own cookie jar, on the app of ``svc``."""

    svc: Any
    mail: FakeMailer
    client: httpx.AsyncClient

    @property
    def sessions(self) -> Any:
        return self.svc.app.state.services.sessions

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def form(
        self, page: str, action: str, data: dict[str, Any], *, files: Any = None
    ) -> httpx.Response:
        """Open ``page``, then post ``data`` to ``action`` with the page's CSRF token."""
        opened = await self.client.get(page)
        assert opened.status_code == 200, (page, opened.status_code)
        body = {"csrf_token": csrf_of(opened.text), **data}
        return await self.client.post(action, data=body, files=files)

    async def sign_up(self, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
        data = {
            "email": email,
            "password": password,
            "confirm_age_18": "on",
            "accept_terms": "on",
            "accept_privacy": "on",
            **extra,
        }
        return await self.form("/signup", "/signup", data)

    def link(self, address: str, path: str) -> str:
        """The path and query of the latest link to ``path`` mailed to ``address``."""
        body = self.mail.to(address)[-1].body
        match = re.search(rf"https?://[^/\s]+({re.escape(path)}\?token=[A-Za-z0-9_%\-]+)", body)
        assert match, f"no {path} link in the mail to {address}"
        return match.group(1)

    async def confirm(self, email: str, password: str | None = PASSWORD) -> httpx.Response:
        page = await self.client.get(self.link(email, "/signup/verify"))
        assert page.status_code == 200, page.text
        data = {"csrf_token": csrf_of(page.text), "token": hidden(page.text, "token")}
        if password is not None:
            data["password"] = password
        return await self.client.post("/signup/verify", data=data)

    async def open_account(self, email: str, password: str = PASSWORD) -> str:
        """Sign up, confirm and stay logged in; the account id."""
        assert (await self.sign_up(email, password)).status_code == 200
        done = await self.confirm(email, password)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/dashboard?status=welcome"
        return await self.account_id(email)

    async def account_id(self, email: str) -> str:
        async with self.sessions() as session:
            account = (
                await session.execute(select(Account).where(Account.email == email))
            ).scalar_one()
        return account.id

    async def log_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.form("/login", "/login", {"email": email, "password": password})

    def plant(self, name: str, value: str) -> None:
        """Put a cookie in this browser, as if copied from another."""
        self.client.cookies.set(name, value, domain="testserver.local", path="/")

    def browser(self) -> Web:
        """Another browser on the same service and mailbox (its own cookies)."""
        return Web(self.svc, self.mail, _client(self.svc))


def _client(svc: Any, base_url: str = "https://testserver") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=svc.app)
    return httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=False)


def web_service(service_factory: Callable[..., Any], **settings: Any) -> Any:
    @asynccontextmanager
    async def run() -> AsyncIterator[Web]:
        async with service_factory(**settings) as svc:
            mailer = FakeMailer()
            svc.app.state.services.mailer = mailer
            async with _client(svc) as client:
                yield Web(svc=svc, mail=mailer, client=client)

    return run()
