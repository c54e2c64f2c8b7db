"""A TCP fault proxy: put it between our processes and Redis or PostgreSQL, then cut the line.

It listens on 127.0.0.1 (a free port, or the one given) and forwards every connection to a
target, byte for byte, in a background thread with its own event loop, so sync tests,
async tests and subprocesses can all use it. No real service is ever stopped::

    with running_tcp_proxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/15"   # give this to the service
        proxy.pause()      # refused: new connections get ECONNREFUSED, open ones are reset
        proxy.resume()     # the same port accepts and forwards again
        proxy.pause("blackhole")  # silent: connections are accepted, nothing gets through

``refuse`` is a stopped server (or a dead host that answers with RST); ``blackhole`` is a
partition (packets dropped): clients see nothing but their own timeouts. Resuming from a
blackhole resets the connections that were held silent (their byte streams lost data, so they
could not be used again anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Mode = Literal["refuse", "blackhole"]
T = TypeVar("T")
_CHUNK = 64 * 1024


@dataclass
class ProxyStats:
    accepted: int = 0  # connections accepted while forwarding
    cut: int = 0  # connections reset by a pause (or a resume from a blackhole)
    held: int = 0  # connections accepted while blackholed
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client


class _Pair:
    """One client connection and its connection to the target."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client, self.target):
            if writer is not None:
                writer.transport.abort()  # RST, not FIN: a cut line, not a polite close
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = port
        self.stats = ProxyStats()
        self.mode: Mode | None = None  # None: forwarding
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()

    # -- lifecycle (called from any thread but the proxy's) ---------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def pause(self, mode: Mode = "refuse") -> None:
        """Cut the line. ``refuse``: stop listening (new connections are refused) and reset
        every open connection. ``blackhole``: keep accepting but forward nothing, in either
        direction, on new and open connections alike."""
        self._call(self._pause(mode))

    def resume(self) -> None:
        """Forward again on the same port (connections held by a blackhole are reset)."""
        self._call(self._resume())

    @property
    def paused(self) -> bool:
        return self.mode is not None

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- inside the proxy's loop ------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True, backlog=512
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _cut_all(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            pair.abort()
        self.stats.cut += len(pairs)

    async def _shutdown(self) -> None:
        await self._close_listener()
        self._cut_all()

    async def _pause(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "refuse":
            await self._close_listener()
            self._cut_all()
        # blackhole: the relays see self.mode and drop what they read from now on.

    async def _resume(self) -> None:
        was = self.mode
        self.mode = None
        if was == "blackhole":
            self._cut_all()
        if self._server is None:
            await self._listen()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pair = _Pair(writer)
        with self._lock:
            self._pairs.add(pair)
        try:
            if self.mode == "blackhole":
                self.stats.held += 1
                await self._drain_silently(reader)
                return
            try:
                target_reader, pair.target = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            self.stats.accepted += 1
            up = asyncio.create_task(self._relay(reader, pair.target, upstream=True))
            down = asyncio.create_task(self._relay(target_reader, writer, upstream=False))
            pair.tasks = [up, down]
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(up, down)
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for side in (pair.client, pair.target):
                if side is not None and not side.transport.is_closing():
                    side.transport.abort()

    async def _drain_silently(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while await reader.read(_CHUNK):
                pass

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if self.mode == "blackhole":
                    continue  # dropped on the floor, as a partition would
                writer.write(data)
                await writer.drain()
                if upstream:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            # One side finished: pass the half-close on, then let the pair end.
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof() and not writer.transport.is_closing():
                    writer.write_eof()


@contextlib.contextmanager
def running_tcp_proxy(target_host: str, target_port: int, *, port: int = 0) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port, port=port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def wait_connectable(host: str, port: int, timeout: float = 5.0) -> bool:
    """True once a TCP connect to host:port succeeds (for tests that resume and race)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False
