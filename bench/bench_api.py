"""The service under load: `alttext serve` as real processes, the fake OpenRouter as the model.

    python bench/bench_api.py [--json PATH]      (BENCH_QUICK=1: the short plan)

Scenarios (sizes, concurrencies and time caps in bench/plan.py):
1. a ~1 MP JPEG as a multipart upload (and as JSON base64) at each concurrency, with an
   instant and an 800 ms model, on one and two API processes: ok req/s, p50/p99, errors by
   status, server CPU per request (from /proc) against a thumbnail of the same image;
2. many requests at once against the 800 ms model held by one process;
3. many concurrent ~20 MB uploads: peak RSS of the server and what every client got;
4. an identical request sent twice: the repeat's latency and its ``cached`` field.
Prints Markdown; ``--json`` also writes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.loadgen import closed_loop, summarize
from bench.plan import Plan, cell_cap_s, current
from bench.procstat import RssSampler, cpu_seconds
from bench.stack import FakeModel, Server, Stack, raise_fd_limit

SETTLE_S = 0.5  # idle after a cell, so work finishing after the answers is counted in it


def photo(width: int, height: int, sigma: float = 14.0, seed: int = 0) -> Image.Image:
    """Smooth gradients plus sensor-like noise, so the codec sees something like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 60], axis=-1
    )
    block = rng.normal(0, sigma, (256, 256, 3)).astype(np.float32)
    noise = np.tile(block, (-(-height // 256), -(-width // 256), 1))[:height, :width]
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def upload_photo(megapixels: float) -> tuple[bytes, int, int]:
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    return jpeg(photo(width, height), 90), width, height


def large_jpeg(max_bytes: int) -> tuple[bytes, int, int]:
    """A real, noisy JPEG photo just under ``max_bytes`` (dimensions found by a few tries)."""
    width, height = 4000, 3000
    best: tuple[bytes, int, int] | None = None
    for _ in range(6):
        data = jpeg(photo(width, height, sigma=30), 98)
        if len(data) <= max_bytes and (best is None or len(data) > len(best[0])):
            best = (data, width, height)
        if 0.95 * max_bytes <= len(data) <= max_bytes:
            break
        scale = (0.98 * max_bytes / len(data)) ** 0.5
        width, height = round(width * scale), round(height * scale)
    assert best is not None, "could not make a JPEG under the upload size"
    return best


def thumbnail_timer(data: bytes, long_side: int) -> tuple[str, Callable[[bool, int], float]]:
    """The reference's label and a function giving the median CPU ms of ``runs`` thumbnails of
    the upload (with a JPEG encode when asked): what a request costs at the very least."""
    try:
        import pyvips

        label = f"libvips {pyvips.version(0)}.{pyvips.version(1)} thumbnail_buffer"

        def thumb(encode: bool) -> None:
            image = pyvips.Image.thumbnail_buffer(data, long_side)
            if encode:
                image.jpegsave_buffer(Q=85)
            else:
                image.copy_memory()

    except ImportError:
        import PIL

        label = f"Pillow {PIL.__version__} draft + thumbnail (pyvips not importable)"

        def thumb(encode: bool) -> None:
            with Image.open(io.BytesIO(data)) as img:
                img.draft("RGB", (long_side, long_side))
                img.thumbnail((long_side, long_side))
                if encode:
                    img.save(io.BytesIO(), format="JPEG", quality=85)

    def median_cpu_ms(encode: bool, runs: int) -> float:
        thumb(encode)  # warm-up
        times = []
        for _ in range(runs):
            started = time.process_time()
            thumb(encode)
            times.append((time.process_time() - started) * 1000)
        return statistics.median(times)

    return label, median_cpu_ms


def thumbnail_reference(data: bytes, long_side: int, runs: int) -> dict[str, Any]:
    label, median_cpu_ms = thumbnail_timer(data, long_side)
    return {
        "label": label,
        "long_side": long_side,
        "runs": runs,
        "cpu_ms": round(median_cpu_ms(False, runs), 2),
        "with_encode_cpu_ms": round(median_cpu_ms(True, runs), 2),
    }


class Bench:
    def __init__(self, plan: Plan, stack: Stack, upload: bytes) -> None:
        self.plan = plan
        self.stack = stack
        self.upload = upload
        self.upload_b64 = base64.b64encode(upload).decode()
        self.run_id = uuid.uuid4().hex[:8]
        # The reference is timed again just before and just after each cell, and the cell's
        # ratio uses their mean: over a run of minutes the machine's speed drifts (this VM's
        # thumbnail took 8.6 to 10.8 ms within ten minutes), and a ratio should compare the two
        # at the same moment (bench/report.py shows the cell's own reference).
        self.reference_ms: Callable[[], float] = lambda: 0.0

    def multipart(self, context: str) -> dict[str, Any]:
        return {
            "headers": self.stack.auth,
            "files": {"image": ("photo.jpg", self.upload, "image/jpeg")},
            "data": {"context": context},
        }

    def json_body(self, context: str) -> dict[str, Any]:
        payload = json.dumps({"image": self.upload_b64, "context": context})
        return {
            "headers": {**self.stack.auth, "Content-Type": "application/json"},
            "content": payload.encode(),
        }

    async def warm_up(self, servers: list[Server]) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            for server in servers:
                for i in range(3):
                    r = await client.post(
                        f"{server.url}/v1/alt-text",
                        **self.multipart(f"warm-up {self.run_id} {server.port} {i}"),
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"warm-up answered {r.status_code}: {r.text[:500]}")

    async def idle_cpu_percent(self, servers: list[Server], seconds: float = 3.0) -> list[float]:
        """Each server's CPU while nothing is asked of it (periodic tasks, the event loop)."""
        before = [cpu_seconds(s.pid) for s in servers]
        await asyncio.sleep(seconds)
        used = [cpu_seconds(s.pid) - b for s, b in zip(servers, before, strict=True)]
        return [round(u / seconds * 100, 1) for u in used]

    async def measured(
        self,
        servers: list[Server],
        fake: FakeModel,
        make: Any,
        *,
        concurrency: int,
        max_requests: int,
        cap_s: float,
        drain_s: float,
    ) -> dict[str, Any]:
        reference_before = self.reference_ms()
        pids = [s.pid for s in servers]
        cpu0 = sum(cpu_seconds(p) for p in pids)
        fake0 = cpu_seconds(fake.pid)
        with RssSampler(pids) as rss:
            outcome = await closed_loop(
                make,
                concurrency=concurrency,
                max_requests=max_requests,
                cap_s=cap_s,
                drain_s=drain_s,
            )
            cpu_run = sum(cpu_seconds(p) for p in pids) - cpu0
        await asyncio.sleep(SETTLE_S)
        cpu_all = sum(cpu_seconds(p) for p in pids) - cpu0
        for server in servers:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"alttext serve on port {server.port} died (exit {server.proc.returncode}):"
                    f"\n{server.log_tail()}"
                )
        reference = (reference_before + self.reference_ms()) / 2
        result = summarize(outcome)
        wall = outcome.wall_s
        per_ok = cpu_all * 1000 / outcome.ok if outcome.ok else None
        result.update(
            {
                "server_cpu_s": round(cpu_all, 2),
                "server_cpu_ms_per_ok": None if per_ok is None else round(per_ok, 2),
                "reference_cpu_ms": round(reference, 2),
                "cpu_over_thumbnail": None if per_ok is None else round(per_ok / reference, 2),
                "server_cpu_percent": round(cpu_run / wall * 100, 1) if wall else None,
                "fake_model_cpu_s": round(cpu_seconds(fake.pid) - fake0, 2),
                "load_generator_cpu_percent": round(outcome.client_cpu_s / wall * 100, 1)
                if wall
                else None,
                **rss.summary(),
            }
        )
        return result

    async def cell(
        self,
        servers: list[Server],
        fake: FakeModel,
        *,
        delay: float,
        concurrency: int,
        body: str,
    ) -> dict[str, Any]:
        tag = f"{self.run_id}-{body}-{delay}-{len(servers)}-{concurrency}"
        urls = [f"{s.url}/v1/alt-text" for s in servers]

        def make(i: int) -> tuple[str, dict[str, Any]]:
            url = urls[i % len(urls)]  # round robin over the API processes
            context = f"Benchmark request {tag}-{i}."
            if body == "json":
                return url, self.json_body(context)
            return url, self.multipart(context)

        plan = self.plan
        result = await self.measured(
            servers,
            fake,
            make,
            concurrency=concurrency,
            max_requests=max(plan.cell_min_requests, plan.cell_requests_per_slot * concurrency),
            cap_s=cell_cap_s(plan, concurrency),
            drain_s=plan.drain_cap_s,
        )
        return {
            "model_delay_s": delay,
            "processes": len(servers),
            "concurrency": concurrency,
            "body": body,
            "cap_s": cell_cap_s(plan, concurrency),
            **result,
        }

    async def load(self, fake: FakeModel, servers: list[Server]) -> list[dict[str, Any]]:
        cells = []
        for delay in self.plan.model_delays_s:
            fake.set_delay(delay)
            for processes in self.plan.processes:
                for concurrency in self.plan.concurrencies:
                    cell = await self.cell(
                        servers[:processes],
                        fake,
                        delay=delay,
                        concurrency=concurrency,
                        body="multipart",
                    )
                    log_cell(cell)
                    cells.append(cell)
        fake.set_delay(0)
        for processes, concurrency in self.plan.json_cells:
            cell = await self.cell(
                servers[:processes], fake, delay=0.0, concurrency=concurrency, body="json"
            )
            log_cell(cell)
            cells.append(cell)
        return cells

    async def cache(self, fake: FakeModel, server: Server) -> dict[str, Any]:
        fake.set_delay(self.plan.cache_delay_s)
        first: list[float] = []
        repeat: list[float] = []
        flags: list[tuple[bool, bool]] = []
        url = f"{server.url}/v1/alt-text"
        async with httpx.AsyncClient(timeout=60) as client:
            for r in range(self.plan.cache_rounds):
                kwargs = self.multipart(f"Cache round {self.run_id}-{r}.")
                pair = []
                for times in (first, repeat):
                    started = time.perf_counter()
                    response = await client.post(url, **kwargs)
                    times.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"cache round answered {response.status_code}")
                    pair.append(response.json().get("cached") is True)
                flags.append((pair[0], pair[1]))
        fake.set_delay(0)
        return {
            "model_delay_s": self.plan.cache_delay_s,
            "rounds": self.plan.cache_rounds,
            "first_ms": [round(t, 1) for t in first],
            "repeat_ms": [round(t, 1) for t in repeat],
            "first_median_ms": round(statistics.median(first), 1),
            "repeat_median_ms": round(statistics.median(repeat), 1),
            "first_cached_true": sum(f for f, _ in flags),
            "repeat_cached_true": sum(r for _, r in flags),
        }

    async def flood(self, fake: FakeModel, server: Server) -> dict[str, Any]:
        plan = self.plan
        fake.set_delay(plan.flood_delay_s)
        url = f"{server.url}/v1/alt-text"

        def make(i: int) -> tuple[str, dict[str, Any]]:
            return url, self.multipart(f"Flood {self.run_id}-{i}.")

        result = await self.measured(
            [server],
            fake,
            make,
            concurrency=plan.flood_requests,
            max_requests=plan.flood_requests,
            cap_s=plan.flood_cap_s,
            drain_s=5.0,
        )
        fake.set_delay(0)
        return {"model_delay_s": plan.flood_delay_s, **result}

    async def uploads(self, fake: FakeModel, server: Server) -> dict[str, Any]:
        plan = self.plan
        data, width, height = large_jpeg(plan.upload_bytes)
        fake.set_delay(0)
        url = f"{server.url}/v1/alt-text"

        def make(i: int) -> tuple[str, dict[str, Any]]:
            # A file object, so httpx sends it in chunks (bytes would be sent as one piece and
            # buffered whole per connection in the load generator). BytesIO shares the bytes.
            return url, {
                "headers": self.stack.auth,
                "files": {"image": ("large.jpg", io.BytesIO(data), "image/jpeg")},
                "data": {"context": f"Upload {self.run_id}-{i}."},
            }

        result = await self.measured(
            [server],
            fake,
            make,
            concurrency=plan.upload_clients,
            max_requests=plan.upload_clients,
            cap_s=plan.upload_cap_s,
            drain_s=5.0,
        )
        return {
            "upload_bytes": len(data),
            "upload_mb": len(data) / 1e6,
            "image_width": width,
            "image_height": height,
            **result,
        }


def log_cell(cell: dict[str, Any]) -> None:
    print(
        f"  delay={cell['model_delay_s']} p={cell['processes']} c={cell['concurrency']} "
        f"{cell['body']}: ok={cell['ok']} {cell['ok_per_s']}/s p50={cell['p50_ms']} "
        f"p99={cell['p99_ms']} errors={cell['errors']} cpu/req={cell['server_cpu_ms_per_ok']} ms",
        file=sys.stderr,
        flush=True,
    )


SCENARIOS = ("load", "cache", "flood", "uploads")
LOGS = Path(__file__).resolve().parents[1] / "var" / "bench" / "logs"


async def run(plan: Plan, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    from alttext.config import Settings

    fd_limit = raise_fd_limit()
    upload, width, height = upload_photo(plan.image_megapixels)
    long_side = Settings.model_fields["target_long_side"].default
    reference = thumbnail_reference(upload, long_side, plan.thumbnail_runs)
    started = time.perf_counter()
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="alttext-bench-") as tmp:
        stack = Stack(Path(tmp), LOGS)
        stack.prepare()
        bench = Bench(plan, stack, upload)
        _, timer = thumbnail_timer(upload, long_side)
        bench.reference_ms = lambda: timer(False, plan.thumbnail_runs)
        results: dict[str, Any] = {
            "plan": asdict(plan),
            "image": {
                "width": width,
                "height": height,
                "megapixels": width * height / 1e6,
                "bytes": len(upload),
                "base64_bytes": len(bench.upload_b64),
            },
            "reference": reference,
            "setup_s": stack.setup_s,
            "open_files_limit": fd_limit,
            "server_logs": str(LOGS),
        }
        with stack.fake_model() as fake:
            if "load" in only or "cache" in only:
                with stack.servers(max(plan.processes), fake) as servers:
                    await bench.warm_up(servers)
                    results["idle_server_cpu_percent"] = await bench.idle_cpu_percent(servers)
                    if "load" in only:
                        print("scenario 1: under load", file=sys.stderr, flush=True)
                        results["load"] = await bench.load(fake, servers)
                    if "cache" in only:
                        print("scenario 4: cache", file=sys.stderr, flush=True)
                        results["cache"] = await bench.cache(fake, servers[0])
            if "flood" in only:
                print("scenario 2: flood", file=sys.stderr, flush=True)
                with stack.servers(1, fake) as servers:
                    await bench.warm_up(servers)
                    results["flood"] = await bench.flood(fake, servers[0])
            if "uploads" in only:
                print("scenario 3: large uploads", file=sys.stderr, flush=True)
                with stack.servers(1, fake) as servers:
                    await bench.warm_up(servers)
                    results["uploads"] = await bench.uploads(fake, servers[0])
    results["total_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.targets(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"a comma-separated subset of {SCENARIOS}"
    )
    args = parser.parse_args()
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    # uvloop when installed (uvicorn serves on it too): a lighter load generator.
    try:
        import uvloop
    except ImportError:
        results = asyncio.run(run(current(), only))
        results["load_generator_loop"] = "asyncio"
    else:
        results = uvloop.run(run(current(), only))
        results["load_generator_loop"] = f"uvloop {uvloop.__version__}"
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(report.service_markdown(results))
    print(f"\nTotal service benchmark time {results['total_s']:.0f} s.")


if __name__ == "__main__":
    main()
