"""``alttext serve`` (the API and dashboard), ``alttext worker`` (the queue worker) and
``alttext mcp`` (the MCP server on stdio)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from alttext.cli.common import settings


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command("mcp")(mcp_command)


def serve(
    host: Annotated[str | None, typer.Option(help="Default: ALTTEXT_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="Default: ALTTEXT_PORT or 8000")] = None,
) -> None:
    """Run the API and the dashboard."""
    import uvicorn

    from alttext.app import create_app
    from alttext.http.server import uvicorn_options

    # Through the environment, so settings derived from them (the public URL in mail links
    # when ALTTEXT_PUBLIC_URL is unset) follow the flags too.
    if host:
        os.environ["ALTTEXT_HOST"] = host
    if port:
        os.environ["ALTTEXT_PORT"] = str(port)
    current = settings()
    uvicorn.run(
        create_app(current),
        host=current.host,
        port=current.port,
        **uvicorn_options(current),
    )


def worker() -> None:
    """A queue worker: bulk jobs, webhooks and the periodic tasks (needs ALTTEXT_REDIS_URL)."""
    import asyncio

    from alttext.logging_setup import configure_logging
    from alttext.worker import run_worker

    current = settings()
    if not current.redis_url:
        raise typer.BadParameter(
            "a worker reads the Redis queue: set ALTTEXT_REDIS_URL (without Redis, "
            "`alttext serve` runs jobs in its own process)"
        )
    configure_logging(current.log_level)
    asyncio.run(run_worker(current))


def mcp_command(
    root: Annotated[
        Path | None,
        typer.Option(help="The only folder the tools may read and write. Default: the cwd."),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(envvar="ALTTEXT_API_URL", help="Use a running service, not the local engine."),
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="ALTTEXT_API_KEY")] = None,
) -> None:
    """A Model Context Protocol server on stdio: tools describe_image, audit and fix
    (docs/mcp.md)."""
    from alttext.mcp.server import run

    base = (root or Path.cwd()).resolve()
    if not base.is_dir():
        raise typer.BadParameter(f"{base} is not a folder", param_hint="--root")
    if api_url and not api_key:
        raise typer.BadParameter("--api-url needs --api-key (or ALTTEXT_API_KEY)")
    run(settings(), root=base, api_url=api_url, api_key=api_key)
