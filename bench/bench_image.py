"""Benchmark prepare_image on realistic inputs and print a Markdown table.

    python bench/bench_image.py [--runs N]

Inputs are generated in memory (nothing is read from or written to disk). Columns:
median/min wall time of ``prepare_image`` over N runs; "py peak" is tracemalloc's peak during
one call (Python objects and NumPy arrays; Pillow's C pixel buffers are invisible to it);
"RSS peak" is the growth of the resident set during one call in a fresh interpreter (Linux only),
which does include Pillow's buffers. Takes well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alttext.describe.image import PreparedImage, prepare_image

SRC = Path(__file__).resolve().parents[1] / "src"
MIB = 1024 * 1024
CASE_BUDGET_S = 4.0


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus sensor-like noise, so codecs see something like a real photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 60], axis=-1
    )
    block = rng.normal(0, 14, (256, 256, 3)).astype(np.float32)
    noise = np.tile(block, (-(-height // 256), -(-width // 256), 1))[:height, :width]
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def screenshot(width: int, height: int) -> Image.Image:
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=28)
    draw.rectangle((0, 0, width, 80), fill=(32, 60, 120))
    draw.rectangle((0, 80, 360, height), fill=(240, 240, 244))
    line = "Quarterly report: revenue grew 12% while costs fell; see table 3 for details. "
    for row, y in enumerate(range(120, height - 40, 40)):
        draw.text((400, y), line[: 40 + (row * 13) % 40], fill="black", font=font)
        draw.text((20, y), f"Menu item {row}", fill=(40, 40, 40), font=font)
    return img


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


@cache
def photo_12mp() -> Image.Image:
    return photo(4000, 3000)


def cases() -> list[tuple[str, Callable[[], bytes]]]:
    out: list[tuple[str, Callable[[], bytes]]] = [
        ("12 MP JPEG photo (4000x3000)", lambda: encode(photo_12mp(), "JPEG", quality=90)),
        ("12 MP PNG screenshot (4000x3000)", lambda: encode(screenshot(4000, 3000), "PNG")),
        ("~5 MB PNG photo (2048x1536)", lambda: encode(photo(2048, 1536), "PNG")),
    ]
    try:
        import pillow_heif  # noqa: F401  (imported by alttext.describe.image; registers HEIF)

        out.append(
            (
                "12 MP HEIC photo (4000x3000)",
                lambda: encode(
                    photo_12mp(), "HEIF", quality=50, enc_params={"preset": "ultrafast"}
                ),
            )
        )
    except ImportError:
        pass
    if features.check("avif"):
        out.append(
            (
                "12 MP AVIF photo (4000x3000)",
                lambda: encode(photo_12mp(), "AVIF", quality=60, speed=10),
            )
        )
    return out


RSS_CHILD = """
import sys
from alttext.describe.image import prepare_image

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))

data = sys.stdin.buffer.read()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark to the current resident set
before = status("VmRSS:")
prepare_image(data)
print(status("VmHWM:") - before)
"""


def rss_peak_mib(data: bytes) -> str:
    """Resident-set growth during one call, in a fresh interpreter (Linux /proc only)."""
    if not Path("/proc/self/clear_refs").exists():
        return "n/a"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", RSS_CHILD],
            input=data,
            capture_output=True,
            env=env,
            timeout=60,
            check=True,
        )
        return f"{int(done.stdout) / 1024:.0f}"
    except (subprocess.SubprocessError, ValueError, OSError):
        return "n/a"


def measure(data: bytes, runs: int) -> tuple[PreparedImage, list[float], float]:
    # The traced call doubles as the warm-up (plugin imports, ICC profile cache, code paths).
    tracemalloc.start()
    prepared = prepare_image(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times: list[float] = []
    spent = 0.0
    # At least 3 runs; slow decoders (HEIC, AVIF) stop early so the whole bench stays < 60 s.
    while len(times) < runs and (len(times) < 3 or spent < CASE_BUDGET_S):
        start = time.perf_counter()
        prepared = prepare_image(data)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return prepared, [t * 1000 for t in times], peak / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per input (median)")
    args = parser.parse_args()

    started = time.perf_counter()
    print(f"prepare_image, median of {args.runs} runs, {os.cpu_count()} CPUs\n")
    print(
        "| input | input bytes | sent | sent bytes | mime | text-heavy "
        "| runs | median ms | min ms | py peak MiB | RSS peak MiB |"
    )
    print("|---|---:|---|---:|---|---|---:|---:|---:|---:|---:|")
    for name, make in cases():
        data = make()
        prepared, times, py_peak = measure(data, args.runs)
        print(
            f"| {name} | {len(data):,} | {prepared.sent_width}x{prepared.sent_height} "
            f"| {len(prepared.data):,} | {prepared.mime} | {prepared.text_heavy} "
            f"| {len(times)} | {statistics.median(times):.0f} | {min(times):.0f} | {py_peak:.1f} "
            f"| {rss_peak_mib(data)} |",
            flush=True,
        )
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
