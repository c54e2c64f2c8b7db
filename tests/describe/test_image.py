"""prepare_image: format sniffing, limits, orientation, metadata stripping, colour, sizing.

Every test runs twice: on Pillow alone, and with libvips decoding PNG and writing PNG output
(image_vips.py) when pyvips is installed (skipped otherwise). Both must behave the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageDraw, ImageFont, features

from alttext.describe import image_vips
from alttext.describe.errors import (
    AppError,
    ImageTooLarge,
    InvalidImage,
    UnsupportedMediaType,
)
from alttext.describe.image import ImageLimits, PreparedImage, prepare_image, sniff_format

RNG_SEED = 1234


@pytest.fixture(autouse=True, params=["pillow", "libvips"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pillow alone (as without pyvips installed), or libvips where image.py routes to it."""
    if request.param == "pillow":
        monkeypatch.setattr(image_vips, "available", lambda: False)
    elif not image_vips.available():
        pytest.skip("pyvips is not installed")
    return str(request.param)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def photo(width: int, height: int, seed: int = RNG_SEED) -> Image.Image:
    """Gradients plus sensor-like noise: compresses like a real photo, not like a flat fill."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height) + 60], axis=-1
    )
    # A tiled noise block is much faster to make than full-size noise and compresses the same.
    block = rng.normal(0, 14, (min(height, 256), min(width, 256), 3)).astype(np.float32)
    reps = (-(-height // block.shape[0]), -(-width // block.shape[1]), 1)
    noisy = base + np.tile(block, reps)[:height, :width]
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def screenshot(width: int, height: int) -> Image.Image:
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(12, height // 60))
    line = "The quick brown fox jumps over the lazy dog 0123456789 — settings, help, log out"
    step = max(14, height // 40)
    draw.rectangle((0, 0, width, step * 2), fill=(230, 230, 235))
    for row, y in enumerate(range(step * 3, height - step, step)):
        draw.text((step, y), line[: 30 + (row * 7) % 50], fill="black", font=font)
    return img


def png_with_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR is patched to declare ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (8, 8), "red"), "PNG"))
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    assert data[ihdr + 4 : ihdr + 8] == b"IHDR"
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21]))
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def decode(prepared: PreparedImage) -> Image.Image:
    img = Image.open(io.BytesIO(prepared.data))
    img.load()
    return img


# --- formats -----------------------------------------------------------------------------------

SOURCE = photo(320, 240)
ROUND_TRIPS = [
    ("jpeg", lambda: encode(SOURCE, "JPEG", quality=90)),
    ("png", lambda: encode(SOURCE, "PNG")),
    ("gif", lambda: encode(SOURCE.convert("P"), "GIF")),
    ("webp", lambda: encode(SOURCE, "WEBP", quality=90)),
    ("bmp", lambda: encode(SOURCE, "BMP")),
    ("tiff", lambda: encode(SOURCE, "TIFF")),
    ("heif", lambda: encode(SOURCE, "HEIF", quality=90)),
    pytest.param(
        "avif",
        lambda: encode(SOURCE, "AVIF", quality=90),
        marks=pytest.mark.skipif(not features.check("avif"), reason="no AVIF codec"),
    ),
]


@pytest.mark.parametrize(("fmt", "make"), ROUND_TRIPS)
def test_each_accepted_format_round_trips(fmt, make):
    data = make()
    assert sniff_format(data) == fmt

    prepared = prepare_image(data)

    assert prepared.format == fmt
    assert (prepared.width, prepared.height) == (320, 240)
    assert (prepared.sent_width, prepared.sent_height) == (320, 240)
    assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()
    out = decode(prepared)
    assert out.format.lower() == prepared.mime.split("/")[1]
    assert out.size == (320, 240) == prepared.pixels.size
    assert prepared.pixels.mode in ("RGB", "RGBA")
    # Same picture: mean colour within a few levels of the source (GIF's palette costs a little).
    diff = np.abs(
        np.asarray(prepared.pixels, dtype=np.float32).mean(axis=(0, 1))
        - np.asarray(SOURCE, dtype=np.float32).mean(axis=(0, 1))
    )
    assert diff.max() < 8


def test_png_bytes_are_reported_as_png_and_sent_as_png_when_text_heavy():
    prepared = prepare_image(encode(screenshot(800, 450), "PNG"))
    assert prepared.format == "png"
    assert prepared.mime == "image/png"
    assert prepared.data.startswith(b"\x89PNG")


def test_photo_is_sent_as_jpeg():
    prepared = prepare_image(encode(photo(640, 480), "PNG"))
    assert prepared.mime == "image/jpeg"
    assert prepared.data.startswith(b"\xff\xd8\xff")


def test_gif_uses_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    prepared = prepare_image(data)
    assert prepared.pixels.getpixel((32, 32)) == (255, 0, 0)


def test_animated_webp_uses_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in ("blue", "red")]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    prepared = prepare_image(data)
    r, _g, b = prepared.pixels.getpixel((32, 32))
    assert b > 200
    assert r < 50


def test_multipage_tiff_uses_first_page():
    pages = [Image.new("RGB", (64, 48), "lime"), Image.new("RGB", (30, 30), "red")]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    prepared = prepare_image(data)
    assert (prepared.width, prepared.height) == (64, 48)
    assert prepared.pixels.getpixel((10, 10)) == (0, 255, 0)


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b'<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        b"just some plain text, certainly not an image\n" * 3,
        bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8)),
    ],
    ids=["svg-xml", "svg", "pdf", "text", "random"],
)
def test_unsupported_formats_are_415(data):
    with pytest.raises(UnsupportedMediaType) as info:
        prepare_image(data)
    assert info.value.http_status == 415


@pytest.mark.parametrize("fmt", ["ICO", "PSD"])
def test_formats_pillow_reads_but_we_do_not_accept_are_415(fmt):
    img = Image.new("RGB", (32, 32), "red")
    if fmt == "PSD":
        # Pillow cannot write PSD: a minimal header is enough to be recognised by magic.
        data = b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 32, 32, 8, 3)
    else:
        data = encode(img, fmt)
    with pytest.raises(UnsupportedMediaType):
        prepare_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_400(fmt):
    data = encode(photo(200, 150), fmt)
    with pytest.raises(InvalidImage) as info:
        prepare_image(data[: len(data) // 2])
    assert info.value.http_status == 400


def test_header_only_png_is_400():
    with pytest.raises(InvalidImage):
        prepare_image(b"\x89PNG\r\n\x1a\n")


def test_empty_is_400():
    with pytest.raises(InvalidImage):
        prepare_image(b"")


# --- limits ------------------------------------------------------------------------------------


def test_too_many_bytes_is_413():
    data = encode(photo(200, 150), "PNG")
    with pytest.raises(ImageTooLarge) as info:
        prepare_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert info.value.http_status == 413
    assert prepare_image(data, ImageLimits(max_bytes=len(data))).format == "png"


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (8_000, 8_000)])
def test_huge_declared_dimensions_are_refused_from_the_header(width, height):
    # The IDAT holds 8x8 pixels of data: a full decode would fail as truncated (400), so a 413
    # proves the refusal came from the header.
    with pytest.raises(ImageTooLarge) as info:
        prepare_image(png_with_size(width, height))
    assert info.value.http_status == 413


def test_max_pixels_limit_is_configurable():
    data = encode(photo(100, 100), "PNG")
    with pytest.raises(ImageTooLarge):
        prepare_image(data, ImageLimits(max_pixels=9_999))
    assert prepare_image(data, ImageLimits(max_pixels=10_000)).width == 100


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_as_error_is_413():
    with pytest.raises(ImageTooLarge):
        prepare_image(png_with_size(10_000, 10_000), ImageLimits(max_pixels=10**9))


def test_pillow_global_bomb_check_left_enabled():
    prepare_image(encode(photo(64, 64), "PNG"))
    assert Image.MAX_IMAGE_PIXELS is not None


@pytest.mark.parametrize("size", [(4, 4), (200, 7)])
def test_tiny_images_are_400(size):
    with pytest.raises(InvalidImage):
        prepare_image(encode(Image.new("RGB", size, "red"), "PNG"))


# --- orientation and metadata ------------------------------------------------------------------


def test_exif_orientation_6_rotates():
    img = Image.new("RGB", (200, 100), "blue")
    img.paste((255, 0, 0), (0, 0, 50, 50))  # marks the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    prepared = prepare_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))

    assert (prepared.width, prepared.height) == (100, 200)
    assert prepared.pixels.size == (100, 200)
    # Orientation 6 shows the stored top-left at the top-right.
    r, _, b = prepared.pixels.getpixel((95, 5))
    assert r > 200
    assert b < 50
    r, _, b = prepared.pixels.getpixel((5, 5))
    assert b > 200
    assert r < 50


def _gps_jpeg(comment: bytes) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
        b'-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label="secret"'
        b"/></rdf:RDF></x:xmpmeta>"
    )
    return encode(photo(300, 200), "JPEG", exif=exif.tobytes(), comment=comment, xmp=xmp)


def test_gps_exif_xmp_and_comment_are_stripped():
    comment = b"taken at my home address"
    data = _gps_jpeg(comment)
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825)  # the fixture really carries GPS
    assert b"http://ns.adobe.com/xap" in data
    assert comment in data

    prepared = prepare_image(data)
    out = prepared.data

    assert b"Exif" not in out
    assert b"SecretCam" not in out
    assert b"http://ns.adobe.com/xap" not in out
    assert comment not in out
    reopened = decode(prepared)
    assert not reopened.getexif()
    assert not reopened.getexif().get_ifd(0x8825)
    assert "comment" not in reopened.info
    assert "xmp" not in reopened.info
    assert "icc_profile" not in reopened.info


def test_png_text_chunks_and_icc_are_stripped():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Secret")
    info.add_itxt("Comment", "private note", zip=True)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(screenshot(400, 300), "PNG", pnginfo=info, icc_profile=icc)

    prepared = prepare_image(data)

    assert b"Jane Secret" not in prepared.data
    assert b"tEXt" not in prepared.data
    assert b"iTXt" not in prepared.data
    assert b"iCCP" not in prepared.data
    assert decode(prepared).info.get("Author") is None


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def swapped_rgb_profile() -> bytes:
    """A tiny ICC v2 matrix/TRC RGB profile whose red and blue primaries are sRGB's blue and red."""
    text = b"Swapped RGB test\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 78
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 563) + b"\0\0"  # gamma 2.2
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz(0.1431, 0.0606, 0.7141)),
        (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", _xyz(0.4361, 0.2225, 0.0139)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body)) + b"\0" * 4 + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
        + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + body


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_non_srgb_icc_profile_is_converted_to_srgb(fmt):
    img = Image.new("RGB", (64, 64), (200, 120, 40))
    naive = prepare_image(encode(img, fmt, quality=95)).pixels.getpixel((5, 5))
    managed = prepare_image(
        encode(img, fmt, quality=95, icc_profile=swapped_rgb_profile())
    ).pixels.getpixel((5, 5))
    assert naive[0] > 190
    assert naive[2] < 50
    # Through the profile, the stored "red" channel means blue.
    assert managed[0] < 60
    assert managed[2] > 180


def test_broken_icc_profile_is_ignored():
    img = Image.new("RGB", (64, 64), (200, 120, 40))
    prepared = prepare_image(encode(img, "PNG", icc_profile=b"not a profile at all"))
    assert prepared.pixels.getpixel((5, 5)) == (200, 120, 40)


# --- colour ------------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb_with_right_colours():
    # Pillow writes CMYK JPEGs with the Adobe marker (inverted values); reading must undo it.
    img = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # C0 M100 Y100 K0: red
    prepared = prepare_image(encode(img, "JPEG", quality=95))
    r, g, b = prepared.pixels.getpixel((32, 32))
    assert prepared.pixels.mode == "RGB"
    assert r > 200
    assert g < 60
    assert b < 60


def test_16_bit_grey_png_is_scaled_not_clipped():
    img = Image.new("I;16", (64, 64), 128 * 257)
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    prepared = prepare_image(data)
    r, g, b = prepared.pixels.getpixel((10, 10))
    assert r == g == b
    assert 120 <= r <= 136


def test_palette_with_transparency_is_flattened_visibly():
    img = Image.new("P", (64, 64), 0)
    img.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    ImageDraw.Draw(img).rectangle((16, 16, 47, 47), fill=1)
    data = encode(img, "PNG", transparency=0)  # index 0 (black) is transparent

    prepared = prepare_image(data)

    assert prepared.pixels.mode == "RGB"
    assert prepared.mime == "image/png"
    assert prepared.pixels.getpixel((2, 2)) == (255, 255, 255)  # not black
    assert prepared.pixels.getpixel((32, 32)) == (200, 0, 0)


def test_black_logo_on_transparency_is_not_black_on_black():
    img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((20, 20, 80, 80), fill=(0, 0, 0, 255))
    prepared = prepare_image(encode(img, "PNG"))
    assert prepared.pixels.getpixel((2, 2)) == (255, 255, 255)
    assert prepared.pixels.getpixel((50, 50)) == (0, 0, 0)


def test_white_logo_on_transparency_gets_a_dark_background():
    img = Image.new("RGBA", (100, 100), (255, 255, 255, 0))
    ImageDraw.Draw(img).ellipse((20, 20, 80, 80), fill=(255, 255, 255, 255))
    prepared = prepare_image(encode(img, "PNG"))
    assert max(prepared.pixels.getpixel((2, 2))) < 80
    assert prepared.pixels.getpixel((50, 50)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "1", "RGBA"])
def test_other_modes_become_rgb(mode):
    img = photo(80, 60).convert(mode)
    prepared = prepare_image(encode(img, "PNG"))
    assert prepared.pixels.mode == "RGB"
    assert prepared.pixels.size == (80, 60)


# --- sizing and text detection -----------------------------------------------------------------


def test_never_upscales():
    prepared = prepare_image(encode(photo(300, 200), "JPEG"))
    assert (prepared.sent_width, prepared.sent_height) == (300, 200)
    assert decode(prepared).size == (300, 200)


def test_12_megapixel_jpeg_is_downscaled_to_target():
    data = encode(photo(4000, 3000), "JPEG", quality=90)
    prepared = prepare_image(data)
    assert (prepared.width, prepared.height) == (4000, 3000)
    assert (prepared.sent_width, prepared.sent_height) == (768, 576)
    assert decode(prepared).size == (768, 576)
    assert not prepared.text_heavy
    assert prepared.mime == "image/jpeg"
    assert len(prepared.data) < len(data) // 10


def test_target_long_side_is_configurable():
    prepared = prepare_image(encode(photo(1000, 500), "JPEG"), ImageLimits(target_long_side=100))
    assert (prepared.sent_width, prepared.sent_height) == (100, 50)


def test_screenshot_is_text_heavy_and_kept_legible():
    prepared = prepare_image(encode(screenshot(2560, 1440), "PNG"))
    assert prepared.text_heavy
    assert (prepared.sent_width, prepared.sent_height) == (1536, 864)
    assert decode(prepared).size == (1536, 864) == prepared.pixels.size
    assert prepared.mime == "image/png"


def test_screenshot_saved_as_jpeg_is_still_text_heavy():
    prepared = prepare_image(encode(screenshot(1920, 1080), "JPEG", quality=80))
    assert prepared.text_heavy
    assert prepared.sent_width == 1536
    assert prepared.mime == "image/jpeg"  # a lossy source is not bloated into a PNG


@pytest.mark.parametrize(
    "img",
    [photo(1600, 1200), photo(1600, 1200).convert("L"), Image.new("RGB", (1600, 1200), "white")],
    ids=["noise-photo", "grey-photo", "blank"],
)
def test_non_text_images_are_not_text_heavy(img):
    prepared = prepare_image(encode(img, "PNG"))
    assert not prepared.text_heavy
    assert prepared.sent_width == 768


# --- properties --------------------------------------------------------------------------------

MODES = ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16"]
FORMATS_FOR = {
    "RGB": ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"],
    "RGBA": ["PNG", "WEBP", "TIFF"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF"],
    "LA": ["PNG"],
    "P": ["PNG", "GIF", "BMP"],
    "1": ["PNG", "BMP", "TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
}


@st.composite
def images(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    mode = draw(st.sampled_from(MODES))
    fmt = draw(st.sampled_from(FORMATS_FOR[mode]))
    size = (draw(st.integers(1, 900)), draw(st.integers(1, 900)))
    seed = draw(st.integers(0, 2**16))
    img = photo(*size, seed=seed)
    if mode == "I;16":
        img = img.convert("I").point(lambda v: v * 250).convert("I;16")
    else:
        img = img.convert(mode)
    return encode(img, fmt), size


# The backend fixture is function-scoped but fixed for all examples of one test: safe to share.
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(images(), st.integers(16, 1024))
def test_any_small_image_prepares_or_fails_cleanly_and_never_upscales(case, target):
    data, (width, height) = case
    limits = ImageLimits(target_long_side=target, text_long_side=max(target, 1024))
    if min(width, height) < limits.min_side:
        with pytest.raises(InvalidImage):
            prepare_image(data, limits)
        return
    prepared = prepare_image(data, limits)
    assert (prepared.width, prepared.height) == (width, height)
    assert prepared.sent_width <= width
    assert prepared.sent_height <= height
    assert max(prepared.sent_width, prepared.sent_height) <= limits.text_long_side
    assert prepared.pixels.size == (prepared.sent_width, prepared.sent_height)
    assert prepared.pixels.mode in ("RGB", "RGBA")


FUZZ_BASE = [
    encode(photo(40, 30), "JPEG"),
    encode(photo(40, 30), "PNG"),
    encode(photo(40, 30).convert("P"), "GIF"),
    encode(photo(40, 30), "WEBP"),
    encode(photo(40, 30), "TIFF"),
    encode(photo(40, 30), "BMP"),
    encode(photo(40, 30), "HEIF"),
]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(FUZZ_BASE),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(1, 10_000),
)
def test_corrupted_images_only_raise_app_errors(base, flips, cut):
    data = bytearray(base[: max(1, len(base) * cut // 10_000)])
    for pos, value in flips:
        data[pos % len(data)] = value
    with contextlib.suppress(AppError):
        prepare_image(bytes(data))
