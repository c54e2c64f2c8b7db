"""The real app served by a real uvicorn (the options of ``alttext serve``) in a thread, and a
raw HTTP/1.1 client over asyncio streams for what httpx will not send or hides."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.config import Settings
from alttext.db import create_engine, session_factory, transaction
from alttext.http.server import uvicorn_options
from tests.processes import free_port


@dataclass
class Live:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def live_server(app: Any, settings: Settings) -> Iterator[Live]:
    """Serve ``app`` until the block ends; the lifespan runs in the server's own thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server exited during start-up"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Live("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"


async def seed_key(database_url: str, email: str = "live@example.com") -> str:
    """An account with credits and an API key, written before (or beside) the server's engine."""
    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            account = await create_account(session, email)
            await grant_starting_credits(session, account, 10)
            _, secret = await create_key(session, account.id)
    finally:
        await engine.dispose()
    return secret


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes


class RawConnection:
    """One TCP connection; write bytes as they are, read whole responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 30) -> RawResponse:
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self, timeout: float = 30) -> bool:
        """Whether the server closes the connection (EOF or reset) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True

    def abort(self) -> None:
        self.writer.transport.abort()


@asynccontextmanager
async def raw_connection(live: Live) -> AsyncIterator[RawConnection]:
    reader, writer = await asyncio.open_connection(live.host, live.port)
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()


def request_head(
    method: str, path: str, live: Live, headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {live.host}:{live.port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
