"""``GET /metrics``: Prometheus exposition, for the operator's scraper only.

Off unless ``ALTTEXT_METRICS_TOKEN`` is set (404, like a route that is not there); with it, the
scraper sends ``Authorization: Bearer <token>``. No API key and so no per-key rate limit: a
scraper must never be throttled into gaps, and the token, compared in constant time, is what
keeps everyone else out (a token of 16+ random characters is not guessable by trying).

Left out of the OpenAPI document: it is not part of the API that customers and generated
clients use, its body is not JSON, and docs/operations.md describes it for operators.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from alttext import metrics
from alttext.errors import NotFound, Unauthorized, problem_response, request_id_of
from alttext.http.deps import ServicesDep
from alttext.http.routing import ApiRoute
from alttext.jobstore.stats import JobCounts, job_counts

log = logging.getLogger("alttext.metrics")
router = APIRouter(route_class=ApiRoute, include_in_schema=False)


def _bearer(request: Request) -> bytes | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode()


def _gauges(counts: JobCounts | None) -> list[metrics.Metric]:
    database_ok = metrics.gauge(
        "alttext_metrics_database_ok",
        "1 when this scrape could read the job gauges from the database, else 0.",
        1 if counts is not None else 0,
    )
    if counts is None:
        return [database_ok]
    return [
        database_ok,
        metrics.labelled_gauge(
            "alttext_job_items", "Job items per status (cluster-wide).", "status", counts.items
        ),
        metrics.gauge(
            "alttext_queue_depth",
            "Pending items of open (queued, running or paused) jobs, cluster-wide.",
            counts.queue_depth,
        ),
        metrics.labelled_gauge(
            "alttext_jobs", "Jobs per status (cluster-wide).", "status", counts.jobs
        ),
        metrics.gauge(
            "alttext_webhook_messages_pending",
            "Webhook messages not yet delivered nor given up (cluster-wide).",
            counts.webhook_messages_pending,
        ),
    ]


@router.get("/metrics")
async def scrape_metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if not token:
        raise NotFound("Metrics are off on this deployment (ALTTEXT_METRICS_TOKEN is not set).")
    given = _bearer(request)
    if given is None or not hmac.compare_digest(given, token.encode()):
        return problem_response(
            Unauthorized("Send the metrics token as 'Authorization: Bearer <token>'."),
            request_id_of(request),
            headers={"WWW-Authenticate": "Bearer"},
        )
    counts: JobCounts | None
    try:
        async with services.sessions() as session:
            counts = await job_counts(session)
    except (SQLAlchemyError, OSError) as exc:
        # The process's own counters matter most while the database is down: answer with them.
        log.warning("metrics: job gauges unavailable", extra={"error_type": type(exc).__name__})
        counts = None
    # Multiprocess mode reads one file per process: off the event loop.
    body = await asyncio.to_thread(metrics.render, _gauges(counts))
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})
