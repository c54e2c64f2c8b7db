"""Who is signed in, and the forms' CSRF tokens: the two cookies of the dashboard.

- ``alttext_session``: 32 random bytes; the server keeps only their hash (accounts/sessions.py).
- ``alttext_csrf``: 32 random bytes. Every form carries ``csrf_token`` = HMAC(secret key,
  cookie value + the session's id), so a token is bound to this browser and this sign-in: a
  page of another site can neither read it nor make one. A post without a valid token is
  refused with 403 before anything else runs.

Both cookies are HttpOnly and ``SameSite=Lax``, ``Secure`` outside development; both are
replaced at login, so a session id planted before login is worthless after it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.responses import Response

from alttext.accounts import sessions as web_sessions
from alttext.accounts.models import Account
from alttext.accounts.service import Principal
from alttext.db import transaction
from alttext.errors import Forbidden
from alttext.http.deps import ServicesDep
from alttext.process import Services

SESSION_COOKIE = "alttext_session"
CSRF_COOKIE = "alttext_csrf"
CSRF_FIELD = "csrf_token"
DASHBOARD_KEY_ID = "dashboard"  # the key_id of usage from the dashboard's Try it page
_COOKIE_AGE = int(web_sessions.LIFETIME.total_seconds())


class LoginRequired(Exception):
    """An anonymous visit to a dashboard page: answered with a redirect to /login?next=…"""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class WebUser:
    session_id: str
    account: Account

    @property
    def principal(self) -> Principal:
        """The account as the generation use case sees a caller (Try it)."""
        account = self.account
        return Principal(
            account_id=account.id,
            key_id=DASHBOARD_KEY_ID,
            account_status=account.status,
            rate_limit_per_minute=account.rate_limit_per_minute,
            history_opt_in=account.history_opt_in,
            restricted=account.restricted_at is not None,
        )


def secure_cookies(services: Services) -> bool:
    return services.settings.env != "development"


def _options(services: Services) -> dict[str, Any]:
    return {
        "max_age": _COOKIE_AGE,
        "path": "/",
        "httponly": True,
        "samesite": "lax",
        "secure": secure_cookies(services),
    }


def set_session_cookie(response: Response, services: Services, secret: str) -> None:
    response.set_cookie(SESSION_COOKIE, secret, **_options(services))


def _set_csrf_cookie(response: Response, services: Services, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, **_options(services))


def clear_session_cookie(response: Response, services: Services) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(services)
    )


def rotate_csrf_cookie(request: Request, response: Response, services: Services) -> None:
    """A new CSRF value (at login and logout): tokens of earlier pages stop working."""
    value = secrets.token_urlsafe(32)
    request.state.csrf_cookie = value
    _set_csrf_cookie(response, services, value)


def _csrf_value(request: Request) -> str:
    """This browser's CSRF value: its cookie, or a new one that the page will set."""
    value: str | None = getattr(request.state, "csrf_cookie", None)
    if value is None:
        value = request.cookies.get(CSRF_COOKIE)
        if not value or len(value) > 100:
            value = secrets.token_urlsafe(32)
            request.state.csrf_new = True
        request.state.csrf_cookie = value
    return value


def _bound_session(request: Request) -> str:
    user: WebUser | None = getattr(request.state, "web_user", None)
    return user.session_id if user else "-"


def csrf_token(request: Request, services: Services, session_id: str | None = None) -> str:
    message = f"{_csrf_value(request)}|{session_id or _bound_session(request)}".encode()
    key = hashlib.sha256(f"alttext csrf|{services.settings.secret_key}".encode()).digest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def set_new_csrf_cookie(request: Request, response: Response, services: Services) -> None:
    """Set the CSRF cookie if this page minted the value its forms carry."""
    if getattr(request.state, "csrf_new", False):
        _set_csrf_cookie(response, services, request.state.csrf_cookie)
        request.state.csrf_new = False


def check_csrf(request: Request, services: Services, sent: str | None) -> None:
    """403 unless ``sent`` is this browser's token for this sign-in."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not sent:
        raise Forbidden(
            "This form has expired or did not come from this site. Go back, reload the page "
            "and send it again."
        )
    expected = csrf_token(request, services)
    if not hmac.compare_digest(expected, sent):
        raise Forbidden(
            "This form has expired or did not come from this site. Go back, reload the page "
            "and send it again."
        )


def local_path(raw: str | None, default: str = "/dashboard") -> str:
    """``raw`` if it is a path on this site (for ``next=``), else ``default``."""
    if not raw or len(raw) > 2000 or not raw.startswith("/") or raw.startswith("//"):
        return default
    if "\\" in raw or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return default
    return raw


def login_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='/')}"


async def optional_user(request: Request, services: ServicesDep) -> WebUser | None:
    """The signed-in user, or None; remembered on the request for the templates."""
    if hasattr(request.state, "web_user"):
        cached: WebUser | None = request.state.web_user
        return cached
    secret = request.cookies.get(SESSION_COOKIE)
    user = None
    if secret:
        async with services.sessions() as session:
            found = await web_sessions.find(session, secret)
        if found is not None:
            web_session, account = found
            if web_sessions.needs_touch(web_session):
                async with transaction(services.sessions) as session:
                    await web_sessions.touch(session, web_session.id)
            user = WebUser(session_id=web_session.id, account=account)
    request.state.web_user = user
    return user


async def require_user(
    request: Request, user: Annotated[WebUser | None, Depends(optional_user)]
) -> WebUser:
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(local_path(path))
    return user


OptionalUser = Annotated[WebUser | None, Depends(optional_user)]
User = Annotated[WebUser, Depends(require_user)]
