"""Image preparation, all in memory: sniff, check limits, decode once, orient, downscale, re-encode.

Choices worth knowing (see the function docstrings for the why):

* The format comes from the leading bytes only; a file name or Content-Type is never consulted.
* Limits are checked on the header (``Image.open`` reads no pixels) before anything is decoded.
* Colour: an embedded non-sRGB ICC profile is converted to sRGB with LittleCMS; a broken profile is
  ignored. The output never carries a profile, EXIF, XMP, comments or text chunks.
* Transparency is flattened onto a background that contrasts with the visible content (white, or
  dark grey for light content such as a white logo), because several vision models render
  transparent pixels as black and local OCR ignores alpha. ``pixels`` is therefore always RGB.
* Output: PNG (lossless) for text-heavy images from lossless sources and for images that had
  transparency; JPEG quality 85 otherwise (re-encoding a lossy source as PNG only bloats it).
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from functools import cache

import numpy as np
import pillow_heif
from PIL import Image, ImageChops, ImageCms, features

from alttext.describe.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from alttext.describe.types import ImageInfo

# Registering a Pillow plugin is idempotent and cheap; it holds no client, settings or engine.
pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20_000_000
    max_pixels: int = 50_000_000
    min_side: int = 8
    target_long_side: int = 768
    text_long_side: int = 1536


@dataclass(frozen=True)
class PreparedImage:
    data: bytes  # re-encoded, metadata-free bytes that are sent to a provider
    mime: str  # of ``data``: image/jpeg, image/png or image/webp
    format: str  # detected input format: jpeg, png, gif, webp, bmp, tiff, heif, avif
    width: int  # original size, after EXIF orientation
    height: int
    sent_width: int
    sent_height: int
    text_heavy: bool  # screenshot-like: kept at higher resolution
    sha256: str  # hex digest of ``data`` (cache keys; never the image itself)
    pixels: Image.Image  # the prepared image, decoded (RGB or RGBA), for local OCR


ACCEPTED = "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF or AVIF"
# Our name -> the Pillow plugin allowed to open it (no other plugin ever sees the bytes).
_PLUGINS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "gif": "GIF",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "heif": "HEIF",
    "avif": "AVIF",
}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_GENERIC_BRANDS = {b"mif1", b"msf1"}
# Errors Pillow and its plugins raise on corrupt input; anything else is a bug worth a 500.
_DECODE_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
    ZeroDivisionError, RuntimeError, NotImplementedError,
)  # fmt: skip
# EXIF orientation -> the transpose that undoes it (ImageOps.exif_transpose's table).
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_JPEG_QUALITY = 85
_THUMB = 256  # long side of the sample used to guess "text-heavy"


def sniff_format(data: bytes) -> str | None:
    """Our format name from magic numbers, or None for anything we do not accept."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[4:8] == b"ftyp":
        box = min(max(int.from_bytes(head[:4], "big"), 16), len(head))
        major = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, box - 3, 4)}
        brands = {major} | compatible
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIF_BRANDS or major in _GENERIC_BRANDS:
            return "heif"
    return None


def prepare_image(data: bytes, limits: ImageLimits = ImageLimits()) -> PreparedImage:
    """CPU-bound: callers run it in the worker pool."""
    if not data:
        raise InvalidImage("The image is empty.")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"The image is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes."
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedMediaType(f"Not a supported image format; send {ACCEPTED}.")
    if fmt == "avif" and not features.check("avif"):
        raise UnsupportedMediaType(f"AVIF is not supported by this server; send {ACCEPTED}.")

    img = _open(data, fmt, limits)
    width, height = img.size
    if min(width, height) < limits.min_side:
        raise InvalidImage(
            f"The image is {width}x{height} pixels; each side must be at least "
            f"{limits.min_side} pixels."
        )
    # Decode at the largest size we could send, so one decode serves both outcomes.
    if fmt == "jpeg":
        img.draft("RGB", _fit((width, height), limits.text_long_side))
    try:
        img.load()
        orientation = _orientation(img)
        img = _normalise_mode(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge("The image declares too many pixels.") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The {fmt.upper()} image is truncated or corrupt.") from exc

    transpose = _ORIENT.get(orientation)
    swap = orientation in (5, 6, 7, 8)
    if swap:
        width, height = height, width

    text_heavy = _looks_text_heavy(img)
    long_side = limits.text_long_side if text_heavy else limits.target_long_side
    sent_w, sent_h = _fit((width, height), long_side)
    stored = (sent_h, sent_w) if swap else (sent_w, sent_h)
    if img.size != stored:
        img = img.resize(stored, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if transpose is not None:
        img = img.transpose(transpose)

    img = _to_srgb(img)
    had_alpha = img.mode == "RGBA"
    if had_alpha:
        img = _flatten(img)
    lossy_source = fmt in ("jpeg", "heif", "avif") or (fmt == "webp" and data[12:16] == b"VP8 ")
    as_png = had_alpha or (text_heavy and not lossy_source)
    encoded = _encode(img, png=as_png, text_heavy=text_heavy)
    return PreparedImage(
        data=encoded,
        mime="image/png" if as_png else "image/jpeg",
        format=fmt,
        width=width,
        height=height,
        sent_width=sent_w,
        sent_height=sent_h,
        text_heavy=text_heavy,
        sha256=hashlib.sha256(encoded).hexdigest(),
        pixels=img,
    )


def _open(data: bytes, fmt: str, limits: ImageLimits) -> Image.Image:
    """Read only the header, and refuse what is too large before any pixel is decoded."""
    try:
        # BytesIO over immutable bytes shares the buffer: no copy.
        img = Image.open(io.BytesIO(data), formats=[_PLUGINS[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning only reaches here as an exception when warnings are errors (-W error).
        raise ImageTooLarge("The image declares too many pixels.") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The {fmt.upper()} image is truncated or corrupt.") from exc
    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} pixels; the limit is {limits.max_pixels:,} pixels."
        )
    return img


def _fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """Scale ``size`` down so its long side is at most ``long_side``; never up."""
    width, height = size
    longest = max(width, height)
    if longest <= long_side:
        return width, height
    scale = long_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(img: Image.Image) -> int:
    value = img.getexif().get(0x0112, 1)
    return value if isinstance(value, int) else 1


def _normalise_mode(img: Image.Image) -> Image.Image:
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


def _looks_text_heavy(img: Image.Image) -> bool:
    """Screenshots, documents, charts: large exactly-flat areas, few colours and sharp edges.

    A nearest-neighbour sample keeps real pixel values (no blur), so a flat background stays
    flat and text strokes stay sharp, while photos show sensor noise and thousands of colours.
    """
    w, h = img.size
    scale = min(1.0, _THUMB / max(w, h))
    thumb = img.resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.NEAREST
    )
    rgb = np.asarray(thumb.convert("RGB"), dtype=np.int16)
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        return False
    lum = rgb.sum(axis=2) // 3
    dx = np.abs(np.diff(lum, axis=1))
    dy = np.abs(np.diff(lum, axis=0))
    flat = (np.count_nonzero(dx <= 4) + np.count_nonzero(dy <= 4)) / (dx.size + dy.size)
    edges = (np.count_nonzero(dx >= 96) + np.count_nonzero(dy >= 96)) / (dx.size + dy.size)
    q = rgb >> 3  # 5 bits a channel: JPEG noise on a flat background stays in one bin
    keys = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.bincount(keys.ravel(), minlength=1 << 15)
    top16 = float(np.sort(counts)[-16:].sum()) / keys.size
    return flat >= 0.5 and top16 >= 0.6 and edges >= 0.002


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(img: Image.Image) -> Image.Image:
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


def _flatten(img: Image.Image) -> Image.Image:
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


def _encode(img: Image.Image, *, png: bool, text_heavy: bool) -> bytes:
    out = io.BytesIO()
    # Grey content (text on white, scans) encodes to about a third of the bytes as one channel.
    r, g, b = img.split()
    grey = ImageChops.difference(r, g).getbbox() is None and (
        ImageChops.difference(g, b).getbbox() is None
    )
    src = r if grey else img
    if png:
        # zlib level 1 beat optimize=True on screenshots in bench/ (484 vs 572 kB, 60 vs 630 ms at
        # 1536x1152): flat runs need no deep search. Flat logos still shrink better with optimize.
        params: dict[str, object] = {"compress_level": 1} if text_heavy else {"optimize": True}
        src.save(out, format="PNG", **params)
    else:
        src.save(out, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
    return out.getvalue()


def read_header(data: bytes, limits: ImageLimits = ImageLimits()) -> ImageInfo:
    """What a decorative image needs: the checks :func:`prepare_image` makes
    before it decodes (bytes, format, header, pixel count, smallest side) and the size after
    EXIF orientation. Only the header is read: no pixel is decoded, nothing is re-encoded, and
    ``sent_width``/``sent_height`` are 0 because nothing is sent anywhere.

    CPU-light but not free (HEIF headers): callers run it in the worker pool. Both
    use the same header reader, so they refuse exactly the same images."""
    if not data:
        raise InvalidImage("The image is empty.")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"The image is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes."
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedMediaType(f"Not a supported image format; send {ACCEPTED}.")
    if fmt == "avif" and not features.check("avif"):
        raise UnsupportedMediaType(f"AVIF is not supported by this server; send {ACCEPTED}.")
    img = _open(data, fmt, limits)  # header only
    try:
        width, height = img.size
        if min(width, height) < limits.min_side:
            raise InvalidImage(
                f"The image is {width}x{height} pixels; each side must be at least "
                f"{limits.min_side} pixels."
            )
        try:
            # PNG keeps EXIF after the pixels as often as before them, and Pillow decodes the
            # image to look there: only an eXIf chunk met in the header counts.
            header_exif = fmt != "png" or "exif" in img.info
            orientation = _orientation(img) if header_exif else 1
        except _DECODE_ERRORS as exc:
            raise InvalidImage(f"The {fmt.upper()} image is truncated or corrupt.") from exc
    finally:
        img.close()
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(width=width, height=height, format=fmt, sent_width=0, sent_height=0)
