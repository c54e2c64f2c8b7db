"""Benchmark the offline engine (OcrReader + LocalProvider) and print a Markdown table.

    python bench/bench_local.py [--runs N] [--threads T]

Rows: the one-off ``OcrReader()`` load (model sessions plus warm-up read), then the median and
min wall time of ``LocalProvider.complete`` per image (OCR, pixel statistics and wording) on a
768x432 text image and a 768x512 photo-like image, and the same two images sent by two
concurrent requests (time per pair). Images are generated in memory. Well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alttext.describe.classify import ImageClassifier
from alttext.describe.ocr import OcrReader, default_threads
from alttext.describe.providers.base import ModelRequest
from alttext.describe.providers.local import LocalProvider
from alttext.describe.types import DescribeOptions


def text_image() -> Image.Image:
    img = Image.new("RGB", (768, 432), "white")
    pen = ImageDraw.Draw(img)
    for y, line, size in [
        (50, "Hello Trail 2025", 48),
        (170, "Spring sale on all running shoes", 32),
        (260, "Free returns within 30 days", 28),
        (340, "Terms apply, see the small print", 18),
    ]:
        pen.text((40, y), line, font=ImageFont.load_default(size=size), fill="black")
    return img


def photo_image() -> Image.Image:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:768]
    fields = np.stack([xx / 3 % 256, yy / 2 % 256, (xx + yy) / 5 % 256], axis=-1)
    grain = rng.integers(0, 40, size=(512, 768, 3))
    return Image.fromarray(np.clip(fields + grain, 0, 255).astype(np.uint8))


def request(image: Image.Image) -> ModelRequest:
    return ModelRequest(
        system="", user="", image=b"", mime="image/png", options=DescribeOptions(), pixels=image
    )


async def timed(provider: LocalProvider, images: list[Image.Image], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await asyncio.gather(*(provider.complete(request(img)) for img in images))
        times.append(time.perf_counter() - start)
    return times


def row(name: str, times: list[float]) -> dict[str, object]:
    return {
        "input": name,
        "runs": len(times),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "min_ms": round(min(times) * 1000, 1),
    }


def row_text(r: dict[str, object]) -> str:
    return f"| {r['input']} | {r['runs']} | {r['median_ms']:.0f} | {r['min_ms']:.0f} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="ONNX intra-op threads")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()

    start = time.perf_counter()
    reader = OcrReader(threads=args.threads)
    load = time.perf_counter() - start
    start = time.perf_counter()
    classifier = ImageClassifier()
    classifier_load = time.perf_counter() - start
    text, photo = text_image(), photo_image()
    threads = args.threads or default_threads()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        provider = LocalProvider(reader, pool, classifier)
        reply = await provider.complete(request(text))
        rows = [
            row("text 768x432", await timed(provider, [text], args.runs)),
            row("photo-like 768x512", await timed(provider, [photo], args.runs)),
            row("text + photo, 2 concurrent", await timed(provider, [text, photo], args.runs)),
        ]
    print(f"Offline engine, {os.cpu_count()} cores, {threads} ONNX thread(s) per session\n")
    print(f"OcrReader load (sessions + warm-up): {load * 1000:.0f} ms")
    print(f"ImageClassifier load: {classifier_load * 1000:.0f} ms\n")
    print("| input | runs | median ms | min ms |")
    print("|---|---|---|---|")
    print("\n".join(row_text(r) for r in rows))
    print(f"\nSample reply for the text image: {reply.content}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cpu_count": os.cpu_count(),
                    "onnx_threads": threads,
                    "ocr_reader_load_ms": round(load * 1000, 1),
                    "classifier_load_ms": round(classifier_load * 1000, 1),
                    "rows": rows,
                    "sample_reply": reply.content,
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
