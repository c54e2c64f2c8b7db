"""Pixel work on decoded images, whichever library decoded them (image.py, image_vips.py).

Modes, the text-heaviness test, colour to sRGB, flattening transparency and encoding. Everything
here runs on the image after it was shrunk, except :func:`normalise_mode` (on the decode) and
:func:`looks_text_heavy` (on a 256-pixel nearest-neighbour sample of it).
"""

from __future__ import annotations

import io
import math
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageCms

from alttext.describe import image_vips

JPEG_QUALITY = 85
TEXT_SAMPLE = 256  # long side of the sample used to guess "text-heavy"
_NEAREST = Image.Resampling.NEAREST


def normalise_mode(img: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, LA, RGB, RGBA or CMYK, the modes resize handles well."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return img
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode.startswith("I") or mode == "F":
        return _to_8bit(img)
    if mode == "1":
        return img.convert("L")
    if mode in ("La", "RGBa"):
        return img.convert("RGBA")
    return img.convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale high-bit-depth grey to 0..255 (a plain convert clips everything above 255 to white)."""
    arr = np.asarray(img)
    if img.mode == "F":
        peak = 1.0 if float(arr.max(initial=0.0)) <= 1.0 else 255.0
        scaled = np.clip(arr * (255.0 / peak), 0, 255)
    elif img.mode.startswith("I;16") or int(arr.max(initial=0)) > 255:
        scaled = np.clip(arr.astype(np.float32) / 257.0, 0, 255)
    else:
        scaled = np.clip(arr, 0, 255)
    out = Image.fromarray(np.rint(scaled).astype(np.uint8))
    out.info = dict(img.info)
    return out


def looks_text_heavy(img: Image.Image) -> bool:
    """Screenshots, documents, charts: large exactly-flat areas, few colours and sharp edges.

    A nearest-neighbour sample keeps real pixel values (no blur), so a flat background stays
    flat and text strokes stay sharp, while photos show sensor noise and thousands of colours.
    About 1 ms whatever the image's size; the verdict is the same on a JPEG's reduced-size
    decode and on libvips' shrink to the text size as on the full image (checked on the
    evaluation images, at 1x, 2x and 4x, and on screenshots from 720p to 12 MP: docs/decisions.md).
    """
    w, h = img.size
    scale = min(1.0, TEXT_SAMPLE / max(w, h))
    thumb = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), _NEAREST)
    return _text_heavy(np.asarray(thumb.convert("RGB"), dtype=np.int16))


def looks_text_heavy_pixels(pixels: np.ndarray) -> bool:
    """:func:`looks_text_heavy` of decoded pixels (H x W grey, or H x W x 3 in either channel
    order: the test sums channels and counts colours, so order does not change it), sampled
    at exactly the pixels Pillow's nearest-neighbour resize picks (OpenCV's
    INTER_NEAREST_EXACT), so the verdict is the same."""
    h, w = pixels.shape[:2]
    scale = min(1.0, TEXT_SAMPLE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    cv2 = _cv2()
    sample = cv2.resize(pixels, size, interpolation=cv2.INTER_NEAREST_EXACT).astype(np.int16)
    if sample.ndim == 2:
        sample = np.repeat(sample[..., None], 3, axis=2)
    return _text_heavy(sample)


def _text_heavy(rgb: np.ndarray) -> bool:
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        return False
    # Three adds, not sum(axis=2): a reduction over a 3-long axis is ten times slower in NumPy.
    lum = (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) // 3
    dx = np.abs(np.diff(lum, axis=1))
    dy = np.abs(np.diff(lum, axis=0))
    flat = (np.count_nonzero(dx <= 4) + np.count_nonzero(dy <= 4)) / (dx.size + dy.size)
    edges = (np.count_nonzero(dx >= 96) + np.count_nonzero(dy >= 96)) / (dx.size + dy.size)
    q = rgb >> 3  # 5 bits a channel: JPEG noise on a flat background stays in one bin
    keys = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.bincount(keys.ravel())
    # Sorting only the colours in use: sorting all 32768 bins cost more than the rest together.
    top16 = float(np.sort(counts[counts > 0])[-16:].sum()) / keys.size
    return bool(flat >= 0.5 and top16 >= 0.6 and edges >= 0.002)


@cache
def _cv2() -> Any:
    """OpenCV, imported on first use (tens of ms: the CLI's start-up need not pay for it), and
    held to one thread: the CPU pool already runs one image per core, and OpenCV's own
    threads would only contend with it for the same cores."""
    import cv2

    cv2.setNumThreads(1)
    return cv2


def shrink_photo(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A photo (L or RGB) reduced to ``size`` by less than 2x per side: a Gaussian prefilter
    against aliasing (sigma = sqrt(f^2 - 1) / 2 for a reduction by f: the blur that takes a
    pixel's own sigma of 1/2 to the coarser grid's f/2) and bilinear interpolation.

    Under half the CPU of libvips' linear kernel (a 1 MP photo to 768 px: 1.5 against 4.0 ms),
    keeping as much of the detail the smaller image can show, and letting through under half
    of the aliasing that plain sampling would (docs/decisions.md)."""
    out = Image.fromarray(shrink_photo_pixels(np.asarray(img), size))
    out.info = dict(img.info)
    return out


def shrink_photo_pixels(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`shrink_photo` of decoded pixels (H x W, or H x W x channels in any order)."""
    cv2 = _cv2()
    height, width = pixels.shape[:2]
    sigmas = [
        math.sqrt(max(source / target, 1.0) ** 2 - 1.0) / 2
        for source, target in ((width, size[0]), (height, size[1]))
    ]
    # A sigma of 0 would make OpenCV derive one from the kernel size; this one is a no-op.
    sigma_x, sigma_y = (max(sigma, 1e-3) for sigma in sigmas)
    ksize = (_taps(sigma_x), _taps(sigma_y))
    blurred = cv2.GaussianBlur(pixels, ksize, sigmaX=sigma_x, sigmaY=sigma_y)
    resized: np.ndarray = cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR)
    return resized


def decode_jpeg(data: bytes, *, scale: int, grey: bool) -> np.ndarray | None:
    """A JPEG's pixels decoded by OpenCV at 1/``scale`` (1, 2, 4 or 8; the DCT scaling
    Pillow's draft uses): H x W for ``grey``, else H x W x 3 in BGR order. EXIF orientation is
    not applied (the caller does, from the header). None when OpenCV refuses the data, a
    truncated file included: the caller falls back to Pillow, which says why."""
    cv2 = _cv2()
    flags = {
        (1, False): cv2.IMREAD_COLOR,
        (2, False): cv2.IMREAD_REDUCED_COLOR_2,
        (4, False): cv2.IMREAD_REDUCED_COLOR_4,
        (8, False): cv2.IMREAD_REDUCED_COLOR_8,
        (1, True): cv2.IMREAD_GRAYSCALE,
        (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
        (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4,
        (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8,
    }[(scale, grey)]
    try:
        pixels: np.ndarray | None = cv2.imdecode(
            np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION
        )
    except cv2.error:
        return None
    return pixels


def rgb_from_bgr(pixels: np.ndarray) -> np.ndarray:
    """BGR to RGB (grey passes through), as a new contiguous array."""
    if pixels.ndim == 2:
        return pixels
    converted: np.ndarray = _cv2().cvtColor(pixels, _cv2().COLOR_BGR2RGB)
    return converted


def _taps(sigma: float) -> int:
    """The Gaussian's width in pixels: the fewest taps whose cut-off tails each weigh under
    1/512 of the kernel. Three up to sigma 0.58 (a reduction by up to 1.53x), five up to 0.87
    (just under 2x): within 3 levels of OpenCV's default six-sigma kernel on photos, noise
    and stripes, for a third less CPU at 1.5x (0.8 against 1.2 ms for 1 MP)."""
    if sigma <= 0.58:
        return 3
    if sigma <= 0.87:
        return 5
    return 2 * math.ceil(3 * sigma) + 1


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(img: Image.Image) -> Image.Image:
    """Convert to RGB/RGBA in sRGB, through the embedded ICC profile when it is not sRGB."""
    target = "RGBA" if img.mode in ("RGBA", "LA") else "RGB"
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if "srgb" not in ImageCms.getProfileDescription(profile).lower():
                out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
                converted = ImageCms.profileToProfile(img, profile, _srgb(), outputMode=out_mode)
                if converted is not None:
                    img = converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # A broken or mismatched profile: the naive conversion below is close enough.
    if img.mode != target:
        img = img.convert(target)
    img.info = {}  # nothing of the source's metadata may reach the encoder
    return img


def flatten(img: Image.Image) -> Image.Image:
    """Composite RGBA onto a background the visible content stands out from."""
    alpha = img.getchannel("A")
    lo, _ = alpha.getextrema()
    if lo == 255:
        return img.convert("RGB")
    rgba = np.asarray(img, dtype=np.float32)
    weight = rgba[..., 3] / 255.0
    lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    visible = float(weight.sum())
    light = visible > 0 and float((lum * weight).sum()) / visible > 200
    background = Image.new("RGB", img.size, (40, 40, 40) if light else (255, 255, 255))
    background.paste(img, mask=alpha)
    return background


def encode(img: Image.Image, *, png: bool) -> bytes:
    """JPEG q85 or PNG at zlib level 1, from RGB pixels with no metadata attached.

    No ``optimize`` anywhere: for JPEG its second pass saved 6-25 % of ~30-80 kB for 10-60 % of
    the encode time; for PNG, flat screenshots gain nothing from a deep search, and a photo
    with transparency (a product cut-out) took 97 ms at ``optimize`` against 32 ms at level 1.
    PNG goes through libvips when it is installed: 6 ms instead of 42 ms at 1536x1152 (it skips
    Pillow's per-row adaptive filter search, for ~30 % more bytes)."""
    # Grey content (text on white, scans) encodes to about a third of the bytes as one channel.
    src = img.getchannel("R") if _is_grey(img) else img
    if png and image_vips.available():
        return image_vips.encode_png(src)
    out = io.BytesIO()
    if png:
        src.save(out, format="PNG", compress_level=1)
    else:
        src.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _is_grey(img: Image.Image) -> bool:
    """R == G == B everywhere. A 64-pixel-wide sample rejects colour images at once."""
    sample = np.asarray(img.resize((64, max(1, 64 * img.height // img.width)), _NEAREST))
    if not (
        np.array_equal(sample[..., 0], sample[..., 1])
        and np.array_equal(sample[..., 1], sample[..., 2])
    ):
        return False
    r, g, b = img.split()
    return ImageChops.difference(r, g).getbbox() is None and (
        ImageChops.difference(g, b).getbbox() is None
    )
