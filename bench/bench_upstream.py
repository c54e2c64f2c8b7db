"""The model server's HTTP client, side by side: CPU per call of the one the service uses
(aiohttp over HTTP/1.1 keep-alive, ``runtime.provider_client``) and of httpx over HTTP/1.1 and
HTTP/2, over plain http and over TLS.

    python bench/bench_upstream.py [--calls N]

The fake OpenRouter (tests/fakes/openrouter.py) runs in its own process, over TLS served by
hypercorn (offering HTTP/2 by ALPN, as openrouter.ai does) or over plain http; the body is
what a request sends: the bench's 1 MP photo prepared to 768 px, as base64 in the JSON. 16
calls at a time on uvloop; CPU is this process's (user + system) per call, after a warm-up
that opens the connections. Prints Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import stop_on_eof

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 16
WARM_UP = 32

# The fake in its own process: its CPU stays off the client's.
_SERVE = """
import sys, threading, time
from pathlib import Path
from tests.fakes.openrouter import run_fake_openrouter
from tests.fakes.tls import tls_material
tls = tls_material(Path(sys.argv[1]), "localhost") if sys.argv[2] == "tls" else None
if tls is not None:
    (Path(sys.argv[1]) / "ca.pem").write_text(tls.ca_pem)
with run_fake_openrouter(tls=tls) as fake:
    def forget():
        while True:
            time.sleep(1)
            with fake._lock:
                fake._requests.clear(); fake._images.clear(); fake._generations.clear()
    threading.Thread(target=forget, daemon=True).start()
    print("ready", fake.base_url, fake.api_key, flush=True)
    sys.stdin.read()
"""


def body() -> bytes:
    from alttext.describe.image import prepare_image
    from bench.bench_api import upload_photo

    image = base64.b64encode(prepare_image(upload_photo(1.0)[0]).data).decode()
    part = {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}}
    return json.dumps(
        {
            "models": ["google/gemini-2.5-flash-lite"],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Alt text?"}, part]}
            ],
            "provider": {"data_collection": "deny"},
            "max_tokens": 300,
        }
    ).encode()


async def cpu_per_call(call: Callable[[], Awaitable[None]], calls: int) -> float:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one() for _ in range(WARM_UP)))
    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - started) * 1000 / calls


async def measure(
    base_url: str, api_key: str, ca: ssl.SSLContext | None, calls: int
) -> list[tuple[str, float]]:
    import httpx
    from tests.conftest import make_settings

    from alttext.runtime import provider_client

    url = f"{base_url}/chat/completions"
    content = body()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    rows: list[tuple[str, float]] = []
    session = provider_client(make_settings("sqlite+aiosqlite:///:memory:"), verify=ca or True)
    async with session:

        async def with_aiohttp() -> None:
            async with session.post(url, data=content, headers=headers) as response:
                assert response.status == 200, await response.text()
                json.loads(await response.read())

        ms = await cpu_per_call(with_aiohttp, calls)
        rows.append(("aiohttp, HTTP/1.1 (the service's)", ms))
    for http2 in (False, True):
        versions: set[str] = set()
        client = httpx.AsyncClient(
            http2=http2,
            verify=ca or True,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=64),
            trust_env=False,
        )
        async with client:

            async def with_httpx(
                client: httpx.AsyncClient = client, versions: set[str] = versions
            ) -> None:
                response = await client.post(url, content=content, headers=headers, timeout=30)
                assert response.status_code == 200, response.text
                versions.add(response.http_version)
                response.json()

            ms = await cpu_per_call(with_httpx, calls)
        asked = "HTTP/2 offered" if http2 else "HTTP/1.1 only"
        rows.append((f"httpx ({asked}): {'/'.join(sorted(versions))}", ms))
    return rows


def serve(folder: Path, mode: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(folder), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        raise RuntimeError("the fake OpenRouter did not start")
    return proc, line[1], line[2]


async def run(calls: int) -> None:
    print(
        f"CPU of the calling process per call, {calls} calls, {CONCURRENCY} at a time, the same "
        "body each time (a 768 px JPEG as base64 in the JSON).\n"
    )
    print("| transport | client | CPU ms per call |")
    print("|---|---|---:|")
    for mode in ("plain", "tls"):
        with tempfile.TemporaryDirectory() as tmp:
            proc, base_url, api_key = serve(Path(tmp), mode)
            try:
                ca = None
                if mode == "tls":
                    ca = ssl.create_default_context(cadata=(Path(tmp) / "ca.pem").read_text())
                for client, ms in await measure(base_url, api_key, ca, calls):
                    transport = "http" if mode == "plain" else "TLS"
                    print(f"| {transport} | {client} | {ms:.2f} |", flush=True)
            finally:
                stop_on_eof(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args.calls))
    else:
        uvloop.run(run(args.calls))


if __name__ == "__main__":
    main()
