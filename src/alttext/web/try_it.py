"""``/dashboard/try``: one image through the same path as ``POST /v1/alt-text`` (reserved,
charged, metered; failures free), from a form that works without script.

Each rendering of the form carries a fresh token that serves as the request's Idempotency-Key
(``alttext.idempotency``), so a double submit or a reload of the answer runs and charges once
and shows the same result. Script only improves the page: it sends the form in the background
and announces the result (static/app.js).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from alttext import idempotency
from alttext.describe.types import (
    DEFAULT_MAX_LENGTH,
    MAX_CONTEXT_CHARS,
    MAX_MAX_LENGTH,
    MIN_MAX_LENGTH,
    ROLES,
)
from alttext.errors import AppError, RateLimited, problem_fields
from alttext.generation.schemas import AltTextRequest, AltTextResponse
from alttext.generation.service import generate
from alttext.http.deps import ServicesDep
from alttext.http.disconnect import unless_disconnected
from alttext.http.replay import idempotent_call, kept_answer
from alttext.ids import new_id
from alttext.process import Services
from alttext.web.dashboard import balance
from alttext.web.forms import Form, read_form
from alttext.web.session import User, WebUser
from alttext.web.templating import render

router = APIRouter(include_in_schema=False)
KEY_PREFIX = "dashboard-try:"
ROLE_NAMES = {
    "auto": "Let the service decide",
    "informative": "Informative: it shows something",
    "decorative": 'Decorative: adds nothing (alt="")',
    "functional": "Functional: a link or button",
    "text": "Text: an image of text",
    "complex": "Complex: a chart or diagram",
}
# Form field -> the field names of AltTextRequest whose errors it shows.
FIELDS = {
    "image": ("image", "image_url"),
    "context": ("context",),
    "role": ("role",),
    "language": ("language",),
    "max_length": ("max_length",),
}


def _values(form: Form | None) -> dict[str, str]:
    if form is None:
        return {"role": "auto", "language": "en", "max_length": str(DEFAULT_MAX_LENGTH)}
    return {
        name: form.get(name) for name in ("image_url", "context", "role", "language", "max_length")
    }


async def _page(
    request: Request,
    services: Services,
    user: WebUser,
    *,
    form: Form | None = None,
    errors: dict[str, str] | None = None,
    result: AltTextResponse | None = None,
    failure: dict[str, Any] | None = None,
    source: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "active": "try",
        "balance": await balance(services, user.account.id),
        "values": _values(form),
        "errors": errors or {},
        "result": result,
        "failure": failure,
        "source": source,
        "roles": [(r, ROLE_NAMES[r]) for r in ROLES],
        "form_token": secrets.token_urlsafe(16),
        "limits": {
            "min": MIN_MAX_LENGTH,
            "max": MAX_MAX_LENGTH,
            "context": MAX_CONTEXT_CHARS,
            "mb": services.settings.max_image_bytes // 1_000_000,
        },
        "restricted": user.account.restricted_at is not None,
    }
    return render(request, services, "try.html", context, status_code=status_code)


@router.get("/dashboard/try", response_class=HTMLResponse)
async def try_page(request: Request, services: ServicesDep, user: User) -> Response:
    return await _page(request, services, user)


def _parse(form: Form) -> tuple[AltTextRequest, bytes | None, str]:
    upload = form.files.get("image")
    data = upload.data if upload is not None and upload.data else None
    url = form.get("image_url").strip() or None
    errors: dict[str, str] = {}
    if data is None and url is None:
        errors["image"] = "Choose an image file or enter an image URL."
    elif data is not None and url is not None:
        errors["image"] = "Give either an image file or an image URL, not both."
    raw_length = form.get("max_length").strip() or str(DEFAULT_MAX_LENGTH)
    languages = [t.strip() for t in form.get("language", "en").split(",") if t.strip()] or ["en"]
    payload: dict[str, Any] = {
        "context": form.get("context").strip() or None,
        "role": form.get("role") or "auto",
        "language": languages[0] if len(languages) == 1 else languages,
        "max_length": raw_length,
        "image": "-" if data is not None else None,
        "image_url": url if data is None else None,
    }
    if "image" in errors:
        payload |= {"image": None, "image_url": "https://example.invalid/placeholder.png"}
    try:
        options = AltTextRequest.model_validate(payload)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            name = str(err["loc"][0]) if err["loc"] else "image"
            target = next((f for f, names in FIELDS.items() if name in names), "image")
            errors.setdefault(target, _explain(target, err["msg"]))
        raise _FormErrors(errors) from None
    if errors:
        raise _FormErrors(errors)
    source = url or (upload.filename if upload and upload.filename else "image.jpg")
    return options, data, source


def _explain(field: str, message: str) -> str:
    if field == "max_length":
        return f"Enter a whole number from {MIN_MAX_LENGTH} to {MAX_MAX_LENGTH}."
    if field == "language":
        return "Enter a language tag such as en, de or pt-BR (several: en, de)."
    if field == "context":
        return f"Use at most {MAX_CONTEXT_CHARS} characters of context."
    if field == "role":
        return "Choose one of the roles in the list."
    return message[0].upper() + message[1:] + "."


class _FormErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("form errors")
        self.errors = errors


@router.post("/dashboard/try", response_class=HTMLResponse)
async def try_submit(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services, files=True)
    try:
        options, image, source = _parse(form)
    except _FormErrors as exc:
        return await _page(request, services, user, form=form, errors=exc.errors, status_code=422)
    principal = user.principal
    limit = principal.rate_limit_per_minute or services.settings.rate_limit_per_minute
    decision = await services.limiter.hit(f"dashboard:{principal.account_id}", limit, 60)
    request_id = new_id("req")
    try:
        if not decision.allowed:
            raise RateLimited(
                f"At most {limit} images a minute; try again in {decision.retry_after_s} seconds.",
                retry_after=decision.retry_after_s or 1,
            )
        token = form.get("form_token")
        key = idempotency.validate_key(KEY_PREFIX + token) if token else None
        fingerprint = idempotency.request_fingerprint(
            options.model_dump(mode="json", exclude={"image"}), image
        )

        async def call() -> AltTextResponse:
            # Under a form token the answer is kept in the charge's transaction (see replay).
            return await generate(
                services,
                principal,
                options,
                image,
                request_id=request_id,
                keep=kept_answer(request_id, options),
            )

        if key is None:
            result = await unless_disconnected(request, call())
        else:
            answer = await unless_disconnected(
                request,
                idempotent_call(services, principal.account_id, key, fingerprint, request, call),
            )
            body = bytes(answer.body)
            if answer.status_code >= 400:  # a replayed failure
                problem = json.loads(body)
                return await _failed(request, services, user, form, problem)
            result = AltTextResponse.model_validate_json(body)
    except AppError as exc:
        return await _failed(request, services, user, form, problem_fields(exc, None))
    return await _page(request, services, user, form=form, result=result, source=source)


async def _failed(
    request: Request, services: Services, user: WebUser, form: Form, problem: dict[str, Any]
) -> Response:
    """A failed generation (never charged): field errors next to their fields, the rest in the
    form's alert."""
    status = int(problem.get("status") or 400)
    if problem.get("code") in ("invalid_request", "invalid_image", "image_fetch_failed") or (
        problem.get("code") in ("unsupported_media_type", "image_too_large")
    ):
        errors: dict[str, str] = {}
        for e in problem.get("errors") or []:
            target = next((f for f, names in FIELDS.items() if e.get("field") in names), "image")
            errors.setdefault(target, str(e.get("message")))
        if not errors:
            errors["image"] = str(problem.get("detail"))
        return await _page(request, services, user, form=form, errors=errors, status_code=status)
    return await _page(request, services, user, form=form, failure=problem, status_code=status)
