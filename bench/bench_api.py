"""End-to-end service overhead: POST /v1/alt-text through the whole app (auth, limits, credits,
image preparation, rules, metering) against an instant fake model, and with the offline engine.

Run: python bench/bench_api.py   (prints a Markdown table; about 30 s)
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, openrouter_settings, running_service
from tests.fakes.openrouter import run_fake_openrouter

from alttext.migrate import upgrade


def photo(width: int, height: int) -> bytes:
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buf = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


async def run_case(
    label: str, settings: dict[str, object], db: str, image: bytes, n: int, concurrency: int
) -> str:
    async with running_service(make_settings(db, **settings)) as svc:  # type: ignore[arg-type]
        acct = await svc.create_account(f"{label.replace(' ', '-')}@bench.example", credits=n + 10)
        sem = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def one() -> None:
            async with sem:
                started = time.perf_counter()
                r = await svc.client.post(
                    "/v1/alt-text", headers=acct.headers, files={"image": ("a.jpg", image)}
                )
                assert r.status_code == 200, r.text
                latencies.append((time.perf_counter() - started) * 1000)

        await one()  # warm-up
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - started
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    return (
        f"| {label} | {len(image) // 1024} KB | {n} | {concurrency} | "
        f"{statistics.median(latencies):.0f} | {p95:.0f} | {n / wall:.1f} |"
    )


async def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, run_fake_openrouter() as fake:
        db_path = Path(tmp) / "bench.db"
        db = f"sqlite+aiosqlite:///{db_path}"
        await asyncio.to_thread(upgrade, db)
        big = photo(4000, 3000)
        small = photo(1024, 768)
        remote = openrouter_settings(
            fake, rate_limit_per_minute=100_000, max_concurrent_per_account=1000
        )
        local = {"provider": "local", "rate_limit_per_minute": 100_000}
        rows.append(await run_case("instant model, 12 MP JPEG", remote, db, big, 40, 4))
        rows.append(await run_case("instant model, 0.8 MP JPEG", remote, db, small, 100, 8))
        rows.append(await run_case("offline engine, 0.8 MP JPEG", local, db, small, 30, 2))
    print(f"POST /v1/alt-text end to end, SQLite, {os.cpu_count()} cores\n")
    print("| case | image | requests | concurrency | median ms | p95 ms | requests/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
