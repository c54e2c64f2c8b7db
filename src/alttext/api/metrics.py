"""``GET /metrics``: Prometheus exposition, for the operator's scraper only.

Off unless ``ALTTEXT_METRICS_TOKEN`` is set (404, like a route that is not there); with it, the
scraper sends ``Authorization: Bearer <token>``. No API key and so no per-key rate limit: a
scraper must never be throttled into gaps, and the token, compared in constant time, is what
keeps everyone else out (a token of 16+ random characters is not guessable by trying).

Left out of the OpenAPI document: it is not part of the API that customers and generated
clients use, its body is not JSON, and docs/operations.md describes it for operators.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from alttext import metrics
from alttext.errors import NotFound, Unauthorized, problem_response, request_id_of
from alttext.http.deps import ServicesDep
from alttext.http.routing import ApiRoute
from alttext.jobstore.stats import JobCounts, job_counts
from alttext.process import Services

router = APIRouter(route_class=ApiRoute, include_in_schema=False)


async def read_job_counts(services: Services) -> JobCounts:
    """The cluster-wide gauges' counts, for :func:`alttext.metrics.scrape`."""
    async with services.sessions() as session:
        return await job_counts(session)


@router.get("/metrics")
async def scrape_metrics(request: Request, services: ServicesDep) -> Response:
    answer = await metrics.scrape(
        services.settings.metrics_token,
        request.headers.get("authorization"),
        lambda: read_job_counts(services),
    )
    if answer.status == 404:
        raise NotFound(metrics.OFF_DETAIL)
    if answer.status != 200:
        return problem_response(
            Unauthorized(metrics.DENIED_DETAIL),
            request_id_of(request),
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(
        answer.body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )
