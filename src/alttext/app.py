"""The ASGI application: ``create_app(settings)``; long-lived parts are built in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from alttext import __version__
from alttext.accounts.last_used import LastUsedRecorder
from alttext.api import account, alt_text, batch, system
from alttext.api.middleware import RateLimitHeadersMiddleware, RequestIdMiddleware
from alttext.api.openapi import install_openapi
from alttext.background import periodic
from alttext.billing import routes as billing_routes
from alttext.billing.credits import release_expired
from alttext.billing.webhooks import process_pending
from alttext.config import Settings
from alttext.db import create_engine, session_factory
from alttext.errors import install_error_handlers
from alttext.idempotency import purge_expired_records as purge_idempotency
from alttext.inflight import InflightBudget
from alttext.logging_setup import configure_logging
from alttext.mail import build_mailer
from alttext.privacy import routes as privacy_routes
from alttext.privacy.retention import purge as retention_purge
from alttext.runtime import open_runtime
from alttext.services import Services
from alttext.usage.limits import build_limiter
from alttext.web import routes as web_routes

log = logging.getLogger("alttext.app")

DESCRIPTION = """Alt text for images, written by vision language models and checked by code.

Images are held in memory only, stripped of metadata before they leave the service, and sent
only to model providers that neither keep nor train on them. Errors are RFC 9457 problem
details (`application/problem+json`) with a stable `code`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = create_engine(settings.database_url)
        sessions = session_factory(db)
        limiter = build_limiter(settings.redis_url)
        last_used = LastUsedRecorder()
        jobs = [
            ("release-expired", settings.reservation_sweep_s, lambda: release_expired(sessions)),
            ("key-last-used", 15.0, lambda: last_used.flush(sessions)),
            ("idempotency-purge", 3600.0, lambda: purge_idempotency(sessions)),
            ("stripe-inbox", 60.0, lambda: process_pending(sessions)),
            ("retention-purge", 86400.0, lambda: retention_purge(sessions, settings)),
        ]
        try:
            async with open_runtime(settings) as runtime, periodic(jobs):
                app.state.services = Services(
                    settings=settings,
                    runtime=runtime,
                    db=db,
                    sessions=sessions,
                    inflight=InflightBudget(settings.max_inflight_mb * 1024 * 1024),
                    limiter=limiter,
                    last_used=last_used,
                    mailer=build_mailer(settings),
                )
                log.info("started", extra={"provider": runtime.provider.name, "env": settings.env})
                yield
        finally:
            await last_used.flush(sessions)
            await limiter.aclose()
            await db.dispose()

    app = FastAPI(
        title="AltText API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(system.router)
    app.include_router(alt_text.router)
    app.include_router(batch.router)
    app.include_router(account.router)
    app.include_router(billing_routes.router)
    app.include_router(privacy_routes.router)
    app.include_router(web_routes.router)
    app.mount("/static", web_routes.static_files(), name="static")
    install_openapi(app)
    return app
