"""libvips (pyvips) for the work it does measurably faster than Pillow, when it is installed.

Side by side (bench/bench_image.py, docs/decisions.md), libvips decodes and shrinks PNG about 3x
faster than Pillow (a faster inflate, SIMD lanczos3) and writes PNG about 6x faster (no per-row
filter search). Pillow is as fast or faster for JPEG (the same libjpeg-turbo, with DCT scaling),
several times faster for CMYK JPEG, WebP and AVIF, and the only one with an HEVC decoder (HEIC).
So PNG input and PNG output go through libvips when ``pyvips`` imports; without it, or for any
other format, Pillow does everything (image.py), with the same checks and the same results.

Safety, set once per process on first use:

* Only the PNG buffer loader can run: every other loader is blocked, and so is every operation
  libvips marks untrusted. The loader is called by name, so libvips never sniffs our bytes.
* The header checks (bytes, pixels, smallest side) have already run on Pillow's header read,
  so ``prepare_image`` and ``read_header`` refuse exactly the same images; the loader keeps its
  own denial-of-service limits (no ``unlimited``), and ``fail_on="error"`` refuses truncated and
  corrupt files rather than returning partial pixels.
* No operation cache: no input buffer or decoded pixel outlives the call that made it.
* Pixels leave as a fresh NumPy array, so no metadata reaches the encoder; only the ICC profile
  is passed on, for the same sRGB conversion as Pillow's path (imaging.to_srgb).
* pyvips' loggers are held at WARNING: at DEBUG they print operation arguments, image buffers
  included.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

# Our format name -> the one libvips loader it may reach (its class name, for the block list).
LOADERS = {"png": "VipsForeignLoadPngBuffer"}
FORMATS = frozenset(LOADERS)


class VipsError(OSError):
    """libvips refused the image (corrupt, truncated, over a loader limit)."""


@cache
def _vips() -> Any:
    """The configured pyvips module, or None. Imported on first use: the CLI's start-up and
    processes that never prepare an image do not pay for loading libvips."""
    # pyvips logs every argument of every operation at DEBUG, the input buffer included, and
    # libvips' own chatter at INFO: no image byte may reach a log, whatever the app's level.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    try:
        import pyvips
    except (ImportError, OSError):  # not installed, or its shared library does not load
        return None
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in LOADERS.values():
        pyvips.operation_block_set(loader, False)
    pyvips.cache_set_max(0)
    return pyvips


def available() -> bool:
    return _vips() is not None


def _error(exc: Exception) -> VipsError:
    # libvips' message names the loader and the problem; it never contains pixel data.
    first = str(exc).strip().splitlines()
    return VipsError(f"libvips: {first[0] if first else type(exc).__name__}")


def load(data: bytes, fmt: str) -> Any:
    """The image's header (lazy: pixels are decoded, in strips, when something reads them)."""
    vips = _vips()
    try:
        if fmt == "png":
            return vips.Image.pngload_buffer(data, access="sequential", fail_on="error")
    except vips.Error as exc:
        raise _error(exc) from exc
    raise ValueError(f"no libvips loader for {fmt}")


def orientation(img: Any) -> int:
    if not img.get_typeof("orientation"):
        return 1
    value = int(img.get("orientation"))
    return value if 1 <= value <= 8 else 1


def shrink(img: Any, size: tuple[int, int]) -> Any:
    """``img`` turned upright (EXIF orientation), resized to exactly ``size`` (given upright;
    lanczos3, alpha premultiplied, never larger than the source) and 8 bits per sample, held in
    memory: decoded once, however often it is read afterwards."""
    vips = _vips()
    try:
        out = vips.Image.thumbnail_image(img, size[0], height=size[1], size="force")
        return out.copy_memory()
    except vips.Error as exc:
        raise _error(exc) from exc


def to_pillow(img: Any) -> Image.Image:
    """A Pillow image (L, LA, RGB or RGBA) of ``img``'s pixels, carrying only its ICC profile."""
    vips = _vips()
    try:
        pixels = img.numpy()
        icc = bytes(img.get("icc-profile-data")) if img.get_typeof("icc-profile-data") else None
    except vips.Error as exc:
        raise _error(exc) from exc
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    out = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    if icc:
        out.info["icc_profile"] = icc
    return out


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """``img`` (L or RGB) resized to ``size`` with lanczos3 (text), or None if libvips missed
    the size.

    For Pillow-decoded images: the copy in and out costs less than Pillow's Lanczos saves."""
    vips = _vips()
    arr = np.asarray(img)
    height, width = arr.shape[:2]
    bands = 1 if arr.ndim == 2 else arr.shape[2]
    try:
        image = vips.Image.new_from_memory(arr, width, height, bands, "uchar")
        out = image.resize(size[0] / width, vscale=size[1] / height, kernel="lanczos3")
        if (out.width, out.height) != size:
            return None
        pixels = out.numpy()
    except vips.Error as exc:
        raise _error(exc) from exc
    resized = Image.fromarray(pixels if pixels.ndim == 2 or bands > 1 else pixels[..., 0])
    resized.info = dict(img.info)
    return resized


def encode_png(img: Image.Image) -> bytes:
    """PNG at zlib level 1, no filter search, no metadata (``img``: L or RGB)."""
    vips = _vips()
    arr = np.asarray(img)
    bands = 1 if arr.ndim == 2 else arr.shape[2]
    height, width = arr.shape[:2]
    try:
        image = vips.Image.new_from_memory(arr, width, height, bands, "uchar")
        return bytes(image.pngsave_buffer(compression=1, keep="none"))
    except vips.Error as exc:
        raise _error(exc) from exc
