"""``/dashboard/jobs``: bulk jobs as pages. The account's jobs with their progress and result
downloads, starting a job (a page or sitemap to crawl, or a list of image URLs), cancelling one
after a confirmation, and the webhooks: the signing secret (revealed on request, rotated after a
confirmation) and the latest delivery attempts.

Everything goes through ``alttext.jobs`` exactly as ``/v1/jobs`` and ``/v1/webhooks`` do; the
CSV download is the API's writer (``alttext.jobs.export_csv``). The start form carries a fresh
token used as the request's Idempotency-Key, so a double submit starts one job. The signing
secret is never in a URL and never on a page unless asked for with a POST (it then shows once,
on that answer, which is not cached).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from alttext import idempotency
from alttext.config import Settings
from alttext.db import transaction
from alttext.errors import AppError, InvalidRequest, NotFound, RateLimited, problem_fields
from alttext.generation.service import check_can_process
from alttext.http.deps import ServicesDep
from alttext.http.replay import idempotent_call, keep_created
from alttext.jobs import service, webhooks
from alttext.jobs.export_csv import csv_chunks
from alttext.jobs.schemas import MAX_JOB_ITEMS, JobCreate, JobOut
from alttext.jobs.tasks import wake_account, wake_crawl
from alttext.jobstore.models import JOB_OPEN
from alttext.process import Services
from alttext.web.dashboard import balance
from alttext.web.forms import Form, read_form
from alttext.web.session import User, WebUser
from alttext.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE = 20  # jobs per page
DELIVERIES = 20  # the latest delivery attempts shown
# 10,000 URLs of a few hundred characters each, url-encoded; larger is not a job of this form.
JOB_FORM_BYTES = 8 * 1024 * 1024
KEY_PREFIX = "dashboard-job:"
MAX_LINE_ERRORS = 5
_JOB_ID = re.compile(r"^job_[0-9a-z]{26}$")

STATUS_NAMES = {
    "queued": "Queued",
    "running": "Running",
    "paused": "Paused: out of credits",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
OUTCOME_NAMES = {
    "delivered": "Delivered",
    "http_error": "Refused by the receiver",
    "timeout": "Timed out",
    "network_error": "Could not connect",
    "refused": "Not sent: private, local or invalid address",
}
LABELS = {
    "what": "What to describe",
    "source_url": "Page or sitemap URL",
    "max_pages": "Maximum pages",
    "image_urls": "Image URLs",
    "language": "Language",
    "webhook_url": "Webhook URL",
}
# Where a link in the error summary goes (a group's error: its first field).
TARGETS = {"what": "source_url"}
FIELDS = ("source_url", "max_pages", "image_urls", "language", "webhook_url")


# -- what the page shows -----------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    job: JobOut
    status: str
    what: str
    done: int
    total: int
    progress: str
    created: datetime
    open: bool


def _eta(seconds: int) -> str:
    minutes = (seconds + 59) // 60
    if minutes <= 1:
        return "about a minute left"
    if minutes < 90:
        return f"about {minutes} minutes left"
    return f"about {(minutes + 30) // 60} hours left"


def job_row(job: JobOut) -> JobRow:
    """A job as the table shows it: words for the status, a text equivalent of the bar."""
    counts = job.counts
    done = counts.succeeded + counts.failed + counts.skipped + counts.cancelled
    is_open = job.status in JOB_OPEN
    source = job.source
    if source is None:
        what = f"{job.total:,} image URL{'s' if job.total != 1 else ''}"
    else:
        pages = f"{source.pages_crawled:,} page{'s' if source.pages_crawled != 1 else ''}"
        crawling = source.crawl_state in ("pending", "running") and is_open
        what = f"Crawl of {source.url} ({pages} crawled{', still crawling' if crawling else ''})"
    if job.total:
        progress = f"{done:,} of {job.total:,} done"
        if job.eta_s is not None and job.status == "running":
            progress += f", {_eta(job.eta_s)}"
    elif is_open:
        progress = "Finding images" if source is not None else "Starting"
    else:
        progress = "No images found" if source is not None else "No images"
    status = STATUS_NAMES.get(job.status, job.status)
    if job.status == "failed" and job.error:
        status = f"{status}: {job.error}"
    return JobRow(
        job=job,
        status=status,
        what=what,
        done=done,
        total=job.total,
        progress=progress,
        created=datetime.fromisoformat(job.created_at),
        open=is_open,
    )


def _limits(services: Services) -> dict[str, int]:
    return {"max_items": MAX_JOB_ITEMS, "max_pages": services.settings.crawl_max_pages}


def _job_id(raw: str | None) -> str | None:
    return raw if raw and _JOB_ID.match(raw) else None


def _values(form: Form | None) -> dict[str, Any]:
    if form is None:
        return {"language": "en", "overwrite": False}
    values: dict[str, Any] = {name: form.get(name) for name in FIELDS}
    values["overwrite"] = form.checked("overwrite")
    return values


async def _page(
    request: Request,
    services: Services,
    user: WebUser,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    failure: str | None = None,
    secret: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    account_id = user.account.id
    query = request.query_params
    after = _job_id(query.get("after"))
    jobs, has_more = await service.list_jobs(
        services.sessions, account_id, limit=PAGE, starting_after=after
    )
    confirming = None
    if (cancel := _job_id(query.get("cancel"))) is not None:
        try:
            found = job_row(await service.get_job(services.sessions, account_id, cancel))
        except NotFound:
            found = None
        confirming = found if found is not None and found.open else None
    async with services.sessions() as session:
        keys = await webhooks.signing_keys(session, services.settings, account_id)
        deliveries = await webhooks.list_deliveries(session, account_id, limit=DELIVERIES)
    context: dict[str, Any] = {
        "active": "jobs",
        "balance": await balance(services, account_id),
        "rows": [job_row(job) for job in jobs],
        "has_more": has_more,
        "after": after,
        "next_after": jobs[-1].id if has_more and jobs else None,
        "confirming": confirming,
        "rotating": query.get("rotate") == "1" and secret is None,
        "secret": secret,
        "rotated_at": keys.rotated_at,
        "grace_until": keys.rotated_at + webhooks.ROTATION_GRACE
        if keys.previous and keys.rotated_at
        else None,
        "deliveries": deliveries.data,
        "more_deliveries": deliveries.has_more,
        "outcome_names": OUTCOME_NAMES,
        "values": values or _values(None),
        "errors": errors or {},
        "labels": LABELS,
        "targets": TARGETS,
        "failure": failure,
        "form_token": secrets.token_urlsafe(16),
        "limits": _limits(services),
        "restricted": user.account.restricted_at is not None,
    }
    started = await _started_message(services, request, account_id)
    if started is not None:
        context["flash"] = started
    return render(request, services, "jobs.html", context, status_code=status_code, headers=headers)


async def _started_message(services: Services, request: Request, account_id: str) -> str | None:
    """After a start, the new job by its id and size (only a job of this account is named)."""
    query = request.query_params
    job_id = _job_id(query.get("job"))
    if query.get("status") != "job_started" or job_id is None:
        return None
    try:
        job = await service.get_job(services.sessions, account_id, job_id)
    except NotFound:
        return None
    if job.source is not None:
        return f"Job {job.id} started: crawling {job.source.url} for images."
    return f"Job {job.id} started with {job.total:,} image{'s' if job.total != 1 else ''}."


@router.get("/dashboard/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request, services: ServicesDep, user: User) -> Response:
    return await _page(request, services, user)


# -- starting a job ----------------------------------------------------------------------------


class _FormErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("form errors")
        self.errors = errors


def _field_of(loc: str) -> tuple[str, int | None]:
    """The form field (and item index) of a problem's field path, as the API names them:
    ``items[3].image_url``, ``source.url``, ``defaults.language``, ``webhook_url``."""
    match = re.match(r"^items\[(\d+)\]", loc)
    if match:
        return "image_urls", int(match.group(1))
    if loc.startswith("items"):
        return "image_urls", None
    if loc.startswith("source.max_pages"):
        return "max_pages", None
    if loc.startswith("source"):
        return "source_url", None
    if loc.startswith("defaults"):
        return "language", None
    if loc.startswith("webhook_url"):
        return "webhook_url", None
    return "what", None


def _explain(field: str, message: str, limits: dict[str, int]) -> str:
    message = message.rstrip(".")
    if field == "language":
        return "Enter one language tag such as en, de or pt-BR."
    if field == "max_pages":
        return f"Enter a whole number from 1 to {limits['max_pages']:,}, or leave it empty."
    if field == "source_url":
        return (
            f"Enter the full address of a page or sitemap, such as "
            f"https://example.com/sitemap.xml ({message[0].lower() + message[1:]})."
        )
    if field == "webhook_url":
        return (
            "Enter the full https:// address of your receiver, or leave it empty "
            f"({message[0].lower() + message[1:]})."
        )
    return message[0].upper() + message[1:] + "."


def _errors_of(
    problems: list[dict[str, Any]], lines: list[int], limits: dict[str, int]
) -> dict[str, str]:
    """Problems by field path -> one message per form field; an image URL's problem names its
    line in the text box."""
    errors: dict[str, str] = {}
    bad_lines: list[str] = []
    for problem in problems:
        field, index = _field_of(str(problem.get("field") or ""))
        message = str(problem.get("message") or "this value is not valid")
        if field == "image_urls" and index is not None:
            line = lines[index] if index < len(lines) else index + 1
            bad_lines.append(f"line {line}: {message.rstrip('.')}")
            continue
        errors.setdefault(field, _explain(field, message, limits))
    if bad_lines and "image_urls" not in errors:
        shown = "; ".join(bad_lines[:MAX_LINE_ERRORS])
        more = len(bad_lines) - MAX_LINE_ERRORS
        errors["image_urls"] = (
            f"Fix these image URLs (full http:// or https:// addresses, one per line): {shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "."
        )
    return errors


def _spec(
    values: dict[str, Any], limits: dict[str, int], settings: Settings
) -> tuple[JobCreate, list[int]]:
    """The form as a ``JobCreate`` and, for each item, its line in the text box; or every
    problem at once, by field (``_FormErrors``)."""
    errors: dict[str, str] = {}
    source_url = str(values["source_url"]).strip()
    numbered = [
        (number, line.strip())
        for number, line in enumerate(str(values["image_urls"]).splitlines(), start=1)
        if line.strip()
    ]
    if not source_url and not numbered:
        errors["what"] = "Enter a page or sitemap URL to crawl, or image URLs, one per line."
    elif source_url and numbered:
        errors["what"] = (
            "Give either a page or sitemap to crawl or a list of image URLs, not both: "
            "empty one of the two."
        )
    if len(numbered) > limits["max_items"]:
        errors["image_urls"] = (
            f"Enter at most {limits['max_items']:,} image URLs, one per line (there are "
            f"{len(numbered):,}); split the list into several jobs."
        )
        numbered = numbered[: limits["max_items"]]
    max_pages: int | None = None
    raw_pages = str(values["max_pages"]).strip().replace(",", "")
    if raw_pages:
        try:
            max_pages = int(raw_pages)
        except ValueError:
            max_pages = None
        if max_pages is None or not 1 <= max_pages <= limits["max_pages"]:
            errors["max_pages"] = _explain("max_pages", "", limits)
            max_pages = None
    language = str(values["language"]).strip() or "en"
    if "," in language:
        errors["language"] = _explain("language", "", limits)
        language = "en"
    payload: dict[str, Any] = {
        "defaults": {"language": language},
        "overwrite": bool(values["overwrite"]),
        "webhook_url": str(values["webhook_url"]).strip() or None,
    }
    if source_url and "what" not in errors:
        payload["source"] = {"url": source_url, "max_pages": max_pages}
    elif numbered and "what" not in errors:
        payload["items"] = [{"image_url": url} for _, url in numbered]
    else:  # checked all the same, so every other field's problem shows at once
        payload["items"] = [{"image_url": "https://example.invalid/placeholder.png"}]
    lines = [number for number, _ in numbered]
    problems: list[dict[str, Any]] = []
    spec: JobCreate | None = None
    try:
        spec = JobCreate.model_validate(payload)
    except ValidationError as exc:
        problems = [
            {
                "field": "".join(
                    f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"]
                ).lstrip("."),
                "message": err["msg"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
    if spec is not None:
        problems = _service_problems(spec, settings)
    for field, message in _errors_of(problems, lines, limits).items():
        errors.setdefault(field, message)
    if errors or spec is None:
        raise _FormErrors(errors)
    return spec, lines


def _service_problems(spec: JobCreate, settings: Settings) -> list[dict[str, Any]]:
    """The service's own checks of the URLs (``create_job`` makes them again), all of them
    now: ``create_job`` stops at the first field in trouble, the form names every one."""
    problems: list[dict[str, Any]] = []
    try:
        service.validate_items(spec, settings)
    except InvalidRequest as exc:
        problems.extend(exc.errors or [])
    urls = (
        (spec.source.url if spec.source else None, "source.url", "page"),
        (spec.webhook_url, "webhook_url", "webhook"),
    )
    for url, field, noun in urls:
        if url:
            try:
                service.checked_url(url, field, settings, noun)
            except InvalidRequest as exc:
                problems.extend(exc.errors or [])
    return problems


async def _throttle(services: Services, user: WebUser) -> None:
    """The dashboard's budget of the account (Try it's): its per-minute rate."""
    principal = user.principal
    limit = principal.rate_limit_per_minute or services.settings.rate_limit_per_minute
    decision = await services.limiter.hit(f"dashboard:{principal.account_id}", limit, 60)
    if not decision.allowed:
        wait = decision.retry_after_s or 1
        raise RateLimited(
            f"Too many requests: at most {limit} a minute. Try again in {wait:.0f} seconds.",
            retry_after=wait,
        )


@router.post("/dashboard/jobs", response_class=HTMLResponse)
async def start_job(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services, max_bytes=JOB_FORM_BYTES)
    values = _values(form)
    limits = _limits(services)
    try:
        spec, lines = _spec(values, limits, services.settings)
    except _FormErrors as exc:
        return await _page(
            request, services, user, values=values, errors=exc.errors, status_code=422
        )
    account_id = user.account.id

    async def create() -> JobOut:
        job = await service.create_job(
            services.sessions,
            services.settings,
            account_id=account_id,
            key_id=None,
            spec=spec,
            keep=lambda session, created: keep_created(session, created, status_code=202),
        )
        if job.source is not None:
            await wake_crawl(services, job.id)
        else:
            await wake_account(services, account_id)
        return job

    try:
        await _throttle(services, user)
        check_can_process(user.principal)
        token = form.get("form_token")
        key = idempotency.validate_key(KEY_PREFIX + token) if token else None
        if key is None:
            job_id = (await create()).id
        else:
            fingerprint = idempotency.request_fingerprint(spec.model_dump(mode="json"), None)
            answer = await idempotent_call(
                services, account_id, key, fingerprint, request, create, status_code=202
            )
            body = json.loads(bytes(answer.body))
            if answer.status_code >= 400:  # a replayed failure
                return await _failed(request, services, user, values, body, lines)
            job_id = str(body["id"])
    except AppError as exc:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
        problem = problem_fields(exc, None)
        return await _failed(request, services, user, values, problem, lines, headers)
    return RedirectResponse(f"/dashboard/jobs?status=job_started&job={job_id}", status_code=303)


async def _failed(
    request: Request,
    services: Services,
    user: WebUser,
    values: dict[str, Any],
    problem: dict[str, Any],
    lines: list[int],
    headers: dict[str, str] | None = None,
) -> Response:
    """No job was started: field problems next to their fields, the rest in an alert."""
    status = int(problem.get("status") or 400)
    limits = _limits(services)
    errors = _errors_of(list(problem.get("errors") or []), lines, limits)
    if errors:
        return await _page(
            request, services, user, values=values, errors=errors, status_code=status
        )
    failure = str(problem.get("detail") or "The job could not be started.")
    return await _page(
        request,
        services,
        user,
        values=values,
        failure=failure,
        status_code=status,
        headers=headers,
    )


# -- one job: downloads and cancelling ---------------------------------------------------------


async def _owned_job(services: Services, user: WebUser, job_id: str) -> JobOut:
    if _job_id(job_id) is None:  # cannot exist: the same 404 as any unknown id
        raise NotFound("No job with this id in your account.")
    try:
        return await service.get_job(services.sessions, user.account.id, job_id)
    except NotFound:
        raise NotFound("No job with this id in your account.") from None


def _attachment(filename: str) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }


@router.get("/dashboard/jobs/{job_id}/results.csv")
async def results_csv(job_id: str, services: ServicesDep, user: User) -> Response:
    """The same file as ``GET /v1/jobs/{id}/results?format=csv``."""
    job = await _owned_job(services, user, job_id)  # before the first byte of the stream
    return StreamingResponse(
        csv_chunks(services.sessions, user.account.id, job.id),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(f"{job.id}-results.csv"),
    )


async def _json_chunks(services: Services, account_id: str, job: JobOut) -> AsyncIterator[str]:
    """``{"job": …, "results": [...]}``: the job as ``GET /v1/jobs/{id}`` and every result as
    ``GET /v1/jobs/{id}/results`` gives them, a page of rows at a time."""
    parts = ['{"job": ', job.model_dump_json(), ', "results": [']
    first = True
    async for result in service.all_results(services.sessions, account_id, job.id):
        parts.append(("\n" if first else ",\n") + result.model_dump_json())
        first = False
        if len(parts) >= 500:
            yield "".join(parts)
            parts = []
    parts.append("\n]}\n")
    yield "".join(parts)


@router.get("/dashboard/jobs/{job_id}/results.json")
async def results_json(job_id: str, services: ServicesDep, user: User) -> Response:
    job = await _owned_job(services, user, job_id)
    return StreamingResponse(
        _json_chunks(services, user.account.id, job),
        media_type="application/json",
        headers=_attachment(f"{job.id}-results.json"),
    )


@router.post("/dashboard/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, services: ServicesDep, user: User) -> Response:
    await read_form(request, services)
    await _throttle(services, user)
    job = await _owned_job(services, user, job_id)
    await service.cancel_job(services.sessions, user.account.id, job.id)
    return RedirectResponse("/dashboard/jobs?status=job_cancelled", status_code=303)


# -- the webhook signing secret ----------------------------------------------------------------


@router.post("/dashboard/jobs/webhook-secret/reveal", response_class=HTMLResponse)
async def reveal_secret(request: Request, services: ServicesDep, user: User) -> Response:
    """The secret on this answer only (a POST: never in a URL, history or a cache)."""
    await read_form(request, services)
    await _throttle(services, user)
    async with services.sessions() as session:
        secret = await webhooks.current_secret(session, services.settings, user.account.id)
    return await _page(request, services, user, secret=secret)


@router.post("/dashboard/jobs/webhook-secret/rotate")
async def rotate_secret(request: Request, services: ServicesDep, user: User) -> Response:
    await read_form(request, services)
    await _throttle(services, user)
    async with transaction(services.sessions) as session:
        await webhooks.rotate_secret(session, services.settings, user.account.id)
    return RedirectResponse("/dashboard/jobs?status=secret_rotated#secret-title", status_code=303)
