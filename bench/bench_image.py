"""Benchmark image preparation side by side with naive Pillow and libvips; print Markdown tables.

    python bench/bench_image.py [--runs N] [--no-ocr] [--no-memory]

Inputs are generated in memory (nothing is read from or written to disk). Three pipelines do the
same job on each input, interleaved run by run so machine load hits them alike:

* **ours**: ``prepare_image`` (decode, limits, orientation, colour, text test, downscale, encode);
* **naive Pillow**: open, ``convert("RGB")``, ``resize`` LANCZOS to the size we send, save in the
  format we send (JPEG q85, or PNG at zlib level 1);
* **libvips**: ``thumbnail_buffer`` to the size we send (shrink-on-load, lanczos3, colour to
  sRGB, autorotate), saved the same way with no metadata. Skipped with a note when pyvips is not
  installed; HEIC shows n/a when libvips has no HEVC decoder (pyvips-binary ships none).

"ms" is the median wall time and "CPU" the median process CPU time of a call (all threads:
libvips decodes in a thread pool, so its wall time can be below its CPU time). Ratios are of
medians. "RSS peak" is the growth of the resident set during one call in a fresh interpreter
(Linux only), which includes the decoders' C buffers. Image tokens: Qwen2.5-VL bills one token
per 28x28 patch (ceil(w/28)*ceil(h/28)); Gemini 258 tokens for an image up to 384 px, else 258
per 768x768 tile. OCR similarity (text images): character similarity (difflib ratio) of the
local OCR's reading of the prepared pixels against its reading of the original at full size.
"""

from __future__ import annotations

import argparse
import difflib
import io
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
sys.path[:0] = [str(SRC), str(BENCH.parent)]

from alttext.describe import image_vips  # noqa: E402
from alttext.describe.image import prepare_image  # noqa: E402
from bench.plan import is_quick  # noqa: E402

MIB = 1024 * 1024
CASE_BUDGET_S = 6.0  # per input, all three pipelines: slow decoders stop after 3 runs


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


def screenshot(width: int, height: int, size: int = 28) -> Image.Image:
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=size)
    step = round(size * 1.45)
    draw.rectangle((0, 0, width, size * 3), fill=(32, 60, 120))
    draw.rectangle((0, size * 3, width // 8, height), fill=(240, 240, 244))
    lines = [
        "Quarterly report: revenue grew 12% while costs fell; see table 3 for details.",
        "Invoice 2024-0173 paid on 12 March by bank transfer, reference ACME-88.",
        "Shipping address: 42 Harbour Street, Leith EH6 6QJ, United Kingdom.",
    ]
    for row, y in enumerate(range(size * 4, height - step, step)):
        draw.text((width // 8 + size, y), lines[row % 3][: 40 + (row * 13) % 40], "black", font)
        draw.text((size // 2, y), f"Menu item {row}", fill=(40, 40, 40), font=font)
    return img


def page(width: int, height: int, size: int) -> Image.Image:
    """A printed page as a scanner sees it: dark grey text on off-white, wide margins."""
    img = Image.new("RGB", (width, height), (250, 250, 246))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=size)
    text = "minutes of the meeting held on tuesday the committee agreed to review the budget "
    words = (text + "and publish the annual report by march once it is audited").split()
    margin, y, i = width // 12, height // 14, 0
    while y < height - height // 14:
        draw.text(
            (margin, y), " ".join(words[(i + k) % len(words)] for k in range(9)), (25,) * 3, font
        )
        y, i = y + round(size * 1.6), i + 5
    return img


def banner_frames(width: int, height: int, n: int) -> list[Image.Image]:
    """An animated web banner: flat colours, a moving shape, a line of text."""
    font = ImageFont.load_default(size=height // 10)
    frames = []
    for k in range(n):
        img = Image.new("RGB", (width, height), (250, 200, 40))
        draw = ImageDraw.Draw(img)
        x = k * width // n
        draw.ellipse((x, height // 3, x + height // 3, 2 * height // 3), fill=(200, 30, 60))
        draw.text((width // 10, height // 10), "Summer sale: 30% off", (20, 20, 20), font)
        frames.append(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64))
    return frames


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def animated_gif() -> bytes:
    first, *rest = banner_frames(1200, 600, 8)
    return encode(first, "GIF", save_all=True, append_images=rest, duration=80, loop=0)


@cache
def photo_12mp() -> Image.Image:
    return photo(4000, 3000)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    text: bool = False  # measure OCR similarity


def cases() -> list[Case]:
    out = [
        Case("12 MP JPEG photo (4000x3000)", lambda: encode(photo_12mp(), "JPEG", quality=90)),
        Case("1 MP JPEG photo (1152x864)", lambda: encode(photo(1152, 864), "JPEG", quality=90)),
        Case(
            "CMYK JPEG photo (2400x1600)",
            lambda: encode(photo(2400, 1600).convert("CMYK"), "JPEG", quality=90),
        ),
        Case(
            "A4 page scan, JPEG (2480x3508)",
            lambda: encode(page(2480, 3508, 42), "JPEG", quality=85),
            text=True,
        ),
        Case(
            "12 MP PNG screenshot (4000x3000)",
            lambda: encode(screenshot(4000, 3000), "PNG"),
            text=True,
        ),
        Case(
            "4K PNG screenshot, 24 px text (3840x2160)",
            lambda: encode(screenshot(3840, 2160, 24), "PNG"),
            text=True,
        ),
        Case("PNG photo (2048x1536)", lambda: encode(photo(2048, 1536), "PNG")),
        Case("WebP photo (3000x2000)", lambda: encode(photo(3000, 2000), "WEBP", quality=80)),
        Case("animated GIF banner, 8 frames (1200x600)", animated_gif),
        Case(
            "12 MP HEIC photo (4000x3000)",
            lambda: encode(photo_12mp(), "HEIF", quality=50, enc_params={"preset": "ultrafast"}),
        ),
    ]
    if features.check("avif"):
        out.append(
            Case(
                "12 MP AVIF photo (4000x3000)",
                lambda: encode(photo_12mp(), "AVIF", quality=60, speed=10),
            )
        )
    return out


# --- the three pipelines ------------------------------------------------------------------------


def ours(data: bytes, size: tuple[int, int], png: bool) -> bytes:
    return prepare_image(data).data


def naive_pillow(data: bytes, size: tuple[int, int], png: bool) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return encode(img, "PNG", compress_level=1) if png else encode(img, "JPEG", quality=85)


@cache
def vips() -> Any:
    """pyvips for the reference pipeline, or None when it (or its libvips) is not installed."""
    try:
        import pyvips  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except (ImportError, OSError):
        return None
    # Ours (image_vips) blocks, process-wide and on first use, every libvips loader but PNG's.
    # The reference needs the others (JPEG, WebP, GIF, AVIF): let ours set up first, then open
    # the loaders again for the whole process (untrusted operations stay blocked). Ours calls
    # its loader by name, so this changes nothing it does.
    image_vips.available()
    pyvips.operation_block_set("VipsForeignLoad", False)
    pyvips.block_untrusted_set(True)
    pyvips.cache_set_max(0)  # no operation cache: each run decodes, as a server would
    return pyvips


def libvips(data: bytes, size: tuple[int, int], png: bool) -> bytes:
    img = vips().Image.thumbnail_buffer(data, size[0], height=size[1], size="down")
    if png:
        return bytes(img.pngsave_buffer(compression=1, keep="none"))
    return bytes(img.jpegsave_buffer(Q=85, keep="none"))


PIPELINES: dict[str, Callable[[bytes, tuple[int, int], bool], bytes]] = {
    "ours": ours,
    "naive": naive_pillow,
    "libvips": libvips,
}


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Timings:
    wall: list[float]
    cpu: list[float]
    error: str | None = None

    def median(self) -> float:
        return statistics.median(self.wall)

    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def time_side_by_side(
    data: bytes, size: tuple[int, int], png: bool, names: list[str], runs: int
) -> dict[str, Timings]:
    """Round-robin runs of every pipeline (after one warm-up each), at least 3 each."""
    out: dict[str, Timings] = {}
    for name in names:
        try:
            PIPELINES[name](data, size, png)
            out[name] = Timings([], [])
        except Exception as exc:  # a decoder libvips lacks (HEVC): shown as n/a
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            out[name] = Timings([], [], error=" / ".join(lines)[:200] or type(exc).__name__)
    live = [name for name in names if out[name].error is None]
    spent, done = 0.0, 0
    while done < runs and (done < 3 or spent < CASE_BUDGET_S):
        for name in live:
            wall, cpu = time.perf_counter(), time.process_time()
            PIPELINES[name](data, size, png)
            out[name].wall.append((time.perf_counter() - wall) * 1000)
            out[name].cpu.append((time.process_time() - cpu) * 1000)
            spent += out[name].wall[-1] / 1000
        done += 1
    return out


RSS_CHILD = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import bench_image

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))

name, width, height, png = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
bench_image.vips()  # load libvips (ours uses it too) before the baseline: code, not image memory
data = sys.stdin.buffer.read()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark to the current resident set
before = status("VmRSS:")
bench_image.PIPELINES[name](data, (width, height), png)
print(status("VmHWM:") - before)
"""


def rss_peak_mib(name: str, data: bytes, size: tuple[int, int], png: bool) -> str:
    """Resident-set growth during one call, in a fresh interpreter (Linux /proc only)."""
    if not Path("/proc/self/clear_refs").exists():
        return "n/a"
    args = [str(BENCH), str(SRC), name, str(size[0]), str(size[1]), "1" if png else "0"]
    try:
        done = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, *args],
            input=data,
            capture_output=True,
            timeout=120,
            check=True,
        )
        return f"{int(done.stdout) / 1024:.0f}"
    except (subprocess.SubprocessError, ValueError, OSError):
        return "n/a"


def qwen_tokens(width: int, height: int) -> int:
    return math.ceil(width / 28) * math.ceil(height / 28)


def gemini_tokens(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


@cache
def ocr_readers() -> tuple[Any, Any]:
    """The local OCR twice: capped at our text size as in a request, and uncapped for originals."""
    from alttext.describe.ocr import OcrReader

    return OcrReader(), OcrReader(max_side=1 << 16)


def ocr_similarity(original: bytes, prepared: Image.Image) -> tuple[float, int]:
    """(similarity, characters read in the original)."""
    capped, uncapped = ocr_readers()
    source = Image.open(io.BytesIO(original)).convert("RGB")
    want = " ".join(line.text for line in uncapped.read(source))
    got = " ".join(line.text for line in capped.read(prepared))
    return difflib.SequenceMatcher(None, got, want, autojunk=False).ratio(), len(want)


def cells(t: Timings | None) -> tuple[str, str]:
    """Median wall and CPU ms, or n/a (pipeline failed) / - (not run)."""
    if t is None:
        return "-", "-"
    if t.error:
        return "n/a", "n/a"
    return f"{t.median():.0f}", f"{t.median_cpu():.0f}"


def ratios(a: Timings, b: Timings | None) -> tuple[str, str]:
    if b is None:
        return "-", "-"
    if a.error or b.error:
        return "n/a", "n/a"
    return f"{a.median() / b.median():.2f}", f"{a.median_cpu() / b.median_cpu():.2f}"


@dataclass
class Row:
    case: Case
    data: bytes
    prepared: Any
    times: dict[str, Timings]
    peaks: dict[str, str]
    ocr: tuple[float, int] | None


def measure_case(case: Case, names: list[str], runs: int, memory: bool, ocr: bool) -> Row:
    data = case.make()
    prepared = prepare_image(data)
    size, png = (prepared.sent_width, prepared.sent_height), prepared.mime == "image/png"
    times = time_side_by_side(data, size, png, names, runs)
    peaks = {
        name: "n/a" if times[name].error else rss_peak_mib(name, data, size, png)
        for name in (names if memory else [])
    }
    similarity = ocr_similarity(data, prepared.pixels) if case.text and ocr else None
    return Row(case, data, prepared, times, peaks, similarity)


def print_tables(rows: list[Row], names: list[str], runs: int) -> None:
    vips_on = "libvips" in names
    print(
        f"Side by side in one run on {os.cpu_count()} CPUs: for each input, up to {runs} "
        "interleaved runs of each pipeline. ms = median wall time; CPU = median CPU time of "
        "the call, all threads (the fairer measure of server cost: libvips decodes in a "
        "thread pool, and the machine may be busy).\n"
    )
    print(
        "| input | runs | ours ms | naive Pillow ms | libvips ms | ours/libvips | ours/naive "
        "| ours CPU ms | naive CPU ms | libvips CPU ms | ours/libvips CPU | ours/naive CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        t = row.times
        ours_ms, ours_cpu = cells(t["ours"])
        naive_ms, naive_cpu = cells(t["naive"])
        vips_ms, vips_cpu = cells(t.get("libvips"))
        by_vips, by_vips_cpu = ratios(t["ours"], t.get("libvips"))
        by_naive, by_naive_cpu = ratios(t["ours"], t["naive"])
        print(
            f"| {row.case.name} | {len(t['ours'].wall)} | {ours_ms} | {naive_ms} | {vips_ms} "
            f"| {by_vips} | {by_naive} | {ours_cpu} | {naive_cpu} | {vips_cpu} "
            f"| {by_vips_cpu} | {by_naive_cpu} |"
        )
    if not vips_on:
        print(
            "\nlibvips columns skipped: pyvips is not installed "
            "(`uv pip install pyvips pyvips-binary`); ours then runs on Pillow alone."
        )
    for row in rows:
        for name, timing in row.times.items():
            if timing.error:
                print(f"\n{name} cannot read the {row.case.name}: {timing.error}")

    print("\nMemory and what is sent (ours)\n")
    print(
        "| input | ours RSS peak MiB | naive RSS peak MiB | libvips RSS peak MiB "
        "| input bytes | sent | sent bytes | mime | text-heavy |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---|---|")
    for row in rows:
        p = row.prepared
        peaks = [row.peaks.get(name, "-") for name in ("ours", "naive", "libvips")]
        print(
            f"| {row.case.name} | {' | '.join(peaks)} | {len(row.data):,} "
            f"| {p.sent_width}x{p.sent_height} | {len(p.data):,} | {p.mime} | {p.text_heavy} |"
        )

    print("\nImage tokens (original -> sent) and legibility\n")
    print(
        "| input | Qwen2.5-VL original | Qwen2.5-VL sent | times fewer "
        "| Gemini original | Gemini sent | OCR similarity | OCR chars |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        p = row.prepared
        before, after = qwen_tokens(p.width, p.height), qwen_tokens(p.sent_width, p.sent_height)
        gemini = gemini_tokens(p.width, p.height), gemini_tokens(p.sent_width, p.sent_height)
        similarity, chars = (f"{row.ocr[0]:.3f}", f"{row.ocr[1]:,}") if row.ocr else ("-", "-")
        print(
            f"| {row.case.name} | {before:,} | {after:,} | {before / after:.1f} "
            f"| {gemini[0]:,} | {gemini[1]:,} "
            f"| {similarity} | {chars} |"
        )


def print_targets(rows: list[Row]) -> None:
    """Issue 13's targets, from the rows above."""
    jpeg = next(r for r in rows if r.case.name.startswith("12 MP JPEG"))
    lines = []
    if "libvips" in jpeg.times and not jpeg.times["libvips"].error:
        wall, cpu = ratios(jpeg.times["ours"], jpeg.times["libvips"])
        met = float(cpu) <= 1.1
        lines.append(("12 MP JPEG: ours/libvips thumbnail <= 1.1", f"{wall} ({cpu} CPU)", met))
    wall, cpu = ratios(jpeg.times["ours"], jpeg.times["naive"])
    lines.append(
        ("12 MP JPEG: >= 3x faster than naive Pillow", f"{wall} ({cpu} CPU)", float(cpu) <= 1 / 3)
    )
    p = jpeg.prepared
    fewer = qwen_tokens(p.width, p.height) / qwen_tokens(p.sent_width, p.sent_height)
    lines.append(("12 MP JPEG: >= 10x fewer Qwen2.5-VL tokens", f"{fewer:.1f}x", fewer >= 10))
    legible = [r for r in rows if r.ocr]
    if legible:
        low = min(legible, key=lambda r: r.ocr[0] if r.ocr else 1.0)
        value = low.ocr[0] if low.ocr else 1.0
        lines.append(
            (
                "text images: OCR similarity >= 0.95",
                f"lowest {value:.3f} ({low.case.name})",
                value >= 0.95,
            )
        )
    print("\nTargets (issue 13)\n")
    print("| target | measured | met |")
    print("|---|---|---|")
    for target, measured, met in lines:
        print(f"| {target} | {measured} | {'yes' if met else 'no'} |")


def main() -> None:
    quick = is_quick()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=3 if quick else 7, help="timed runs per input (median)"
    )
    parser.add_argument("--no-ocr", action="store_true", help="skip the OCR similarity")
    parser.add_argument(
        "--no-memory", action="store_true", default=quick, help="skip the RSS peaks"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    names = ["ours", "naive"] + (["libvips"] if vips() is not None else [])
    rows = []
    for case in cases():
        rows.append(measure_case(case, names, args.runs, not args.no_memory, not args.no_ocr))
        print(f"done: {case.name}", file=sys.stderr, flush=True)
    print_tables(rows, names, args.runs)
    print_targets(rows)
    print(f"\ntotal benchmark time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
