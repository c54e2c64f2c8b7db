"""``/v1/jobs``: bulk, asynchronous alt text for up to 10,000 image URLs or a crawled site."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from alttext import idempotency
from alttext.api.alt_text_input import validation_problem
from alttext.api.openapi import id_schema, idempotency_key_header, problems
from alttext.api.routes import ResourceRoute
from alttext.errors import InvalidRequest, NotFound, UnsupportedMediaType
from alttext.generation.service import check_can_process
from alttext.http.body import load_json, read_body
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.http.replay import keep_created, spending_response
from alttext.jobs import service
from alttext.jobs.export_csv import csv_chunks
from alttext.jobs.schemas import JobCreate, JobList, JobOut, JobResults
from alttext.jobs.tasks import wake_account, wake_crawl

router = APIRouter(prefix="/v1", tags=["jobs"], route_class=ResourceRoute)

MAX_JOB_BODY = 32 * 1024 * 1024  # 10,000 items with long contexts fit; more is not a job body
MAX_PAGE = 100
MAX_RESULTS_PAGE = 1000
_JOB_ID = re.compile(r"^job_[0-9a-z]{26}$")
_ITEM_ID = re.compile(r"^item_[0-9a-z]{26}$")
# A malformed id is answered 404 (or 400 for starting_after) by the route, not 422 by FastAPI.
JobId = Annotated[str, Path(json_schema_extra=id_schema("job"))]


def _job_id(job_id: str) -> str:
    # A malformed id cannot exist: answer 404 like any unknown id (no oracle, no DB query).
    if not _JOB_ID.match(job_id):
        raise NotFound("No job with this id in this account.")
    return job_id


def _location(body: Any) -> dict[str, str]:
    return {"Location": f"/v1/jobs/{body['id']}"}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    summary="Start a bulk job: up to 10,000 image URLs, or a page or sitemap to crawl",
    responses={
        **problems(400, 403, 409, 413, 415),
        202: {
            "description": "The job, queued",
            "headers": {
                "Location": {
                    "description": "The job's URL: /v1/jobs/{id}",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}}},
        }
    },
)
async def create_job(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Retry safely: the same key and body return the first answer; one job is made."
        ),
    ] = None,
) -> Response:
    key = idempotency.validate_key(idempotency_key)
    check_can_process(principal)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Send a job as application/json.")
    raw = await read_body(request, MAX_JOB_BODY)

    async def run() -> JobOut:
        try:
            spec = JobCreate.model_validate(load_json(raw))
        except ValidationError as exc:
            raise validation_problem(exc) from None
        job = await service.create_job(
            services.sessions,
            services.settings,
            account_id=principal.account_id,
            key_id=principal.key_id,
            spec=spec,
            keep=lambda session, created: keep_created(session, created, status_code=202),
        )
        if job.source is not None:
            await wake_crawl(services, job.id)
        else:
            await wake_account(services, principal.account_id)
        return job

    return await spending_response(
        request,
        services,
        principal.account_id,
        key,
        lambda: idempotency.request_fingerprint({"job": True}, raw),
        run,
        status_code=202,
        headers=_location,
    )


@router.get(
    "/jobs",
    response_model=JobList,
    summary="The account's jobs, newest first",
    responses=problems(400, meanings={400: "starting_after is not a job id"}),
)
async def list_jobs(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    starting_after: Annotated[
        str | None,
        Query(
            description="The id of the last job of the previous page.",
            json_schema_extra=id_schema("job"),
        ),
    ] = None,
) -> JobList:
    if starting_after is not None and not _JOB_ID.match(starting_after):
        raise InvalidRequest("starting_after must be a job id (job_…).", status=400)
    jobs, more = await service.list_jobs(
        services.sessions, principal.account_id, limit=limit, starting_after=starting_after
    )
    return JobList(data=jobs, has_more=more)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A job: status, counts per item status, credits spent, ETA",
    responses=problems(404),
)
async def get_job(services: ServicesDep, principal: PrincipalDep, job_id: JobId) -> JobOut:
    return await service.get_job(services.sessions, principal.account_id, _job_id(job_id))


@router.get(
    "/jobs/{job_id}/results",
    response_model=JobResults,
    summary="Each item's alt text or problem, in item order (JSON pages, or all rows as CSV)",
    responses={
        **problems(400, 404),
        200: {
            "description": "A page of results, or with ?format=csv every row as CSV.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {
                    "description": "With ?format=csv: an attachment, job_…-results.csv",
                    "required": False,
                    "schema": {"type": "string"},
                }
            },
        },
    },
)
async def job_results(
    services: ServicesDep,
    principal: PrincipalDep,
    job_id: JobId,
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS_PAGE)] = 100,
    starting_after: Annotated[
        str | None,
        Query(
            description="The item_id of the last result of the previous page.",
            json_schema_extra=id_schema("item"),
        ),
    ] = None,
    format: Annotated[Literal["json", "csv"], Query(description="csv: every row")] = "json",
) -> Response:
    job_id = _job_id(job_id)
    if starting_after is not None and not _ITEM_ID.match(starting_after):
        # Checked for CSV too, which streams every row: a malformed parameter is never ignored.
        raise InvalidRequest("starting_after must be an item id (item_…).", status=400)
    if format == "csv":
        # Ownership is checked before the first byte: a stream cannot turn into a 404 later.
        await service.get_job(services.sessions, principal.account_id, job_id)
        return StreamingResponse(
            csv_chunks(services.sessions, principal.account_id, job_id),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{job_id}-results.csv"'},
        )
    rows, more = await service.results_page(
        services.sessions,
        principal.account_id,
        job_id,
        limit=limit,
        starting_after=starting_after,
    )
    return Response(
        JobResults(data=rows, has_more=more).model_dump_json(), media_type="application/json"
    )


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a job: pending items are cancelled, running ones finish",
    responses=problems(404),
)
async def cancel_job(services: ServicesDep, principal: PrincipalDep, job_id: JobId) -> JobOut:
    return await service.cancel_job(services.sessions, principal.account_id, _job_id(job_id))
