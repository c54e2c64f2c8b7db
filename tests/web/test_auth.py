"""Sign-up, confirmation, log in and out, password change and reset: sessions are server-side
and end when they should; throttling; and no answer says whether an address is registered."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from alttext.accounts import logins, passwords
from alttext.accounts.models import Account, WebSession
from alttext.db import utcnow
from alttext.web.session import SESSION_COOKIE, local_path
from tests.web.support import PASSWORD, Web, csrf_of, hidden, web_service

NEW = "a different passphrase entirely"


def _visible(html: str) -> str:
    """The page without its per-request tokens, to compare two answers."""
    html = re.sub(r'value="[A-Za-z0-9_\-]{20,}"', 'value=""', html)
    return re.sub(r"\s+", " ", html)


async def _sessions(web: Web, account_id: str) -> int:
    async with web.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(WebSession)
                .where(WebSession.account_id == account_id)
            )
            or 0
        )


async def test_sign_up_confirm_use_and_log_out(web: Web) -> None:
    r = await web.sign_up("New@Example.com")
    assert r.status_code == 200
    assert "Check your inbox" in r.text
    async with web.sessions() as session:
        account = (await session.execute(select(Account))).scalar_one()
    assert account.status == "unverified"
    assert account.password_hash
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    # Not before the address is confirmed.
    early = await web.browser().log_in("new@example.com")
    assert early.status_code == 400
    done = await web.confirm("new@example.com")
    assert done.status_code == 303
    overview = await web.get("/dashboard?status=welcome")
    assert overview.status_code == 200
    assert "Welcome" in overview.text
    assert '<span class="big">10</span> credits' in overview.text  # the trial credits

    copied = web.client.cookies.get(SESSION_COOKIE)
    assert copied
    out = await web.form("/dashboard", "/logout", {})
    assert out.status_code == 303
    assert out.headers["location"] == "/login?status=logged_out"
    assert await _sessions(web, account.id) == 0
    thief = web.browser()
    thief.plant(SESSION_COOKIE, copied)
    after = await thief.get("/dashboard")
    assert after.status_code == 303
    assert after.headers["location"] == "/login?next=/dashboard"


async def test_session_cookie_is_httponly_lax_secure_and_rotated_at_login(web: Web) -> None:
    await web.open_account("cookie@example.com")
    other = web.browser()
    other.plant(SESSION_COOKIE, "planted-by-someone-else")
    r = await other.log_in("cookie@example.com")
    assert r.status_code == 303
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie or "samesite=lax" in session_cookie.lower()
    assert "Secure" in session_cookie  # ALTTEXT_ENV=test: outside development
    assert "planted-by-someone-else" not in session_cookie
    assert any(c.startswith("alttext_csrf=") for c in cookies)  # rotated too
    # Each login is a new session: the first browser's stays its own.
    assert other.client.cookies.get(SESSION_COOKIE) != web.client.cookies.get(SESSION_COOKIE)


async def test_development_cookies_are_not_secure(service_factory: Any) -> None:
    async with web_service(service_factory, env="development") as web:
        await web.sign_up("dev@example.com")
        r = await web.confirm("dev@example.com")
        cookie = next(
            c for c in r.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}=")
        )
        assert "Secure" not in cookie
        assert "HttpOnly" in cookie


async def test_password_change_ends_every_other_session_and_rotates_this_one(web: Web) -> None:
    account_id = await web.open_account("change@example.com")
    laptop = web.browser()
    assert (await laptop.log_in("change@example.com")).status_code == 303
    before = web.client.cookies.get(SESSION_COOKIE)
    assert await _sessions(web, account_id) == 2

    wrong = await web.form(
        "/dashboard/account",
        "/dashboard/account/password",
        {"current_password": "not it at all", "new_password": NEW},
    )
    assert wrong.status_code == 400
    assert "not your current password" in wrong.text
    r = await web.form(
        "/dashboard/account",
        "/dashboard/account/password",
        {"current_password": PASSWORD, "new_password": NEW},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/account?status=password_set"
    after = web.client.cookies.get(SESSION_COOKIE)
    assert after
    assert after != before
    assert (await web.get("/dashboard")).status_code == 200
    assert await _sessions(web, account_id) == 1
    assert (await laptop.get("/dashboard")).status_code == 303
    stale = web.browser()
    stale.plant(SESSION_COOKIE, before)
    assert (await stale.get("/dashboard")).status_code == 303
    assert (await web.browser().log_in("change@example.com", PASSWORD)).status_code == 400
    assert (await web.browser().log_in("change@example.com", NEW)).status_code == 303
    assert "was just changed" in web.mail.to("change@example.com")[-1].body


async def test_password_reset_by_mail(web: Web) -> None:
    account_id = await web.open_account("forgot@example.com")
    stranger = web.browser()
    known = await stranger.form(
        "/password/forgot", "/password/forgot", {"email": "forgot@example.com"}
    )
    unknown = await stranger.form(
        "/password/forgot", "/password/forgot", {"email": "nobody@example.com"}
    )
    assert known.status_code == unknown.status_code == 200
    assert _visible(known.text).replace("forgot@", "X@") == _visible(unknown.text).replace(
        "nobody@", "X@"
    )
    assert web.mail.to("nobody@example.com") == []
    link = web.link("forgot@example.com", "/password/reset")

    page = await stranger.get(link)
    assert page.status_code == 200
    short = await stranger.client.post(
        "/password/reset",
        data={
            "csrf_token": csrf_of(page.text),
            "token": hidden(page.text, "token"),
            "new_password": "short",
        },
    )
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    r = await stranger.client.post(
        "/password/reset",
        data={
            "csrf_token": csrf_of(page.text),
            "token": hidden(page.text, "token"),
            "new_password": NEW,
        },
    )
    assert r.status_code == 303
    assert (await stranger.get("/dashboard")).status_code == 200  # logged in by the reset
    assert (await web.get("/dashboard")).status_code == 303  # the other session ended
    assert await _sessions(web, account_id) == 1
    again = await stranger.get(link)
    assert again.status_code == 400  # one use only
    assert (await web.browser().log_in("forgot@example.com", NEW)).status_code == 303


async def test_a_confirmation_needs_the_password_chosen_with_its_link(web: Web) -> None:
    """Someone who signs up with another person's address cannot sign in after its owner
    confirms: the link asks for the password of the sign-up that sent it."""
    attacker, owner = web.browser(), web.browser()
    await attacker.sign_up("victim@example.com", "attacker's own password")
    await owner.sign_up("victim@example.com", PASSWORD)
    assert len(web.mail.to("victim@example.com")) == 2
    wrong = await owner.confirm("victim@example.com", "attacker's own password")
    assert wrong.status_code == 400
    assert "not the password chosen with this link" in wrong.text
    assert (await owner.confirm("victim@example.com", PASSWORD)).status_code == 303
    assert (
        await attacker.log_in("victim@example.com", "attacker's own password")
    ).status_code == 400


async def test_confirming_through_the_api_clears_a_pending_password(web: Web) -> None:
    await web.sign_up("api@example.com", "somebody's password here")
    token = web.link("api@example.com", "/signup/verify").split("token=")[1]
    r = await web.client.post("/v1/signup/verify", json={"token": token})
    assert r.status_code == 201
    async with web.sessions() as session:
        account = (await session.execute(select(Account))).scalar_one()
    assert account.password_hash is None
    assert (
        await web.browser().log_in("api@example.com", "somebody's password here")
    ).status_code == 400


async def test_login_is_throttled_per_address_the_same_whether_or_not_it_exists(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    await web.open_account("real@example.com")
    checks: list[str | None] = []
    real_verify = passwords.verify_password_sync

    def counting(stored: str | None, password: str) -> bool:
        checks.append(stored)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_password_sync", counting)
    pages: dict[str, list[tuple[int, str]]] = {}
    for email in ("real@example.com", "ghost@example.com"):
        browser = web.browser()
        answers = []
        for _ in range(6):
            r = await browser.log_in(email, "wrong password!")
            answers.append((r.status_code, _visible(r.text).replace(email, "X")))
        pages[email] = answers
    assert [s for s, _ in pages["real@example.com"]] == [400] * 5 + [429]
    assert pages["real@example.com"] == pages["ghost@example.com"]
    assert "Try again in 15 minutes" in pages["ghost@example.com"][5][1]
    # A password was checked for each of the 5 counted attempts, with or without an account
    # (a dummy hash for the missing one); none once throttled.
    assert len(checks) == 10
    assert checks[5:] == [None] * 5
    # Throttled: even the right password is not checked now.
    assert (await web.browser().log_in("real@example.com")).status_code == 429

    later = utcnow() + logins.WINDOW + timedelta(seconds=1)
    monkeypatch.setattr(logins, "utcnow", lambda: later)
    assert (await web.browser().log_in("real@example.com")).status_code == 303


async def test_login_is_throttled_per_client(web: Web) -> None:
    browser = web.browser()
    codes = [
        (await browser.log_in(f"user{i}@example.com", "wrong password!")).status_code
        for i in range(21)
    ]
    assert codes == [400] * 20 + [429]


async def test_a_right_password_clears_the_address_count(web: Web) -> None:
    await web.open_account("typo@example.com")
    browser = web.browser()
    for _ in range(4):
        assert (await browser.log_in("typo@example.com", "typo typo typo")).status_code == 400
    assert (await browser.log_in("typo@example.com")).status_code == 303
    other = web.browser()
    for _ in range(4):
        assert (await other.log_in("typo@example.com", "typo typo typo")).status_code == 400
    assert (await other.log_in("typo@example.com")).status_code == 303


async def test_anonymous_dashboard_pages_redirect_to_login_with_next(web: Web) -> None:
    for path in (
        "/dashboard",
        "/dashboard/keys",
        "/dashboard/credits?checkout=success",
        "/dashboard/try",
        "/dashboard/account",
        "/account/email/confirm?token=x",
    ):
        r = await web.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=/")
    await web.open_account("next@example.com")
    await web.form("/dashboard", "/logout", {})
    page = await web.get("/login?next=/dashboard/keys")
    r = await web.client.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "next": "/dashboard/keys",
            "email": "next@example.com",
            "password": PASSWORD,
        },
    )
    assert r.headers["location"] == "/dashboard/keys"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/dashboard/keys?x=1", "/dashboard/keys?x=1"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("/ok\r\nSet-Cookie: x", "/dashboard"),
        ("", "/dashboard"),
    ],
)
def test_next_accepts_only_local_paths(raw: str, expected: str) -> None:
    assert local_path(raw) == expected


async def test_login_with_a_foreign_next_stays_home(web: Web) -> None:
    await web.open_account("home@example.com")
    other = web.browser()
    page = await other.get("/login")
    r = await other.client.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "next": "https://evil.example/",
            "email": "home@example.com",
            "password": PASSWORD,
        },
    )
    assert r.headers["location"] == "/dashboard"
