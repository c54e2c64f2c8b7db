"""Sign-up, address confirmation, log in and out, and the password reset, as pages.

No answer says whether an address is registered: sign-up and "forgot password" answer the same
page either way (their mail goes out after the response, so neither does the time taken), and a
failed login costs one password hash whether or not the account exists.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from alttext.accounts import logins, passwords
from alttext.accounts import sessions as web_sessions
from alttext.accounts.service import normalise_email
from alttext.db import transaction
from alttext.errors import AppError, InvalidRequest
from alttext.http.deps import ServicesDep
from alttext.mail import Mail
from alttext.privacy import credentials, signup
from alttext.process import Services
from alttext.web import throttle
from alttext.web.forms import read_form
from alttext.web.session import (
    SESSION_COOKIE,
    OptionalUser,
    clear_session_cookie,
    local_path,
    rotate_csrf_cookie,
    set_session_cookie,
)
from alttext.web.templating import render

log = logging.getLogger("alttext.web")
router = APIRouter(include_in_schema=False)

CHECKBOXES = {
    "confirm_age_18": "Tick this box to confirm that you are 18 or older.",
    "accept_terms": "Tick this box to accept the terms; we cannot open an account without it.",
    "accept_privacy": "Tick this box to accept the privacy policy; we cannot open an account "
    "without it.",
}


def send_later(services: Services, mail: Mail | None) -> BackgroundTask | None:
    if mail is None:
        return None

    async def send() -> None:
        try:
            await services.mailer.send(mail)
        except AppError:
            log.warning("mail could not be sent", extra={"kind": "dashboard"})

    return BackgroundTask(send)


def _field_error(exc: InvalidRequest) -> str:
    for error in exc.errors or []:
        if error.get("message"):
            return str(error["message"])
    return exc.detail


async def start_signed_in(
    request: Request, services: Services, account_id: str, response: Response
) -> None:
    """A fresh session for ``account_id``: a session id presented before is ended (no
    fixation), both cookies are replaced."""
    async with transaction(services.sessions) as session:
        await web_sessions.end_by_secret(session, request.cookies.get(SESSION_COOKIE))
        _, secret = await web_sessions.start(session, account_id)
    set_session_cookie(response, services, secret)
    rotate_csrf_cookie(request, response, services)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -- sign-up -----------------------------------------------------------------------------------


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    return render(request, services, "signup.html", {"errors": {}, "values": {}})


@router.post("/signup", response_class=HTMLResponse)
async def signup_submit(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    form = await read_form(request, services)
    email, password = form.get("email").strip(), form.get("password")
    values: dict[str, Any] = {
        "email": email,
        "product_email": form.checked("product_email"),
        **{name: form.checked(name) for name in CHECKBOXES},
    }
    errors: dict[str, str] = {}
    try:
        email = normalise_email(email)
    except InvalidRequest:
        errors["email"] = "Enter an e-mail address such as name@example.com."
    try:
        passwords.check_new_password(password, email=email)
    except InvalidRequest as exc:
        errors["password"] = _field_error(exc)
    for name, message in CHECKBOXES.items():
        if not form.checked(name):
            errors[name] = message
    if errors:
        context = {"errors": errors, "values": values}
        return render(request, services, "signup.html", context, status_code=422)
    wait = await throttle.minutes_to_wait(
        services, "signup", throttle.client_ip(request), throttle.SIGNUPS_PER_HOUR
    )
    if wait is not None:
        throttled: dict[str, Any] = {"errors": {}, "values": values, "throttled": wait}
        return render(request, services, "signup.html", throttled, status_code=429)
    mail = await signup.prepare_sign_up(
        services.sessions,
        services.settings,
        signup.SignupRequest(
            email=email,
            name=None,
            product_email=bool(values["product_email"]),
            password_hash=await passwords.hash_password(password),
        ),
    )
    response = render(request, services, "signup_sent.html", {"email": email})
    response.background = send_later(services, mail)
    return response


@router.get("/signup/verify", response_class=HTMLResponse)
async def verify_page(
    request: Request, services: ServicesDep, user: OptionalUser, token: str = ""
) -> Response:
    found = await signup.pending(services.sessions, token)
    if found is None:
        return render(request, services, "verify_invalid.html", status_code=400)
    context = {"token": token, "needs_password": found.password_hash is not None, "errors": {}}
    return render(request, services, "verify.html", context)


@router.post("/signup/verify", response_class=HTMLResponse)
async def verify_submit(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    form = await read_form(request, services)
    token = form.get("token")
    found = await signup.pending(services.sessions, token)
    if found is None:
        return render(request, services, "verify_invalid.html", status_code=400)
    context: dict[str, Any] = {"token": token, "needs_password": found.password_hash is not None}
    if found.password_hash is not None:
        result = await logins.check_password(
            services.sessions,
            services.settings.secret_key,
            email=found.email,
            stored=found.password_hash,
            password=form.get("password"),
            client_ip=throttle.client_ip(request),
        )
        if result.retry_after is not None:
            context |= {"errors": {}, "throttled": result.retry_minutes}
            return render(request, services, "verify.html", context, status_code=429)
        if not result.ok:
            message = (
                "That is not the password chosen with this link. If you signed up more than "
                "once, open the link of the latest mail, or sign up again."
            )
            context |= {"errors": {"password": message}}
            return render(request, services, "verify.html", context, status_code=400)
    try:
        account_id = await signup.verify_web(
            services.sessions, services.settings, token, password_hash=found.password_hash
        )
    except InvalidRequest:
        return render(request, services, "verify_invalid.html", status_code=400)
    response = _redirect("/dashboard?status=welcome")
    await start_signed_in(request, services, account_id, response)
    return response


# -- log in and out ----------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_page(
    request: Request, services: ServicesDep, user: OptionalUser, next: str = ""
) -> Response:
    target = local_path(next)
    if user is not None:
        return _redirect(target)
    context = {"errors": {}, "values": {}, "next": target}
    return render(request, services, "login.html", context)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    form = await read_form(request, services)
    email, target = form.get("email").strip(), local_path(form.get("next"))
    result = await logins.log_in(
        services.sessions,
        services.settings.secret_key,
        email=email,
        password=form.get("password"),
        client_ip=throttle.client_ip(request),
    )
    context: dict[str, Any] = {"values": {"email": email}, "next": target, "errors": {}}
    if result.retry_after is not None:
        context["throttled"] = result.retry_minutes
        headers = {"Retry-After": str(int(result.retry_after.total_seconds()) + 1)}
        return render(request, services, "login.html", context, status_code=429, headers=headers)
    if result.account_id is None:
        context["failed"] = True
        return render(request, services, "login.html", context, status_code=400)
    response = _redirect(target)
    await start_signed_in(request, services, result.account_id, response)
    return response


@router.post("/logout")
async def logout(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    await read_form(request, services)
    async with transaction(services.sessions) as session:
        await web_sessions.end_by_secret(session, request.cookies.get(SESSION_COOKIE))
    response = _redirect("/login?status=logged_out")
    clear_session_cookie(response, services)
    rotate_csrf_cookie(request, response, services)
    return response


# -- password reset ----------------------------------------------------------------------------


@router.get("/password/forgot", response_class=HTMLResponse)
async def forgot_page(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    return render(request, services, "forgot.html", {"errors": {}, "values": {}})


@router.post("/password/forgot", response_class=HTMLResponse)
async def forgot_submit(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    form = await read_form(request, services)
    email = form.get("email").strip()
    try:
        email = normalise_email(email)
    except InvalidRequest:
        context = {
            "errors": {"email": "Enter an e-mail address such as name@example.com."},
            "values": {"email": email},
        }
        return render(request, services, "forgot.html", context, status_code=422)
    wait = await throttle.minutes_to_wait(
        services, "reset-client", throttle.client_ip(request), throttle.RESETS_PER_HOUR_PER_CLIENT
    )
    if wait is not None:
        throttled: dict[str, Any] = {"errors": {}, "values": {"email": email}, "throttled": wait}
        return render(request, services, "forgot.html", throttled, status_code=429)
    # Per address: over the limit, no mail, and the same answer (it names no account).
    quiet = await throttle.minutes_to_wait(
        services, "reset-address", email, throttle.RESETS_PER_HOUR_PER_ADDRESS
    )
    mail = (
        None
        if quiet
        else await credentials.request_reset(services.sessions, services.settings, email)
    )
    response = render(request, services, "forgot_sent.html", {"email": email})
    response.background = send_later(services, mail)
    return response


@router.get("/password/reset", response_class=HTMLResponse)
async def reset_page(
    request: Request, services: ServicesDep, user: OptionalUser, token: str = ""
) -> Response:
    if await credentials.reset_email(services.sessions, token) is None:
        return render(request, services, "reset_invalid.html", status_code=400)
    return render(request, services, "reset.html", {"token": token, "errors": {}})


@router.post("/password/reset", response_class=HTMLResponse)
async def reset_submit(request: Request, services: ServicesDep, user: OptionalUser) -> Response:
    form = await read_form(request, services)
    token, password = form.get("token"), form.get("new_password")
    email = await credentials.reset_email(services.sessions, token)
    if email is None:
        return render(request, services, "reset_invalid.html", status_code=400)
    try:
        passwords.check_new_password(password, email=email, field="new_password")
    except InvalidRequest as exc:
        context = {"token": token, "errors": {"new_password": _field_error(exc)}}
        return render(request, services, "reset.html", context, status_code=422)
    try:
        done = await credentials.reset_password(
            services.sessions, services.settings, token, await passwords.hash_password(password)
        )
    except InvalidRequest:
        return render(request, services, "reset_invalid.html", status_code=400)
    response = _redirect("/dashboard?status=password_set")
    set_session_cookie(response, services, done.secret)
    rotate_csrf_cookie(request, response, services)
    response.background = send_later(services, done.mail)
    return response
