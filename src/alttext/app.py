"""The ASGI application: ``create_app(settings)``; long-lived parts are built in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from alttext import __version__, metrics
from alttext.api import account, alt_text, batch, billing, jobs, privacy, system, webhooks
from alttext.api import metrics as metrics_api
from alttext.api.openapi import install_openapi
from alttext.config import Settings
from alttext.errors import install_error_handlers
from alttext.http.guard import RequestGuard
from alttext.http.middleware import (
    ErrorBoundary,
    RateLimitHeadersMiddleware,
    RequestIdMiddleware,
    RequestMetricsMiddleware,
)
from alttext.http.shutdown import Requests, ShutdownBoundary
from alttext.jobs import tasks as jobs_tasks
from alttext.logging_setup import configure_logging
from alttext.process import open_process
from alttext.web import routes as web_routes
from alttext.web.security import PageErrorBoundary, SecurityHeaders

log = logging.getLogger("alttext.app")

DESCRIPTION = """Alt text for images, written by vision language models and checked by code.

Images are held in memory only, stripped of metadata before they leave the service, and sent
only to model providers that neither keep nor train on them. Errors are RFC 9457 problem
details (`application/problem+json`) with a stable `code`.
"""


# After the shutdown grace, how long the cancelled requests may take to release what they hold
# (reservations, idempotency keys) before the database pool is closed under them.
CLEANUP_S = 5.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    requests = Requests()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Without Redis this process is the whole cluster: it runs the jobs and their sweep.
        # With Redis, `alttext worker` processes do, and this one only sends them messages.
        async with (
            open_process(settings, schedule=True) as services,
            jobs_tasks.running(services, schedule=settings.redis_url is None),
        ):
            app.state.services = services
            provider = services.runtime.provider.name
            log.info("started", extra={"provider": provider, "env": settings.env})
            yield
            if not await requests.drained(CLEANUP_S):
                log.warning("requests still running at shutdown", extra={"count": requests.count})
        metrics.process_exited()  # its live gauges leave the host's sums (multiprocess mode)

    app = FastAPI(
        title="AltText API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is our own page (alttext.web.pages), rendered from /openapi.json on the server:
        # FastAPI's loads Swagger UI from a CDN, which fails offline and tells a third party
        # about every visitor.
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=lambda route: route.name,  # operationId: the function name
    )
    install_error_handlers(app, html=web_routes.html_problems)
    # The last added is the outermost: SecurityHeaders > RequestId > RequestMetrics > Guard
    # > RateLimitHeaders > ShutdownBoundary > ErrorBoundary > PageErrorBoundary (a page's
    # unexpected error as the HTML 500 page).
    app.add_middleware(PageErrorBoundary)
    app.add_middleware(ErrorBoundary)
    # A request cancelled when the shutdown grace ran out: a 503 problem, not uvicorn's 500.
    app.add_middleware(ShutdownBoundary, requests=requests)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestGuard)
    # Outside the guard and the boundaries, so their 408/431/500 answers are counted too, and
    # timed like the access log's duration.
    app.add_middleware(RequestMetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SecurityHeaders, settings=settings)  # every answer carries the headers
    app.include_router(system.router)
    app.include_router(metrics_api.router)
    app.include_router(alt_text.router)
    app.include_router(batch.router)
    app.include_router(jobs.router)
    app.include_router(account.router)
    app.include_router(billing.router)
    app.include_router(privacy.router)
    app.include_router(webhooks.router)
    web_routes.install(app)
    install_openapi(app)
    return app
