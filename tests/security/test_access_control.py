"""Access control, generated from the route table.

``ROUTES`` classifies every operation the app serves: an API operation (an API key), a
dashboard page or form (a session), or a public one with its own check. The first test walks
``app.routes`` and fails on any operation missing from the table, so a route added later fails
here until someone decides who may call it; a route with an id in its path (``{job_id}``,
``{key_id}``, ...) fails until ``OWNED`` knows how to make another account's such object.
From the table, the other tests check that:

- anonymous callers get 401 problem+json on the API and a redirect to the login page from the
  dashboard (a dashboard session is no API credential); public routes pass their own check;
- account A cannot read or change account B's data: A calling every route that takes an id
  with B's id gets 404 (never 403, never B's data) while its own id works; every list, page
  and export A can read, with cursors set to B's ids, holds none of B's ids, address or name;
  and A's well-formed request on every route, erasing its own account last, leaves every row
  of B's as it was;
- a revoked key fails on every API route at the next call (the key cache holds checked keys
  for ``ALTTEXT_KEY_CACHE_TTL_S``, here 60 s, and must drop a revoked one at once), and an
  ended session (logout, password change, erasure) fails on every page at once;
- guessing is throttled: logins, password resets, sign-up tokens, and API keys (many invalid
  keys from one address: 429 with Retry-After, then for every key that address sends).
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from alttext.accounts import passwords
from alttext.accounts.keys import display_prefix, generate_key
from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import adjust, book
from alttext.billing.models import StripeEvent
from alttext.db import transaction, utcnow
from alttext.http import deps
from alttext.ids import new_id
from alttext.jobstore.models import Job, JobItem, WebhookAttempt, WebhookMessage
from alttext.models_registry import metadata
from alttext.web.session import SESSION_COOKIE, login_url
from tests.web.support import PASSWORD, Web, csrf_of, web_service

Kind = Literal["api", "page", "public"]
NEW_PASSWORD = "an entirely different passphrase"
METRICS_TOKEN = "metrics-token-" + "m" * 24
SETTINGS: dict[str, Any] = {
    "metrics_token": METRICS_TOKEN,
    "stripe_webhook_secret": "whsec_" + "s" * 32,
    # Checked keys are trusted from memory for a minute: revocation must not wait for it.
    "key_cache_ttl_s": 60,
}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "maroon").save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()


# -- the parties --------------------------------------------------------------------------------


@dataclass
class Party:
    """An account with one of everything: keys, a request, ledger entries with a receipt, an
    open (paused) job and a finished one, a webhook delivery, an address change waiting for its
    token, and a signed-in browser."""

    id: str
    email: str
    name: str
    key: str
    key_id: str
    spare_key_id: str
    request_id: str
    entry_id: str
    open_job_id: str
    done_job_id: str
    item_id: str
    attempt_id: str
    new_email: str
    email_token: str
    webhook_secret: str
    tag: str  # in the jobs' image URLs and the webhook URL
    browser: Web

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def needles(self) -> dict[str, str]:
        """What must never appear in an answer to anyone else."""
        return {
            "account id": self.id,
            "email": self.email,
            "name": self.name,
            "key prefix": display_prefix(self.key),
            "key id": self.key_id,
            "spare key id": self.spare_key_id,
            "request id": self.request_id,
            "ledger entry id": self.entry_id,
            "open job id": self.open_job_id,
            "finished job id": self.done_job_id,
            "job item id": self.item_id,
            "delivery attempt id": self.attempt_id,
            "new email": self.new_email,
            "webhook secret": self.webhook_secret,
            "crawled site": f"site.example/{self.tag}/",
            "job image URL": f"img.example/{self.tag}/",
            "webhook URL": f"hooks.example/{self.tag}",
        }


async def _seed_jobs(web: Web, account_id: str, tag: str) -> tuple[str, str, str, str]:
    """A paused job with pending items (it stays paused: the balance is 0), a completed one
    with a result, and a delivered webhook about it: (open job, done job, item, attempt)."""
    now = utcnow()
    async with transaction(web.sessions) as session:
        paused = Job(
            id=new_id("job"),
            account_id=account_id,
            status="paused",
            source_url=f"https://site.example/{tag}/",
            crawl_state="done",
            pages_crawled=1,
            total_items=2,
            created_at=now,
            started_at=now,
        )
        done = Job(
            id=new_id("job"),
            account_id=account_id,
            status="completed",
            total_items=1,
            created_at=now,
            started_at=now,
            finished_at=now,
        )
        session.add_all([paused, done])
        await session.flush()
        for seq in range(2):
            session.add(
                JobItem(
                    id=new_id("item"),
                    job_id=paused.id,
                    account_id=account_id,
                    seq=seq,
                    image_url=f"https://img.example/{tag}/{seq}.png",
                    status="pending",
                )
            )
        item = JobItem(
            id=new_id("item"),
            job_id=done.id,
            account_id=account_id,
            seq=0,
            image_url=f"https://img.example/{tag}/done.png",
            status="succeeded",
            alt_text=f"A bicycle belonging to {tag}",
            decorative=False,
            role="informative",
            needs_review=False,
            review_reasons="[]",
            model="local",
            finished_at=now,
        )
        message = WebhookMessage(
            id=new_id("msg"),
            account_id=account_id,
            job_id=done.id,
            event="job.completed",
            url=f"https://hooks.example/{tag}",
            payload=json.dumps({"type": "job.completed", "data": {"job": {"id": done.id}}}),
            state="delivered",
            attempts=1,
            next_attempt_at=now,
            created_at=now,
            finished_at=now,
        )
        session.add_all([item, message])
        await session.flush()
        attempt = WebhookAttempt(
            id=new_id("wha"),
            message_id=message.id,
            account_id=account_id,
            event="job.completed",
            url=message.url,
            attempt=1,
            outcome="delivered",
            status_code=200,
            latency_ms=12,
            attempted_at=now,
        )
        session.add(attempt)
    return paused.id, done.id, item.id, attempt.id


async def make_party(web: Web, tag: str) -> Party:
    unique = secrets.token_hex(4)
    email = f"{tag}-{unique}@access.example"
    name = f"{tag.title()} Quarrington-{unique}"
    password_hash = await passwords.hash_password(PASSWORD)
    async with transaction(web.sessions) as session:
        account = await create_account(session, email, name=name)
        account.password_hash = password_hash
        account.email_verified_at = utcnow()
        purchase = await book(
            session,
            account_id=account.id,
            kind="purchase",
            credits=5,
            reference=f"pi_test_{unique}",
            amount_usd=0.15,
        )
        purchase.receipt_url = f"https://pay.stripe.com/receipts/{unique}"
        main, secret = await create_key(session, account.id, name=f"{name} main")
        spare, _ = await create_key(session, account.id, name=f"{name} spare")
        account_id, entry_id, key_id, spare_id = account.id, purchase.id, main.id, spare.id
    api = web.svc.client
    headers = {"Authorization": f"Bearer {secret}"}
    done = await api.post("/v1/alt-text", headers=headers, json={"image": PNG_B64})
    assert done.status_code == 200, done.text
    new_email = f"{tag}-moving-{unique}@access.example"
    moving = await api.patch("/v1/account", headers=headers, json={"email": new_email})
    assert moving.status_code == 200, moving.text
    webhook_secret = (await api.get("/v1/webhooks/secret", headers=headers)).json()["secret"]
    async with transaction(web.sessions) as session:
        await adjust(session, account_id, -4, reason="a balance of 0 keeps the paused job paused")
    job_tag = f"{tag}-{unique}"
    open_job, done_job, item_id, attempt_id = await _seed_jobs(web, account_id, job_tag)
    browser = web.browser()
    logged_in = await browser.log_in(email)
    assert logged_in.status_code == 303, logged_in.text
    return Party(
        id=account_id,
        email=email,
        name=name,
        key=secret,
        key_id=key_id,
        spare_key_id=spare_id,
        request_id=done.json()["id"],
        entry_id=entry_id,
        open_job_id=open_job,
        done_job_id=done_job,
        item_id=item_id,
        attempt_id=attempt_id,
        new_email=new_email,
        email_token=web.mail.token_for(new_email),
        webhook_secret=webhook_secret,
        tag=job_tag,
        browser=browser,
    )


@dataclass
class World:
    web: Web
    a: Party
    b: Party
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def app(self) -> Any:
        return self.web.svc.app

    @property
    def api(self) -> httpx.AsyncClient:
        """Plain HTTP, no cookies: how API clients call."""
        client: httpx.AsyncClient = self.web.svc.client
        return client

    def client(self, address: str = "203.0.113.1", *, https: bool = True) -> httpx.AsyncClient:
        """A client of its own: its own cookie jar and its own client address."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        base = "https://testserver" if https else "http://testserver"
        client = httpx.AsyncClient(transport=transport, base_url=base, follow_redirects=False)
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


@pytest.fixture
async def world(service_factory: Callable[..., Any]) -> AsyncIterator[World]:
    async with web_service(service_factory, **SETTINGS) as web:
        w = World(web, await make_party(web, "alice"), await make_party(web, "bob"))
        try:
            yield w
        finally:
            await w.aclose()


# -- the route table ------------------------------------------------------------------------------

Send = Callable[[Party, Party], dict[str, Any]]  # (actor, other) -> httpx request arguments
Check = Callable[["World"], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    kind: Kind
    # A well-formed request of ``actor`` (json, data, files, params); ``other`` is the other
    # party, for the requests below that name its secrets.
    send: Send | None = None
    # Query parameters naming ``other``'s ids (cursors, a confirmation to show), for the check
    # that A's answers hold nothing of B's.
    lists: Callable[[Party], dict[str, str]] | None = None
    # A request of ``actor`` naming ``other``'s secret outside the path (a token, the address
    # that confirms an erasure), and the refusal it must get.
    cross: Send | None = None
    cross_status: int = 404
    destructive: bool = False  # ends the account or its sessions: run last, or not at all
    check: Check | None = None  # a public route's own check


# Another account's object for each id a path may carry.
OWNED: dict[str, Callable[[Party], str]] = {
    "job_id": lambda p: p.open_job_id,
    "key_id": lambda p: p.spare_key_id,
    "entry_id": lambda p: p.entry_id,
}


def api(**kw: Any) -> Route:
    return Route("api", **kw)


def page(**kw: Any) -> Route:
    return Route("page", **kw)


def form(**fields: str) -> Send:
    return lambda actor, other: {"data": dict(fields)}


def public(check: Check) -> Route:
    return Route("public", check=check)


# Public routes and their own checks.


def _no_cookie(r: httpx.Response) -> None:
    assert "set-cookie" not in r.headers or SESSION_COOKIE not in r.headers["set-cookie"]


async def _openapi(w: World) -> None:
    r = await w.client(https=False).get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["openapi"].startswith("3.")


async def _healthz(w: World) -> None:
    r = await w.client(https=False).get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def _readyz(w: World) -> None:
    r = await w.client(https=False).get("/readyz")
    assert r.status_code in (200, 503)
    assert "checks" in r.json()


async def _metrics(w: World) -> None:
    """Not public at all: the operator's token, and neither no token nor an API key will do."""
    client = w.client(https=False)
    for headers in ({}, w.a.headers, {"Authorization": "Bearer " + "x" * len(METRICS_TOKEN)}):
        r = await client.get("/metrics", headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")


async def _stripe(w: World) -> None:
    """Only Stripe's signature counts: an API key or a forged signature is refused and nothing
    is stored."""
    client = w.client(https=False)
    event = json.dumps({"id": "evt_forged", "type": "checkout.session.completed"})
    for headers in (
        {},
        w.a.headers,
        {"Stripe-Signature": "t=1700000000,v1=" + "0" * 64},
    ):
        r = await client.post(
            "/webhooks/stripe",
            content=event,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text
    async with w.web.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(StripeEvent)) == 0


async def _signup_api(w: World) -> None:
    r = await w.client(https=False).post(
        "/v1/signup",
        json={
            "email": f"newcomer-{secrets.token_hex(3)}@example.com",
            "accept_terms": True,
            "accept_privacy": True,
            "confirm_age_18": True,
        },
    )
    assert r.status_code == 202, r.text


async def _verify_api(w: World) -> None:
    r = await w.client(https=False).post("/v1/signup/verify", json={"token": "x" * 43})
    assert r.status_code == 400, r.text


def _public_page(path: str, status: int = 200) -> Check:
    async def check(w: World) -> None:
        r = await w.client().get(path)
        assert r.status_code == status, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html")
        _no_cookie(r)

    return check


def _public_form(path: str, data: dict[str, str], status: int) -> Check:
    """Anyone may post it, with the CSRF token of a page (without one: 403, nothing done)."""

    async def check(w: World) -> None:
        client = w.client()
        refused = await client.post(path, data=data)
        assert refused.status_code == 403, (path, refused.status_code)
        token = csrf_of((await client.get("/login")).text)
        r = await client.post(path, data={"csrf_token": token, **data})
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        if status == 303:
            assert not r.headers["location"].startswith("/login?next=")

    return check


async def _static(w: World) -> None:
    r = await w.client().get("/static/site.css")
    assert r.status_code == 200
    _no_cookie(r)


ROUTES: dict[tuple[str, str], Route] = {
    # -- public ---------------------------------------------------------------------------------
    ("GET", "/openapi.json"): public(_openapi),
    ("GET", "/healthz"): public(_healthz),
    ("GET", "/readyz"): public(_readyz),
    ("GET", "/metrics"): public(_metrics),
    ("POST", "/webhooks/stripe"): public(_stripe),
    ("POST", "/v1/signup"): public(_signup_api),
    ("POST", "/v1/signup/verify"): public(_verify_api),
    ("GET", "/"): public(_public_page("/")),
    ("GET", "/docs"): public(_public_page("/docs")),
    ("GET", "/privacy"): public(_public_page("/privacy")),
    ("GET", "/terms"): public(_public_page("/terms")),
    ("GET", "/signup"): public(_public_page("/signup")),
    ("GET", "/signup/verify"): public(_public_page("/signup/verify?token=nope", 400)),
    ("GET", "/login"): public(_public_page("/login")),
    ("GET", "/password/forgot"): public(_public_page("/password/forgot")),
    ("GET", "/password/reset"): public(_public_page("/password/reset?token=nope", 400)),
    ("POST", "/signup"): public(_public_form("/signup", {"email": "not an address"}, 422)),
    ("POST", "/signup/verify"): public(_public_form("/signup/verify", {"token": "nope"}, 400)),
    ("POST", "/login"): public(
        _public_form("/login", {"email": "nobody@example.com", "password": "x" * 12}, 400)
    ),
    ("POST", "/logout"): public(_public_form("/logout", {}, 303)),
    ("POST", "/password/forgot"): public(
        _public_form("/password/forgot", {"email": "nobody@example.com"}, 200)
    ),
    ("POST", "/password/reset"): public(
        _public_form("/password/reset", {"token": "nope", "new_password": NEW_PASSWORD}, 400)
    ),
    ("MOUNT", "/static/{path}"): public(_static),
    # -- the API: an API key ---------------------------------------------------------------------
    ("GET", "/v1/models"): api(),
    ("POST", "/v1/alt-text"): api(send=lambda a, o: {"json": {"image": PNG_B64}}),
    ("POST", "/v1/alt-text/batch"): api(
        send=lambda a, o: {"json": {"items": [{"id": "one", "image": PNG_B64}]}}
    ),
    ("POST", "/v1/jobs"): api(
        send=lambda a, o: {"json": {"items": [{"image_url": "https://img.example/new.png"}]}}
    ),
    ("GET", "/v1/jobs"): api(lists=lambda o: {"starting_after": o.open_job_id}),
    ("GET", "/v1/jobs/{job_id}"): api(),
    ("GET", "/v1/jobs/{job_id}/results"): api(lists=lambda o: {"starting_after": o.item_id}),
    ("DELETE", "/v1/jobs/{job_id}"): api(),
    ("GET", "/v1/account"): api(),
    ("PATCH", "/v1/account"): api(send=lambda a, o: {"json": {"name": a.name}}),
    ("DELETE", "/v1/account"): api(
        send=lambda a, o: {"json": {"confirm": a.email}},
        cross=lambda a, o: {"json": {"confirm": o.email}},
        cross_status=422,
        destructive=True,
    ),
    ("GET", "/v1/keys"): api(),
    ("POST", "/v1/keys"): api(send=lambda a, o: {"json": {"name": "made by a test"}}),
    ("DELETE", "/v1/keys/{key_id}"): api(),
    ("GET", "/v1/usage"): api(),
    ("POST", "/v1/billing/checkout"): api(send=lambda a, o: {"json": {"amount_usd": 5}}),
    ("GET", "/v1/billing/transactions"): api(lists=lambda o: {"starting_after": o.entry_id}),
    ("GET", "/v1/account/export"): api(),
    ("POST", "/v1/account/email/confirm"): api(
        send=lambda a, o: {"json": {"token": "n" * 43}},
        cross=lambda a, o: {"json": {"token": o.email_token}},
        cross_status=400,
    ),
    ("POST", "/v1/account/restrict"): api(),
    ("DELETE", "/v1/account/restrict"): api(),
    ("GET", "/v1/webhooks/secret"): api(),
    ("POST", "/v1/webhooks/secret/rotate"): api(),
    ("GET", "/v1/webhooks/deliveries"): api(lists=lambda o: {"starting_after": o.attempt_id}),
    # -- the dashboard: a session ----------------------------------------------------------------
    ("GET", "/dashboard"): page(),
    ("GET", "/dashboard/keys"): page(lists=lambda o: {"revoke": o.spare_key_id}),
    ("POST", "/dashboard/keys"): page(send=form(name="made by a test")),
    ("POST", "/dashboard/keys/{key_id}/revoke"): page(send=form()),
    ("GET", "/dashboard/credits"): page(lists=lambda o: {"checkout": "success"}),
    ("POST", "/dashboard/credits/checkout"): page(send=form(amount_usd="5")),
    ("GET", "/dashboard/credits/receipts/{entry_id}"): page(),
    ("GET", "/dashboard/try"): page(),
    ("POST", "/dashboard/try"): page(
        send=lambda a, o: {
            "data": {"language": "en", "max_length": "125"},
            "files": {"image": ("a.png", PNG, "image/png")},
        }
    ),
    ("GET", "/dashboard/jobs"): page(
        lists=lambda o: {
            "cancel": o.open_job_id,
            "job": o.open_job_id,
            "status": "job_started",
            "after": o.done_job_id,
        }
    ),
    ("POST", "/dashboard/jobs"): page(
        send=form(image_urls="https://img.example/new.png", language="en")
    ),
    ("GET", "/dashboard/jobs/{job_id}/results.csv"): page(),
    ("GET", "/dashboard/jobs/{job_id}/results.json"): page(),
    ("POST", "/dashboard/jobs/{job_id}/cancel"): page(send=form()),
    ("POST", "/dashboard/jobs/webhook-secret/reveal"): page(send=form()),
    ("POST", "/dashboard/jobs/webhook-secret/rotate"): page(send=form()),
    ("GET", "/dashboard/account"): page(),
    ("POST", "/dashboard/account/profile"): page(
        send=lambda a, o: {"data": {"name": a.name, "email": a.email}}
    ),
    ("POST", "/dashboard/account/choices"): page(send=form()),
    ("POST", "/dashboard/account/password"): page(
        send=form(current_password=PASSWORD, new_password=NEW_PASSWORD), destructive=True
    ),
    ("POST", "/dashboard/account/export"): page(send=form()),
    ("POST", "/dashboard/account/restrict"): page(send=form(restrict="off")),
    ("POST", "/dashboard/account/delete"): page(
        send=lambda a, o: {"data": {"confirm": a.email}},
        cross=lambda a, o: {"data": {"confirm": o.email}},
        cross_status=422,
        destructive=True,
    ),
    ("GET", "/account/email/confirm"): page(send=lambda a, o: {"params": {"token": "n" * 43}}),
    ("POST", "/account/email/confirm"): page(
        send=form(token="n" * 43),
        cross=lambda a, o: {"data": {"token": o.email_token}},
        cross_status=400,
    ),
}


def operations(app: Any) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, as its router sees them; a mount is
    ("MOUNT", path). HEAD goes with GET."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # a FastAPI that flattens included routers into app.routes
        routes: Iterable[Any] = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    found: set[tuple[str, str]] = set()
    for route in routes:
        path = getattr(route, "path_format", None) or route.path
        methods = getattr(route, "methods", None) or {"MOUNT"}
        found |= {(m, path) for m in methods if m != "HEAD"}
    return sorted(found, key=lambda op: (op[1], op[0]))


_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def path_params(path: str) -> list[str]:
    return _PARAM.findall(path)


def classified(w: World, *kinds: Kind) -> list[tuple[str, str, Route]]:
    """The app's operations of these kinds (an unclassified one fails the first test)."""
    ops = [(m, p, ROUTES.get((m, p))) for m, p in operations(w.app)]
    return [(m, p, r) for m, p, r in ops if r is not None and r.kind in kinds]


def build(
    method: str, path: str, route: Route, actor: Party, owner: Party
) -> tuple[str, dict[str, Any]]:
    """The URL with ``owner``'s ids in the path, and ``actor``'s well-formed request."""
    url = path
    for name in path_params(path):
        url = url.replace("{" + name + "}", OWNED[name](owner))
    kwargs = route.send(actor, owner) if route.send else {}
    return url, kwargs


async def csrf(client: httpx.AsyncClient) -> str:
    r = await client.get("/dashboard")
    if r.status_code != 200:
        r = await client.get("/login")
    return csrf_of(r.text)


async def send(
    w: World,
    route: Route,
    method: str,
    url: str,
    kwargs: dict[str, Any],
    *,
    actor: Party | None,
    client: httpx.AsyncClient | None = None,
    key: str | None = None,
) -> httpx.Response:
    """A request as ``actor`` (None: anonymous): with its API key, or its browser's session
    and a CSRF token for a form."""
    kwargs = dict(kwargs)
    if route.kind == "api":
        client = client or w.api
        headers = dict(kwargs.pop("headers", None) or {})
        if actor is not None or key is not None:
            headers["Authorization"] = f"Bearer {key or actor.key}"  # type: ignore[union-attr]
        return await client.request(method, url, headers=headers, **kwargs)
    client = client or (actor.browser.client if actor else w.client())
    if method != "GET" and actor is not None:
        kwargs["data"] = {"csrf_token": await csrf(client), **(kwargs.get("data") or {})}
    return await client.request(method, url, **kwargs)


def assert_unauthorized(r: httpx.Response, what: str) -> None:
    assert r.status_code == 401, (what, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json"), what
    assert r.json()["code"] == "unauthorized", what


def assert_login_redirect(r: httpx.Response, url: str, what: str) -> None:
    assert r.status_code == 303, (what, r.status_code, r.text[:300])
    assert r.headers["location"] == login_url(url), (what, r.headers["location"])


def assert_holds_nothing_of(r: httpx.Response, other: Party, what: str) -> None:
    """Nothing of ``other``'s in the answer, except what the request itself carried (a 404
    may name the id that was asked for, a page the cursor it was given)."""
    answer = r.text + json.dumps(dict(r.headers))
    try:
        body = r.request.content.decode("utf-8", "replace")
    except httpx.RequestNotRead:  # a multipart upload: only the URL is searched
        body = ""
    sent = str(r.request.url) + body
    leaked = [
        name for name, value in other.needles().items() if value in answer and value not in sent
    ]
    assert leaked == [], f"{what} shows the other account's {leaked}"


async def snapshot(w: World, account_id: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row about the account: its own, and every row of a table with an account_id."""
    await w.app.state.services.last_used.flush(w.web.sessions)  # pending key-use times
    rows: dict[str, list[tuple[str, ...]]] = {}
    async with w.web.sessions() as session:
        for table in metadata().sorted_tables:
            if "account_id" in table.c:
                condition = table.c.account_id == account_id
            elif table.name == "accounts":
                condition = table.c.id == account_id
            else:
                continue
            found = (await session.execute(select(table).where(condition))).all()
            rows[table.name] = sorted(tuple(str(v) for v in row) for row in found)
    return rows


# -- the tests ------------------------------------------------------------------------------------


async def test_every_route_is_classified(service: Any) -> None:
    served = operations(service.app)
    missing = [op for op in served if op not in ROUTES]
    assert missing == [], (
        f"routes nobody classified: {missing}. Add each to ROUTES in {__name__} as public (with "
        "its own check), api or page, after deciding who may call it."
    )
    gone = sorted(set(ROUTES) - set(served))
    assert gone == [], f"ROUTES lists routes the app no longer serves: {gone}"
    for (method, path), route in ROUTES.items():
        assert (route.kind == "public") == (route.check is not None), (method, path)
        for name in path_params(path):
            if route.kind != "public":
                assert name in OWNED, (
                    f"{method} {path} takes {{{name}}}: add to OWNED how to make another "
                    "account's such object, so that the cross-account test covers it"
                )


async def test_anonymous_callers_are_refused_and_public_routes_pass_their_checks(
    world: World,
) -> None:
    w = world
    cookie_jar = w.a.browser.client  # A's signed-in browser: a session is no API credential
    for method, path, route in classified(w, "api", "page", "public"):
        what = f"{method} {path}"
        if route.kind == "public":
            assert route.check is not None
            await route.check(w)
            continue
        url, kwargs = build(method, path, route, w.a, w.a)
        r = await send(w, route, method, url, kwargs, actor=None)
        if route.kind == "api":
            assert_unauthorized(r, what)
            for headers in ({"Authorization": "Bearer"}, {"X-API-Key": ""}):
                r = await w.api.request(method, url, headers=headers, **kwargs)
                assert_unauthorized(r, f"{what} {headers}")
            with_cookie = await cookie_jar.request(method, url, **kwargs)
            assert_unauthorized(with_cookie, f"{what} with a dashboard session")
        else:
            query = kwargs.get("params")
            target = url + ("?" + str(httpx.QueryParams(query)) if query else "")
            assert_login_redirect(r, target, what)
    # Nothing anonymous changed anything.
    assert (await w.api.get("/v1/account", headers=w.a.headers)).json()["name"] == w.a.name


async def test_one_account_cannot_reach_another_by_id(world: World) -> None:
    """A with B's ids: 404 (never 403, never B's data), and B's rows are as they were; A's own
    ids work on the same routes (or the 404 would prove nothing)."""
    w, a, b = world, world.a, world.b
    before = await snapshot(w, b.id)
    probed = 0
    for method, path, route in classified(w, "api", "page"):
        what = f"{method} {path}"
        if path_params(path):
            url, kwargs = build(method, path, route, a, b)
            r = await send(w, route, method, url, kwargs, actor=a)
            assert r.status_code == 404, (what, r.status_code, r.text[:300])
            if route.kind == "api":
                assert r.json()["code"] == "not_found", what
            assert_holds_nothing_of(r, b, what)
            probed += 1
        if route.cross is not None:
            url, _ = build(method, path, route, a, a)
            r = await send(w, route, method, url, route.cross(a, b), actor=a)
            assert r.status_code == route.cross_status, (what, r.status_code, r.text[:300])
            assert_holds_nothing_of(r, b, what)
            probed += 1
    assert probed >= 10
    assert await snapshot(w, b.id) == before, "A's requests changed B's rows"
    # B's own things still work for B: the key A tried to revoke, the token A tried to use.
    spare = await w.api.get("/v1/keys", headers=b.headers)
    assert all(k["revoked_at"] is None for k in spare.json()["data"])
    confirmed = await w.api.post(
        "/v1/account/email/confirm", headers=b.headers, json={"token": b.email_token}
    )
    assert confirmed.status_code == 200, confirmed.text
    # The same routes with A's own ids: not 404.
    for method, path, route in classified(w, "api", "page"):
        if path_params(path):
            url, kwargs = build(method, path, route, a, a)
            r = await send(w, route, method, url, kwargs, actor=a)
            assert r.status_code < 400, (f"{method} {path} own id", r.status_code, r.text[:300])


async def test_lists_pages_and_exports_hold_nothing_of_another_account(world: World) -> None:
    """Every GET A may make (lists, pages, downloads, with cursors and confirmations naming B's
    ids), and the forms that answer with the account's data, hold none of B's ids, address or
    name."""
    w, a, b = world, world.a, world.b
    read = 0
    for method, path, route in classified(w, "api", "page"):
        reveals = path in ("/dashboard/account/export", "/dashboard/jobs/webhook-secret/reveal")
        if method != "GET" and not reveals:
            continue
        url, kwargs = build(method, path, route, a, a)
        for params in ({}, route.lists(b) if route.lists else {}):
            merged = {**kwargs, "params": {**(kwargs.get("params") or {}), **params}}
            r = await send(w, route, method, url, merged, actor=a)
            what = f"{method} {path} {params}"
            assert r.status_code < 500, (what, r.status_code)
            assert r.status_code not in (401, 403), (what, r.status_code)
            # A cursor may come back in a link or a form (echo); B's job itself must not.
            assert_holds_nothing_of(r, b, what)
            read += 1
    assert read >= 20
    # The control: B's own answers do hold B's data, so the search above can find it.
    export = await w.api.get("/v1/account/export", headers=b.headers)
    assert all(v in export.text for k, v in b.needles().items() if "secret" not in k), [
        k for k, v in b.needles().items() if v not in export.text
    ]


async def test_every_request_of_one_account_leaves_the_others_rows_alone(world: World) -> None:
    """A's well-formed request on every route (its password change and its erasure last)
    leaves every row of B's as it was; afterwards A's key and session fail everywhere."""
    w, a, b = world, world.a, world.b
    before = await snapshot(w, b.id)
    routes = classified(w, "api", "page")
    last = [("POST", "/dashboard/account/password"), ("DELETE", "/v1/account")]
    ordered = [r for r in routes if not r[2].destructive] + [
        r for r in routes if (r[0], r[1]) in last
    ]
    ordered.sort(key=lambda r: last.index((r[0], r[1])) if (r[0], r[1]) in last else -1)
    for method, path, route in ordered:
        url, kwargs = build(method, path, route, a, a)
        r = await send(w, route, method, url, kwargs, actor=a)
        what = f"{method} {path}"
        assert r.status_code not in (401, 404, 500), (what, r.status_code, r.text[:300])
        assert "did not come from this site" not in r.text, f"{what}: CSRF refused"
        if route.kind == "page":
            assert not r.headers.get("location", "").startswith("/login"), what
        assert_holds_nothing_of(r, b, what)
    assert await snapshot(w, b.id) == before, "A's requests changed B's rows"
    # A erased itself: its keys and sessions fail everywhere at once; B goes on.
    await _fails_everywhere(w, a.key, a.browser.client)
    assert (await w.api.get("/v1/account", headers=b.headers)).status_code == 200
    assert (await b.browser.get("/dashboard")).status_code == 200


async def _fails_everywhere(
    w: World, key: str | None, browser: httpx.AsyncClient | None, address: str = "192.0.2.10"
) -> None:
    """``key`` gets 401 on every API route, ``browser`` the login page from every page."""
    api_client = w.client(address, https=False)
    for method, path, route in classified(w, "api", "page"):
        url, kwargs = build(method, path, route, w.a, w.a)
        what = f"{method} {path}"
        if route.kind == "api" and key is not None:
            r = await send(w, route, method, url, kwargs, actor=None, client=api_client, key=key)
            assert_unauthorized(r, what)
        elif route.kind == "page" and browser is not None:
            r = await browser.request(method, url, **kwargs)
            query = kwargs.get("params")
            target = url + ("?" + str(httpx.QueryParams(query)) if query else "")
            assert_login_redirect(r, target, what)


async def test_a_revoked_key_fails_everywhere_at_once(world: World) -> None:
    w, a = world, world.a
    # In use, so the key cache holds it (for up to ALTTEXT_KEY_CACHE_TTL_S = 60 s here).
    for _ in range(2):
        assert (await w.api.get("/v1/account", headers=a.headers)).status_code == 200
    revoked = await w.api.delete(f"/v1/keys/{a.key_id}", headers=a.headers)
    assert revoked.status_code == 204, revoked.text
    await _fails_everywhere(w, a.key, None, address="192.0.2.11")
    # Revoked in the dashboard: the same, at once.
    page = await a.browser.form("/dashboard/keys", "/dashboard/keys", {"name": "next"})
    secret = re.search(r'id="new-key-secret">(at_live_\w+)<', page.text)
    assert secret is not None, page.text[:500]
    fresh = {"Authorization": f"Bearer {secret.group(1)}"}
    keys = (await w.api.get("/v1/keys", headers=fresh)).json()["data"]
    fresh_id = next(k["id"] for k in keys if k["name"] == "next")
    assert (await w.api.get("/v1/usage", headers=fresh)).status_code == 200
    r = await a.browser.client.post(
        f"/dashboard/keys/{fresh_id}/revoke", data={"csrf_token": await csrf(a.browser.client)}
    )
    assert r.status_code == 303
    await _fails_everywhere(w, secret.group(1), None, address="192.0.2.12")
    # Revocation is per key: the account's other key still works.
    async with transaction(w.web.sessions) as session:
        _, other = await create_key(session, a.id, name="still fine")
    still = await w.api.get("/v1/account", headers={"Authorization": f"Bearer {other}"})
    assert still.status_code == 200


async def test_ended_sessions_fail_on_every_page_at_once(world: World) -> None:
    w, a = world, world.a
    first, second, third = a.browser, a.browser.browser(), a.browser.browser()
    for browser in (second, third):
        assert (await browser.log_in(a.email)).status_code == 303
    first_cookie, second_cookie, third_cookie = (
        b.client.cookies.get(SESSION_COOKIE) for b in (first, second, third)
    )
    assert len({first_cookie, second_cookie, third_cookie}) == 3

    def replay(secret: str | None) -> httpx.AsyncClient:
        client = w.client()
        client.cookies.set(SESSION_COOKIE, secret or "", domain="testserver.local", path="/")
        return client

    # Logout ends that session: its cookie, replayed, opens no page.
    out = await first.client.post("/logout", data={"csrf_token": await csrf(first.client)})
    assert out.status_code == 303
    await _fails_everywhere(w, None, replay(first_cookie))
    assert (await second.get("/dashboard")).status_code == 200

    # A password change ends every other session and replaces the current one.
    changed = await second.client.post(
        "/dashboard/account/password",
        data={
            "csrf_token": await csrf(second.client),
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303, changed.text
    await _fails_everywhere(w, None, replay(third_cookie))
    await _fails_everywhere(w, None, replay(second_cookie))
    assert (await second.get("/dashboard")).status_code == 200  # its new cookie


async def test_guessing_is_throttled(world: World) -> None:
    w, a = world, world.a
    # Logins: at most 5 failures per address in 15 minutes, then "try again" even for the
    # right password (checked in tests/web/test_auth.py in detail).
    browser = w.client("198.51.100.20")
    token = csrf_of((await browser.get("/login")).text)
    for _ in range(5):
        r = await browser.post(
            "/login", data={"csrf_token": token, "email": a.email, "password": "wrong" * 3}
        )
        assert r.status_code == 400
    r = await browser.post(
        "/login", data={"csrf_token": token, "email": a.email, "password": PASSWORD}
    )
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0

    # Password reset requests: 5 an hour per client address, 3 mails an hour per address.
    browser = w.client("198.51.100.21")
    token = csrf_of((await browser.get("/password/forgot")).text)
    for _ in range(5):
        r = await browser.post("/password/forgot", data={"csrf_token": token, "email": a.email})
        assert r.status_code == 200
    r = await browser.post("/password/forgot", data={"csrf_token": token, "email": a.email})
    assert r.status_code == 429
    assert len([m for m in w.web.mail.to(a.email) if "/password/reset" in m.body]) <= 3

    # Sign-up tokens over the API: 30 an hour per client address.
    guesser = w.client("198.51.100.22", https=False)
    for _ in range(30):
        r = await guesser.post("/v1/signup/verify", json={"token": secrets.token_urlsafe(32)})
        assert r.status_code == 400
    r = await guesser.post("/v1/signup/verify", json={"token": secrets.token_urlsafe(32)})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0

    # API keys: malformed and unknown keys from one address, then 429 for every key it sends
    # (a valid one too: a guess cannot be told right from wrong), without a lookup.
    guesser = w.client("198.51.100.23", https=False)
    guesses = [generate_key() if n % 2 else "at_live_" + "x" * n for n in range(1, 200)]
    statuses = []
    for guess in guesses[: deps.FAILED_AUTH_LIMIT]:
        r = await guesser.get("/v1/account", headers={"Authorization": f"Bearer {guess}"})
        statuses.append(r.status_code)
    assert set(statuses) == {401}
    r = await guesser.get("/v1/account", headers={"X-API-Key": guesses[-1]})
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    assert (await guesser.get("/v1/account", headers=a.headers)).status_code == 429
    # No key at all is no guess: still the plain 401. Another address is not held up.
    assert (await guesser.get("/v1/account")).status_code == 401
    other = w.client("198.51.100.24", https=False)
    assert (await other.get("/v1/account", headers=a.headers)).status_code == 200
    # IPv6: one /64 is one client.
    for n, host in enumerate(("2001:db8:1:2::1", "2001:db8:1:2::2")):
        v6 = w.client(host, https=False)
        for guess in guesses[n * 40 : n * 40 + 40]:
            await v6.get("/v1/account", headers={"Authorization": f"Bearer {guess}"})
    assert (await v6.get("/v1/account", headers=a.headers)).status_code == 429
