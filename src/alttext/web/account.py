"""``/dashboard/account``: every right of the API as a form (rectify, object, export, restrict,
erase), the password, and ``/account/email/confirm`` (the link mailed to a new address)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alttext.accounts import logins, passwords
from alttext.accounts.service import normalise_email
from alttext.db import transaction
from alttext.errors import AppError, InvalidRequest
from alttext.http.deps import ServicesDep
from alttext.privacy import credentials, erasure, rights
from alttext.privacy.audit import record
from alttext.privacy.export import export_account
from alttext.process import Services
from alttext.web import throttle
from alttext.web.auth import send_later
from alttext.web.forms import read_form
from alttext.web.session import (
    User,
    WebUser,
    clear_session_cookie,
    rotate_csrf_cookie,
    set_session_cookie,
)
from alttext.web.templating import render

router = APIRouter(include_in_schema=False)
MAX_NAME = 200


async def _page(
    request: Request,
    services: Services,
    user: WebUser,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    failure: str | None = None,
    status_code: int = 200,
) -> Response:
    account = user.account
    context = {
        "active": "account",
        "account": account,
        "errors": errors or {},
        "values": values or {},
        "failure": failure,
        "has_password": account.password_hash is not None,
    }
    return render(request, services, "account.html", context, status_code=status_code)


def _done(status: str) -> RedirectResponse:
    return RedirectResponse(f"/dashboard/account?status={status}", status_code=303)


@router.get("/dashboard/account", response_class=HTMLResponse)
async def account_page(request: Request, services: ServicesDep, user: User) -> Response:
    return await _page(request, services, user)


@router.post("/dashboard/account/profile")
async def save_profile(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    name, email = form.get("name").strip(), form.get("email").strip()
    values = {"name": name, "email": email}
    errors = {}
    if len(name) > MAX_NAME:
        errors["name"] = f"Use at most {MAX_NAME} characters for your name."
    try:
        email = normalise_email(email)
    except InvalidRequest:
        errors["email"] = "Enter an e-mail address such as name@example.com."
    if errors:
        return await _page(request, services, user, errors=errors, values=values, status_code=422)
    changes = rights.AccountChanges(
        name=name or None,
        name_given=(name or None) != user.account.name,
        email=email if email != user.account.email else None,
    )
    result = await rights.update_account(
        services.sessions,
        services.settings,
        services.mailer,
        user.account.id,
        changes,
        actor="account",
        source="dashboard",
    )
    return _done("email_pending" if result.email_change_pending else "saved")


@router.post("/dashboard/account/choices")
async def save_choices(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    history, product = form.checked("history"), form.checked("product_email")
    account = user.account
    changes = rights.AccountChanges(
        history=history if history != account.history_opt_in else None,
        product_email=product if product != account.product_email_opt_in else None,
    )
    await rights.update_account(
        services.sessions,
        services.settings,
        services.mailer,
        account.id,
        changes,
        actor="account",
        source="dashboard",
    )
    return _done("saved")


@router.post("/dashboard/account/password")
async def change_password(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    account = user.account
    new = form.get("new_password")
    if account.password_hash is not None:
        check = await logins.check_password(
            services.sessions,
            services.settings.secret_key,
            email=account.email,
            stored=account.password_hash,
            password=form.get("current_password"),
            client_ip=throttle.client_ip(request),
        )
        if check.retry_after is not None:
            message = (
                f"Too many wrong passwords. Try again in {check.retry_minutes} minutes, or "
                "log out and reset your password by e-mail."
            )
            errors = {"current_password": message}
            return await _page(request, services, user, errors=errors, status_code=429)
        if not check.ok:
            errors = {"current_password": "That is not your current password; try again."}
            return await _page(request, services, user, errors=errors, status_code=400)
    try:
        passwords.check_new_password(new, email=account.email, field="new_password")
    except InvalidRequest as exc:
        message = next((str(e["message"]) for e in exc.errors or []), exc.detail)
        return await _page(
            request, services, user, errors={"new_password": message}, status_code=422
        )
    done = await credentials.change_password(
        services.sessions, services.settings, account.id, await passwords.hash_password(new)
    )
    response = _done("password_set")
    set_session_cookie(response, services, done.secret)
    rotate_csrf_cookie(request, response, services)
    response.background = send_later(services, done.mail)
    return response


@router.post("/dashboard/account/export")
async def download_data(request: Request, services: ServicesDep, user: User) -> Response:
    """The same document as GET /v1/account/export, as a file download."""
    await read_form(request, services)
    async with transaction(services.sessions) as session:
        await record(session, user.account.id, "export", actor="account", via="dashboard")
        document = await export_account(session, user.account.id)
    filename = f"alttext-export-{user.account.id}.json"
    return Response(
        content=json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/dashboard/account/restrict")
async def restrict(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    on = form.get("restrict") == "on"
    await rights.set_restricted(services.sessions, user.account.id, on, actor="account")
    return _done("restricted" if on else "lifted")


@router.post("/dashboard/account/delete")
async def delete_account(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    confirm = form.get("confirm").strip()
    if confirm.lower() != user.account.email.lower():
        message = "Type your e-mail address exactly as shown above to confirm; nothing was deleted."
        return await _page(request, services, user, errors={"confirm": message}, status_code=422)
    try:
        await erasure.erase_account(
            services.sessions,
            services.settings,
            user.account.id,
            confirm=confirm,
            actor="account",
            cache=services.result_cache,
        )
    except AppError as exc:
        return await _page(request, services, user, failure=exc.detail, status_code=exc.http_status)
    # The sessions went with the account; the cookie goes too.
    response = RedirectResponse("/?status=erased", status_code=303)
    clear_session_cookie(response, services)
    rotate_csrf_cookie(request, response, services)
    return response


# -- the link mailed to a new address ----------------------------------------------------------


@router.get("/account/email/confirm", response_class=HTMLResponse)
async def confirm_email_page(
    request: Request, services: ServicesDep, user: User, token: str = ""
) -> Response:
    return render(request, services, "email_confirm.html", {"token": token, "active": "account"})


@router.post("/account/email/confirm")
async def confirm_email(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    try:
        await rights.confirm_email_change(
            services.sessions, user.account.id, form.get("token"), actor="account"
        )
    except AppError as exc:
        context: dict[str, Any] = {"token": "", "active": "account", "failure": exc.detail}
        return render(request, services, "email_confirm.html", context, status_code=exc.http_status)
    return _done("email_changed")
