"""The hostile corpus through the engine: ``read_header`` and ``prepare_image`` give a result or
an ``AppError`` of the right kind, never another exception, in bounded time and memory, never
passing on what rode along with the image, and never starting another program."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from alttext.describe.errors import AppError
from alttext.describe.image import PreparedImage, prepare_image, read_header, sniff_format
from tests.hostile.bounds import measured
from tests.hostile.corpus import OK, SUPPORTED_CATEGORIES, Outcome, Sample, avif_over_the_limit

# Pillow warns about what it skips in hostile files (EXIF tags past the end, and the like).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

# The public error code of each refusal (API.md).
CODES = {400: "invalid_image", 413: "image_too_large", 415: "unsupported_media_type"}


def outcome_of(function: Callable[[bytes], Any], data: bytes) -> tuple[Outcome, Any]:
    """``("ok", result)`` or ``(status, error)``; any other exception propagates."""
    try:
        return OK, function(data)
    except AppError as exc:
        return exc.http_status, exc


def check(sample: Sample) -> list[str]:
    """What is wrong with how the engine takes ``sample`` (nothing, if all is well)."""
    problems = []
    for function, allowed in (
        (read_header, sample.header_outcomes),
        (prepare_image, sample.outcomes),
    ):
        with measured() as usage:
            outcome, result = outcome_of(function, sample.data)
        where = f"{sample.name} {function.__name__}"
        if outcome not in allowed:
            problems.append(
                f"{where}: {outcome} ({result}), expected one of {sorted(allowed, key=str)}"
            )
        if isinstance(result, AppError) and result.code != CODES.get(result.http_status):
            problems.append(f"{where}: {result.http_status} with code {result.code}")
        if not usage.within_bounds():
            problems.append(f"{where}: {usage}")
        if isinstance(result, PreparedImage):
            if sample.payload is not None and sample.payload in result.data:
                problems.append(f"{where}: the prepared image carries {sample.payload!r}")
            if result.pixels.mode != "RGB" or min(result.sent_width, result.sent_height) < 1:
                problems.append(f"{where}: prepared as {result.pixels.mode} {result.pixels.size}")
    return problems


@pytest.mark.parametrize("category", list(SUPPORTED_CATEGORIES))
def test_every_sample_is_answered_or_refused_cleanly(
    category: str, no_subprocess: list[str]
) -> None:
    samples = list(SUPPORTED_CATEGORIES[category]())
    assert samples
    problems = [problem for sample in samples for problem in check(sample)]
    assert problems == [], "\n".join(problems)


# What prepare_image answers each sample of these categories: the samples do what their names
# say (a bomb that were taken as corrupt would prove nothing about the size check).
EXPECTED = {
    "png_ihdr_100000x100000": 413,
    "png_ihdr_2147483647_square": 413,
    "png_ihdr_1x2147483647": 413,
    "png_zlib_49_megapixels": OK,
    "gif_65535x65535": 413,
    "webp_vp8_16383x16383": 413,
    "webp_vp8l_16384x16384": 413,
    "webp_vp8x_canvas_16777216_square": 413,
    "tiff_2000000000x65535": 413,
    "heic_ispe_60000x60000": 413,
    "heic_ispe_4294967295_square": 400,  # libheif refuses it itself
    "avif_7100x7100_real": 413,
    "avif_ispe_60000x60000": 400,  # libavif: the AV1 stream says 64x64
    "jpeg_sof_65000x65000": 413,
    "bmp_1000000x1000000": 413,
    "gif_zip": OK,
    "gif_html_script": 400,
    "gif_html_in_comment": OK,
    "jpeg_trailing_php": OK,
    "jpeg_php_in_comment": OK,
    "jpeg_trailing_pdf": OK,
    "png_trailing_html": OK,
    "png_html_in_text_chunk": OK,
    "zip_then_gif": 415,
    "html_then_gif": 415,
    "pdf_then_jpeg": 415,
    "php_then_png": 415,
    "gif_10000_frames": OK,
    "jpeg_exif_full_app1_5000_tags": OK,
    "png_exif_16mb_65535_tags": OK,
    "webp_exif_16mb": OK,
    "jpeg_icc_16mb_255_segments": OK,
    # Pillow refuses PNG text and ICC chunks that inflate past 1 MB (its MAX_TEXT_CHUNK).
    "png_icc_16mb": 400,
    "png_icc_inflating_to_100mb": 400,
    "png_ztxt_inflating_to_100mb": 400,
    "tiff_icc_16mb": OK,
    "webp_icc_16mb": OK,
}


def test_the_corpus_reaches_each_outcome() -> None:
    categories = ("bombs", "polyglots", "many_frames", "huge_metadata")
    samples = [s for c in categories for s in SUPPORTED_CATEGORIES[c]()]
    assert {s.name: outcome_of(prepare_image, s.data)[0] for s in samples} == EXPECTED
    assert outcome_of(read_header, avif_over_the_limit())[0] == 413
    for sample in SUPPORTED_CATEGORIES["unsupported"]():
        assert sniff_format(sample.data) is None, sample.name


def test_ten_thousand_frames_are_one_image() -> None:
    sample = next(iter(SUPPORTED_CATEGORIES["many_frames"]()))
    with Image.open(io.BytesIO(sample.data)) as img:
        assert img.n_frames == 10_000  # the sample really is that long
    prepared = prepare_image(sample.data)
    assert (prepared.width, prepared.height) == (16, 16)


def test_the_guard_refuses_every_way_to_start_a_program(no_subprocess: list[str]) -> None:
    with pytest.raises(PermissionError):
        subprocess.run(["true"], check=False)
    with pytest.raises(PermissionError):
        os.system("true")
    with pytest.raises(PermissionError):
        os.posix_spawn("/bin/true", ["true"], {})
    assert len(no_subprocess) == 3
    no_subprocess.clear()  # seen: the fixture's own check would count them as failures
