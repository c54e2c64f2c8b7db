"""The load generator: a closed loop of httpx requests at a fixed concurrency, with time caps.

``concurrency`` workers share one ``httpx.AsyncClient`` (its pool sized to the concurrency) and
each sends requests back to back until ``max_requests`` are issued or ``cap_s`` has passed; the
requests still in flight then get ``drain_s`` before they are cancelled and counted as
``client: cut at cap``. ``max_requests == concurrency`` sends every request at once.
Latency is the client's wall time from sending to the whole response read. Only answered
requests (any HTTP status) and client-side failures are counted, by status or exception name.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# i -> (url, keyword arguments of AsyncClient.post)
RequestMaker = Callable[[int], tuple[str, dict[str, Any]]]
CUT = "client: cut at cap"


@dataclass
class Outcome:
    issued: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of 200 answers
    all_latencies_ms: list[float] = field(default_factory=list)  # of every HTTP answer
    first_errors: dict[str, str] = field(default_factory=dict)  # status -> start of one body
    cached: int = 0  # 200 answers with "cached": true
    server_ms: dict[str, list[int]] = field(default_factory=dict)  # the answer's "timing_ms"
    wall_s: float = 0.0  # from the first request sent to the last answer
    client_cpu_s: float = 0.0  # CPU of the whole bench process meanwhile

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    def record_answer(self, status: int, latency_ms: float, body: bytes) -> None:
        self.statuses[str(status)] += 1
        self.all_latencies_ms.append(latency_ms)
        if status != 200:
            self.first_errors.setdefault(str(status), body[:300].decode("utf-8", "replace"))
            return
        self.latencies_ms.append(latency_ms)
        try:
            data = json.loads(body)
        except ValueError:
            return
        if data.get("cached") is True:
            self.cached += 1
        for key, value in (data.get("timing_ms") or data.get("timing") or {}).items():
            if isinstance(value, int | float):
                self.server_ms.setdefault(key, []).append(int(value))

    def record_failure(self, name: str, detail: str) -> None:
        self.statuses[name] += 1
        self.first_errors.setdefault(name, detail[:300])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summarize(outcome: Outcome) -> dict[str, Any]:
    lat = outcome.latencies_ms
    wall = outcome.wall_s or float("nan")
    return {
        "issued": outcome.issued,
        "ok": outcome.ok,
        "statuses": dict(sorted(outcome.statuses.items())),
        "errors": {k: v for k, v in sorted(outcome.statuses.items()) if k != "200"},
        "first_errors": outcome.first_errors,
        "ok_per_s": round(outcome.ok / wall, 2) if outcome.wall_s else None,
        "p50_ms": _round(percentile(lat, 50)),
        "p90_ms": _round(percentile(lat, 90)),
        "p99_ms": _round(percentile(lat, 99)),
        "max_ms": _round(max(lat) if lat else None),
        "p50_all_answers_ms": _round(percentile(outcome.all_latencies_ms, 50)),
        "cached_true": outcome.cached,
        "server_timing_median_ms": {
            k: statistics.median(v) for k, v in sorted(outcome.server_ms.items())
        },
        "wall_s": round(outcome.wall_s, 2),
        "load_generator_cpu_s": round(outcome.client_cpu_s, 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def closed_loop(
    make: RequestMaker,
    *,
    concurrency: int,
    max_requests: int,
    cap_s: float,
    drain_s: float,
) -> Outcome:
    outcome = Outcome()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # The pool wait counts against the timeout too; the drain cap is the real bound.
    timeout = httpx.Timeout(cap_s + drain_s, connect=cap_s + drain_s)
    last_answer = 0.0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal last_answer
        url, kwargs = make(i)
        outcome.issued += 1
        sent = time.perf_counter()
        try:
            response = await client.post(url, **kwargs)
        except asyncio.CancelledError:
            outcome.record_failure(CUT, f"still in flight {cap_s + drain_s:.0f} s after start")
            raise
        except httpx.HTTPError as exc:
            outcome.record_failure(f"client: {type(exc).__name__}", repr(exc))
            last_answer = time.perf_counter()
            return
        last_answer = time.perf_counter()
        outcome.record_answer(response.status_code, (last_answer - sent) * 1000, response.content)

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        cpu0 = _self_cpu()
        start = time.perf_counter()
        deadline = start + cap_s

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                await one(client, i)

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=cap_s + drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        outcome.wall_s = max(last_answer - start, 0.0)
        outcome.client_cpu_s = _self_cpu() - cpu0
    return outcome
