"""Image preparation, all in memory: sniff, check limits, decode once, orient, downscale, re-encode.

Choices worth knowing (see the function docstrings for the why):

* The format comes from the leading bytes only; a file name or Content-Type is never consulted.
* Limits are checked on the header (``Image.open`` reads no pixels) before anything is decoded.
* Decoding does no more work than the size sent needs: a JPEG is decoded at the smallest DCT
  scale that still covers a photo's size (a quarter of the pixels of a 12 MP photo), the
  text-heaviness test runs on that decode, and only a text-heavy JPEG is decoded again at the
  larger scale text needs. That first decode of a YCbCr or grey JPEG is OpenCV's (the same
  libjpeg-turbo, into an array a photo is shrunk in; Pillow's 4-byte pixels cost a copy).
  PNG goes through libvips when it is installed (image_vips.py: about 3x faster there); every
  other format, and PNG without libvips, through Pillow.
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
from typing import Literal

import pillow_heif
from PIL import Image, features

from alttext.describe import image_vips, imaging
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
# Resampling on Pillow's path (docs/decisions.md has the measurements). Photos: reduce() by the
# whole factor, then bilinear for the rest (< 2x), which Pillow implements as an area filter:
# 46.7 dB against a float Lanczos reference on a 12 MP photo, within 0.3 dB of Lanczos and
# bicubic, while the JPEG q85 encode that follows keeps 40 dB; for half Lanczos' time. Text:
# Lanczos with no reduce() below 6x, as before: a box reduce first cost 8-pixel text up to
# 0.14 of OCR similarity.
_PHOTO_FILTER, _PHOTO_GAP = Image.Resampling.BILINEAR, 1.0
_TEXT_FILTER, _TEXT_GAP = Image.Resampling.LANCZOS, 3.0


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
    fmt = _check_bytes(data, limits)
    img = _open(data, fmt, limits)
    _check_min_side(*img.size, limits)
    if fmt in image_vips.FORMATS and image_vips.available():
        img.close()  # only its header was read: libvips decodes
        shrunk = _shrink_vips(data, fmt, limits)
    else:
        photo = _shrink_jpeg_photo(img, data, limits) if fmt == "jpeg" else None
        if isinstance(photo, _Shrunk):
            shrunk = photo
        else:  # not a JPEG OpenCV decoded, or one found to be text-heavy (photo is True)
            shrunk = _shrink_pillow(img, data, fmt, limits, text_heavy=photo)
    img = imaging.to_srgb(shrunk.img)
    had_alpha = img.mode == "RGBA"
    if had_alpha:
        img = imaging.flatten(img)
    lossy_source = fmt in ("jpeg", "heif", "avif") or (fmt == "webp" and data[12:16] == b"VP8 ")
    as_png = had_alpha or (shrunk.text_heavy and not lossy_source)
    encoded = imaging.encode(img, png=as_png)
    return PreparedImage(
        data=encoded,
        mime="image/png" if as_png else "image/jpeg",
        format=fmt,
        width=shrunk.width,
        height=shrunk.height,
        sent_width=img.width,
        sent_height=img.height,
        text_heavy=shrunk.text_heavy,
        sha256=hashlib.sha256(encoded).hexdigest(),
        pixels=img,
    )


@dataclass(frozen=True)
class _Shrunk:
    img: Image.Image  # upright, at the size sent; L, LA, RGB, RGBA or CMYK, maybe an ICC profile
    width: int  # the original's size, upright
    height: int
    text_heavy: bool


def _shrink_pillow(
    img: Image.Image,
    data: bytes,
    fmt: str,
    limits: ImageLimits,
    *,
    text_heavy: bool | None = None,
) -> _Shrunk:
    """Decode with Pillow (JPEG at a reduced DCT scale), test, downscale, turn upright.

    Entropy decoding dominates a large JPEG and no reduced-size decode skips it (a 1/8 scale
    decode of a 12 MP photo still took 40 of the 47 ms of a 1/4 scale one), so a JPEG is decoded
    once, at the scale a photo needs, never twice to decide first; only a text-heavy JPEG pays a
    second decode, at the scale text needs. ``text_heavy``: the verdict, when an earlier
    decode already gave it (then the first decode is at the scale it needs)."""
    width, height = img.size
    # Never below the text test's sample, so a tiny configured target cannot blur the verdict.
    first = limits.text_long_side if text_heavy else limits.target_long_side
    img, box = _decode(img, fmt, max(first, imaging.TEXT_SAMPLE))
    try:
        orientation = _orientation(img)
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The {fmt.upper()} image is truncated or corrupt.") from exc
    swap = orientation in (5, 6, 7, 8)
    if swap:
        width, height = height, width
    if text_heavy is None:
        text_heavy = imaging.looks_text_heavy(img)
    long_side = limits.text_long_side if text_heavy else limits.target_long_side
    sent_w, sent_h = _fit((width, height), long_side)
    stored = (sent_h, sent_w) if swap else (sent_w, sent_h)
    if img.width < stored[0] or img.height < stored[1]:
        # A text-heavy JPEG decoded at the photo's scale: decode again at the scale text needs.
        img, box = _decode(_open(data, fmt, limits), fmt, long_side)
    img = _downscale(img, stored, box, text_heavy=text_heavy)
    transpose = _ORIENT.get(orientation)
    if transpose is not None:
        img = img.transpose(transpose)
    return _Shrunk(img, width, height, text_heavy)


def _shrink_jpeg_photo(
    img: Image.Image, data: bytes, limits: ImageLimits
) -> _Shrunk | Literal[True] | None:
    """A YCbCr or grey JPEG decoded by OpenCV's libjpeg-turbo straight into an array, at the
    DCT scale Pillow's draft would pick, tested, and shrunk there if it is a photo. True if it
    looks text-heavy (Pillow's path decodes it again, at the scale text needs); None for
    anything else (CMYK, a partial last block, a decode OpenCV refuses), which then takes
    Pillow's path from its header as before, errors included.

    Pillow decodes into 4-byte pixels and copies them out again for the resize: OpenCV's
    decode and the array path save about 1 ms of a 1 MP photo's 10 (docs/decisions.md).
    ``img`` has only its header read; nothing of it is changed here."""
    if img.mode not in ("RGB", "L") or len(getattr(img, "tile", ())) != 1:
        return None
    try:
        orientation = _orientation(img)
    except _DECODE_ERRORS:
        return None  # Pillow's path says what is wrong with it
    width, height = img.size
    wanted = _fit((width, height), max(limits.target_long_side, imaging.TEXT_SAMPLE))
    scale = 1
    for candidate in (8, 4, 2):  # Pillow's draft: the largest scale that still covers it
        if min(width // wanted[0], height // wanted[1]) >= candidate:
            scale = candidate
            break
    pixels = imaging.decode_jpeg(data, scale=scale, grey=img.mode == "L")
    if pixels is None or pixels.shape[:2] != (-(-height // scale), -(-width // scale)):
        return None
    if imaging.looks_text_heavy_pixels(pixels):
        return True
    swap = orientation in (5, 6, 7, 8)
    upright = (height, width) if swap else (width, height)
    sent_w, sent_h = _fit(upright, limits.target_long_side)
    stored = (sent_h, sent_w) if swap else (sent_w, sent_h)
    whole = scale == 1 or (width % scale == 0 and height % scale == 0)
    small_step = pixels.shape[1] < 2 * stored[0] and pixels.shape[0] < 2 * stored[1]
    if (pixels.shape[1], pixels.shape[0]) == stored:
        shrunk_pixels = pixels
    elif whole and small_step:
        shrunk_pixels = imaging.shrink_photo_pixels(pixels, stored)
    else:
        return None  # a partial last block or a large step: Pillow's box-aware resize
    out = Image.fromarray(imaging.rgb_from_bgr(shrunk_pixels))
    icc = img.info.get("icc_profile")
    if icc:
        out.info["icc_profile"] = icc
    transpose = _ORIENT.get(orientation)
    if transpose is not None:
        out = out.transpose(transpose)
    return _Shrunk(out, upright[0], upright[1], text_heavy=False)


def _shrink_vips(data: bytes, fmt: str, limits: ImageLimits) -> _Shrunk:
    """Decode and shrink with libvips, streaming, straight to the text size (a PNG is decoded
    whole whatever size it is shrunk to), test that copy, and shrink a photo on from it.

    Shrinking to the photo size first would save a photo ~8 ms of 46 (3 MP) but cost every
    text-heavy PNG, the common kind, a second full decode (~55 ms at 12 MP)."""
    try:
        source = image_vips.load(data, fmt)
        width, height = source.width, source.height
        if image_vips.orientation(source) in (5, 6, 7, 8):
            width, height = height, width
        # The larger of the two sizes (a configured text size below the photo size is allowed).
        first = max(limits.text_long_side, limits.target_long_side)
        large = image_vips.shrink(source, _fit((width, height), first))
        img = image_vips.to_pillow(large)
        text_heavy = imaging.looks_text_heavy(img)
        size = _fit(
            (width, height), limits.text_long_side if text_heavy else limits.target_long_side
        )
        img = _downscale(img, size, None, text_heavy=text_heavy)
    except image_vips.VipsError as exc:
        raise InvalidImage(f"The {fmt.upper()} image is truncated or corrupt.") from exc
    return _Shrunk(img, width, height, text_heavy)


MAX_JPEG_SCANS = 256


def _check_bytes(data: bytes, limits: ImageLimits) -> str:
    """The checks that need no header: empty, too many bytes, a format we accept. Our name."""
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
    # A progressive JPEG is decoded scan by scan over the whole image, so thousands of tiny
    # scans make a small file cost minutes of CPU. Encoders write about ten; FF DA never occurs
    # inside entropy-coded data (0xFF is stuffed there), so counting the bytes counts the scans
    # (an embedded EXIF thumbnail's few included).
    if fmt == "jpeg" and data.count(b"\xff\xda") > MAX_JPEG_SCANS:
        raise InvalidImage(
            f"The JPEG image has more than {MAX_JPEG_SCANS} scans; re-save it (a normal "
            "progressive JPEG has about ten)."
        )
    return fmt


def _check_min_side(width: int, height: int, limits: ImageLimits) -> None:
    if min(width, height) < limits.min_side:
        raise InvalidImage(
            f"The image is {width}x{height} pixels; each side must be at least "
            f"{limits.min_side} pixels."
        )


Box = tuple[float, float, float, float]


def _decode(img: Image.Image, fmt: str, long_side: int) -> tuple[Image.Image, Box | None]:
    """Decode the pixels (a JPEG at the smallest DCT scale whose long side is still at least
    ``long_side``) and bring them to a mode resize handles. Returns the image and, for a
    reduced decode, the exact source region its pixels cover (for :func:`_downscale`)."""
    box: Box | None = None
    try:
        if fmt == "jpeg":
            drafted = img.draft("RGB", _fit(img.size, long_side))
            box = drafted[1] if drafted is not None else None
        img.load()
        return imaging.normalise_mode(img), box
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge("The image declares too many pixels.") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"The {fmt.upper()} image is truncated or corrupt.") from exc


def _downscale(
    img: Image.Image, size: tuple[int, int], box: Box | None, *, text_heavy: bool
) -> Image.Image:
    """Resize to ``size`` (the filters and why: the constants at the top).

    Photos that need less than a 2x reduction, which Pillow can only resample at full cost,
    get OpenCV's Gaussian prefilter and bilinear step (imaging.shrink_photo): a 1 MP photo to
    768 px took 4.8 ms of CPU in Pillow's bilinear, 4.0 in libvips' linear kernel and 1.9 so.
    Text goes to libvips' SIMD lanczos3 when it is installed: 35 -> 12 ms for a 1080p
    screenshot to 1536 px (docs/decisions.md). Larger photo reductions stay with Pillow, whose
    box reduce() beats copying the pixels out and back."""
    whole = box is None or box == (0, 0, *img.size)
    if img.size == size and whole:
        return img
    small_step = img.width < 2 * size[0] and img.height < 2 * size[1]
    plain = whole and img.mode in ("L", "RGB")
    if plain and small_step and not text_heavy:
        return imaging.shrink_photo(img, size)
    if plain and text_heavy and image_vips.available():
        try:
            resized = image_vips.resize(img, size)
        except image_vips.VipsError as exc:
            raise InvalidImage("The image could not be resized.") from exc
        if resized is not None:
            return resized
    if text_heavy:
        return img.resize(size, _TEXT_FILTER, box=box, reducing_gap=_TEXT_GAP)
    return img.resize(size, _PHOTO_FILTER, box=box, reducing_gap=_PHOTO_GAP)


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


def read_header(data: bytes, limits: ImageLimits = ImageLimits()) -> ImageInfo:
    """What a decorative image needs: the checks :func:`prepare_image` makes
    before it decodes (bytes, format, header, pixel count, smallest side) and the size after
    EXIF orientation. Only the header is read: no pixel is decoded, nothing is re-encoded, and
    ``sent_width``/``sent_height`` are 0 because nothing is sent anywhere.

    CPU-light but not free (HEIF headers): callers run it in the worker pool. Both
    use the same header reader, so they refuse exactly the same images."""
    fmt = _check_bytes(data, limits)
    img = _open(data, fmt, limits)  # header only
    try:
        width, height = img.size
        _check_min_side(width, height, limits)
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
