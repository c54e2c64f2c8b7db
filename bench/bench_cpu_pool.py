"""The CPU pool on its own: requests that each prepare an image, wait for a model, then run
their checks, through a plain ThreadPoolExecutor and through alttext.runtime.CpuPool.

    python bench/bench_cpu_pool.py [--concurrency 16] [--requests 400] [--model-ms 0,800]

Each simulated request: one "prepare" task (a real Pillow decode and downscale of a ~1 MP JPEG
in the pool), the model's delay on the event loop, then one "check" task in the pool (a smaller
Pillow job). A closed loop of ``concurrency`` clients; latency is arrival to the end of the
check. Prints p50, p99 and p99/p50 per executor: with the plain pool a request's check waits
behind every prepare queued after it; CpuPool runs it first (the request arrived first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alttext.runtime import CpuPool, arrival


def jpeg(width: int, height: int) -> bytes:
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buf = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def prepare(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (768, 768))
        small = im.convert("RGB").resize((768, 480))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85)
    return out.getvalue()


def check(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as im:
        return len(im.convert("L").resize((256, 160)).tobytes())


async def run(
    executor: Executor, image: bytes, concurrency: int, total: int, model_s: float
) -> list[float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    issued = 0

    async def one() -> None:
        with arrival():  # what RequestGuard does for every HTTP request
            started = time.perf_counter()
            prepared = await loop.run_in_executor(executor, prepare, image)
            await asyncio.sleep(model_s)
            await loop.run_in_executor(executor, check, prepared)
            latencies.append((time.perf_counter() - started) * 1000)

    async def client() -> None:
        nonlocal issued
        while issued < total:
            issued += 1
            # Each request in its own context, as each HTTP request is.
            await asyncio.create_task(one(), context=contextvars.copy_context())

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


def row(name: str, model_ms: int, latencies: list[float], wall_s: float) -> str:
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    return (
        f"| {name} | {model_ms} | {len(latencies)} | {len(latencies) / wall_s:.1f} | {p50:.0f} "
        f"| {p99:.0f} | {p99 / p50:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--model-ms", default="0,800")
    args = parser.parse_args()
    workers = os.cpu_count() or 2
    image = jpeg(1280, 800)
    executors: list[tuple[str, Callable[[], Any]]] = [
        ("ThreadPoolExecutor", lambda: ThreadPoolExecutor(workers)),
        ("CpuPool (arrival order)", lambda: CpuPool(workers, 1_000_000)),
    ]
    print(
        f"{args.concurrency} clients, {args.requests} requests, {workers} workers, "
        f"a {len(image) // 1024} KB JPEG\n"
    )
    print("| executor | model ms | requests | req/s | p50 ms | p99 ms | p99÷p50 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model_ms in (int(m) for m in args.model_ms.split(",")):
        for name, build in executors:
            executor = build()
            started = time.perf_counter()
            latencies = asyncio.run(
                run(executor, image, args.concurrency, args.requests, model_ms / 1000)
            )
            wall = time.perf_counter() - started
            executor.shutdown(wait=True)
            print(row(name, model_ms, latencies, wall), flush=True)


if __name__ == "__main__":
    main()
