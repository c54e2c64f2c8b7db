"""How uvicorn serves the app: the options of ``alttext serve`` (the tests serve with them too)."""

from __future__ import annotations

from typing import Any

from alttext.config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` besides the app, host and port."""
    return {
        "log_config": None,  # our JSON logging (alttext.logging_setup)
        "access_log": False,  # RequestIdMiddleware logs one line per request, without the query
        "server_header": False,
        # Bounded by ALTTEXT_MAX_INFLIGHT_MB for images; this bounds connections. Uvicorn
        # counts the new connection itself, so N admits N - 1 at once: 1024 holds a burst of
        # 1,000 clients (bench/bench_api.py) with room for health checks.
        "limit_concurrency": 1024,
        # SIGTERM/SIGINT: stop listening at once (new connections are refused), close idle
        # keep-alive connections, let requests in flight finish for up to this long, then
        # cancel the rest (their reservations are released) and run the lifespan's shutdown.
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        # Caps the request line and headers while they are read, but only with the pure-Python
        # h11 parser (uvicorn's choice when httptools is not installed). httptools has no such
        # cap; there RequestGuard answers 431 once the head is in (docs/configuration.md).
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
