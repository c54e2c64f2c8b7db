"""CSRF on every state-changing form, the security headers on every answer, no other origin
referenced by any page, no inline script or style, and errors as pages for browsers only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from alttext.accounts.models import Account, ApiKey
from alttext.jobstore.models import Job, WebhookSigning
from alttext.web.security import CSP
from tests.web.support import PASSWORD, Web, csrf_of, web_service

# Every form that changes something: (page with the form, action, fields).
FORMS: list[tuple[str, str, dict[str, str]]] = [
    (
        "/signup",
        "/signup",
        {
            "email": "x@example.com",
            "password": PASSWORD,
            "confirm_age_18": "on",
            "accept_terms": "on",
            "accept_privacy": "on",
        },
    ),
    ("/login", "/login", {"email": "csrf@example.com", "password": PASSWORD}),
    ("/password/forgot", "/password/forgot", {"email": "csrf@example.com"}),
    ("/dashboard", "/logout", {}),
    ("/dashboard/keys", "/dashboard/keys", {"name": "sneaky"}),
    ("/dashboard/credits", "/dashboard/credits/checkout", {"amount_usd": "5"}),
    ("/dashboard/try", "/dashboard/try", {"image_url": "https://example.com/a.png"}),
    ("/dashboard/jobs", "/dashboard/jobs", {"image_urls": "https://example.com/a.png"}),
    ("/dashboard/jobs", "/dashboard/jobs/webhook-secret/reveal", {}),
    ("/dashboard/jobs", "/dashboard/jobs/webhook-secret/rotate", {}),
    (
        "/dashboard/account",
        "/dashboard/account/profile",
        {"name": "Mallory", "email": "m@example.com"},
    ),
    ("/dashboard/account", "/dashboard/account/choices", {"history": "on"}),
    (
        "/dashboard/account",
        "/dashboard/account/password",
        {"current_password": PASSWORD, "new_password": "pwned pwned pwned"},
    ),
    ("/dashboard/account", "/dashboard/account/export", {}),
    ("/dashboard/account", "/dashboard/account/restrict", {"restrict": "on"}),
    ("/dashboard/account", "/dashboard/account/delete", {"confirm": "csrf@example.com"}),
]


async def _state(web: Web, email: str) -> tuple[Any, ...]:
    async with web.sessions() as session:
        account = (
            await session.execute(select(Account).where(Account.email == email))
        ).scalar_one()
        keys = (await session.execute(select(ApiKey).where(ApiKey.account_id == account.id))).all()
        accounts = (await session.execute(select(Account.id))).all()
        jobs = (await session.execute(select(Job.id))).all()
        signing = (await session.execute(select(WebhookSigning.version))).all()
    return (
        account.name,
        account.password_hash,
        account.history_opt_in,
        account.restricted_at,
        account.status,
        len(keys),
        len(accounts),
        len(jobs),
        signing,
    )


async def test_every_form_refuses_a_missing_or_wrong_token_and_changes_nothing(web: Web) -> None:
    await web.open_account("csrf@example.com")
    other = web.browser()
    await other.get("/login")  # a token of another browser
    foreign = csrf_of((await other.get("/login")).text)
    before = await _state(web, "csrf@example.com")
    for page, action, data in FORMS:
        assert (await web.get(page)).status_code in (200, 303), page
        for token in (None, "0" * 64, foreign):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            r = await web.client.post(action, data=body)
            assert r.status_code == 403, (action, token, r.status_code)
            assert r.headers["content-type"].startswith("text/html")
            assert "did not come from this site" in r.text
    assert await _state(web, "csrf@example.com") == before
    assert web.mail.to("csrf@example.com")[-1].subject.startswith("Confirm")  # no new mail
    assert (await web.get("/dashboard")).status_code == 200  # still logged in


async def test_a_token_from_before_login_does_not_work_after_it(web: Web) -> None:
    await web.open_account("bound@example.com")
    await web.form("/dashboard", "/logout", {})
    old = csrf_of((await web.get("/login")).text)
    assert (await web.log_in("bound@example.com")).status_code == 303
    r = await web.client.post("/dashboard/keys", data={"csrf_token": old, "name": "x"})
    assert r.status_code == 403


PUBLIC = [
    "/",
    "/signup",
    "/login",
    "/password/forgot",
    "/docs",
    "/privacy",
    "/terms",
    "/signup/verify?token=nope",
    "/password/reset?token=nope",
    "/no-such-page",
]
PRIVATE = [
    "/dashboard",
    "/dashboard/keys",
    "/dashboard/credits",
    "/dashboard/credits?checkout=success",
    "/dashboard/try",
    "/dashboard/jobs",
    "/dashboard/jobs?rotate=1",
    "/dashboard/account",
    "/account/email/confirm?token=x",
]
OTHER = [
    "/static/site.css",
    "/static/app.js",
    "/healthz",
    "/openapi.json",
    "/v1/account",
    "/v1/nope",
]
URL_ATTRS = re.compile(r'\b(?:src|href|action|srcset|formaction|poster|data)\s*=\s*"([^"]*)"', re.I)


def _assert_headers(headers: Any, *, hsts: bool) -> None:
    csp = headers["content-security-policy"]
    assert csp == CSP
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://checkout.stripe.com" in csp
    sources = [part for part in csp.split(";") if not part.strip().startswith("form-action")]
    assert not any("http" in part for part in sources), "a third-party source"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["x-content-type-options"] == "nosniff"
    assert ("strict-transport-security" in headers) is hsts


async def test_security_headers_on_every_answer(web: Web) -> None:
    for path in PUBLIC + OTHER:
        _assert_headers((await web.get(path)).headers, hsts=True)
    await web.open_account("headers@example.com")
    for path in PRIVATE:
        r = await web.get(path)
        assert r.status_code == 200, path
        _assert_headers(r.headers, hsts=True)
        assert r.headers["cache-control"] == "no-store"


async def test_no_hsts_in_development(service_factory: Any) -> None:
    async with web_service(service_factory, env="development") as web:
        for path in ("/", "/login", "/healthz"):
            _assert_headers((await web.get(path)).headers, hsts=False)


async def _all_pages(web: Web) -> dict[str, str]:
    pages = {p: (await web.get(p)).text for p in PUBLIC}
    await web.open_account("scan@example.com")
    for path in PRIVATE:
        pages[path] = (await web.get(path)).text
    created = await web.form("/dashboard/keys", "/dashboard/keys", {"name": "k"})
    pages["key created"] = created.text
    revealed = await web.form("/dashboard/jobs", "/dashboard/jobs/webhook-secret/reveal", {})
    pages["signing secret revealed"] = revealed.text
    return pages


async def test_no_page_references_another_origin_or_inlines_script_or_style(web: Web) -> None:
    pages = await _all_pages(web)
    for path, html in pages.items():
        for url in URL_ATTRS.findall(html):
            assert not re.match(r"^(https?:)?//", url), f"{path} references {url}"
            assert not url.lower().startswith(("javascript:", "data:")), f"{path}: {url}"
        assert not re.search(r"\sstyle\s*=", html, re.I), f"inline style on {path}"
        assert "<style" not in html.lower(), f"style element on {path}"
        for script in re.findall(r"<script\b[^>]*>", html, re.I):
            assert 'src="/static/' in script, f"inline script on {path}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler on {path}"


def test_the_scan_can_fail() -> None:
    bad = '<a href="https://cdn.example/x.js">x</a><img src="//cdn.example/i.png">'
    found = [u for u in URL_ATTRS.findall(bad) if re.match(r"^(https?:)?//", u)]
    assert found == ["https://cdn.example/x.js", "//cdn.example/i.png"]


async def test_errors_are_pages_for_browsers_and_problems_for_the_api(web: Web) -> None:
    page = await web.get("/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in page.text
    for path in ("/v1/no-such-thing", "/webhooks/nope"):
        api = await web.get(path, headers={"Accept": "text/html"})
        assert api.status_code == 404
        assert api.headers["content-type"] == "application/problem+json"
        assert api.json()["code"] == "not_found"
    unauthorized = await web.get("/v1/account", headers={"Accept": "text/html"})
    assert unauthorized.headers["content-type"] == "application/problem+json"
    machine = await web.get("/no-such-page", headers={"Accept": "application/json"})
    assert machine.headers["content-type"] == "application/problem+json"


async def test_an_unexpected_error_on_a_page_is_an_html_500_with_the_request_id(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alttext.web import pages

    def broken(document: Any) -> Any:
        raise RuntimeError("boom: a secret detail")

    monkeypatch.setattr(pages, "reference", broken)
    r = await web.get("/docs")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in r.text
    assert r.headers["x-request-id"] in r.text
    assert "boom" not in r.text
    _assert_headers(r.headers, hsts=True)
