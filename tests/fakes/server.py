"""Serving a fake's ASGI app on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def serve_in_thread(app: Any, name: str) -> Iterator[int]:
    """Yield the port while the app is served; stop the server after the block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. asyncio sets it itself only on sockets whose proto is
    # IPPROTO_TCP, and this one's is 0: without it every answer stalled 40 ms (Nagle holding the
    # body behind the unacknowledged headers, the client delaying its ACK), 44 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        # "auto" would install uvloop's policy for the whole test process as a side effect.
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@contextlib.contextmanager
def serve_tls_in_thread(app: Any, name: str, cert_file: str, key_file: str) -> Iterator[int]:
    """Like ``serve_in_thread`` over TLS, offering HTTP/2 and HTTP/1.1 by ALPN (hypercorn: uvicorn
    speaks no HTTP/2), as OpenRouter's edge does."""
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    with socket.socket() as probe:  # a free port; hypercorn binds it itself
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = cert_file, key_file
    config.alpn_protocols = ["h2", "http/1.1"]
    config.loglevel = "WARNING"
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        await serve(app, config, shutdown_trigger=stop.wait, mode="asgi")

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.02)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=5)
