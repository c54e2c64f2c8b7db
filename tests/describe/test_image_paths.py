"""How prepare_image decodes: once, at the smallest size that serves, on Pillow or libvips.

Speed itself is bench/bench_image.py's job; these tests pin the behaviour that makes it fast
(reduced-size JPEG decoding, the text test on that decode, one libvips decode for PNG) and the
safety that must survive it (libvips confined to its PNG loader, no metadata, same verdicts).
"""

from __future__ import annotations

import io
import logging
import struct
import subprocess
import sys
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from alttext.describe import image, image_vips, imaging
from alttext.describe.errors import InvalidImage
from alttext.describe.image import ImageLimits, prepare_image
from tests.describe.test_image import encode, photo, screenshot

needs_vips = pytest.mark.skipif(not image_vips.available(), reason="pyvips is not installed")


@pytest.fixture(params=["pillow", "libvips"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "pillow":
        monkeypatch.setattr(image_vips, "available", lambda: False)
    elif not image_vips.available():
        pytest.skip("pyvips is not installed")
    return str(request.param)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[int, int]]]:
    """Every decode prepare_image makes: (the decoder, the size decoded)."""
    seen: list[tuple[str, tuple[int, int]]] = []
    real = image._decode
    real_opencv = imaging.decode_jpeg

    def spy(img: Image.Image, fmt: str, long_side: int) -> Any:
        out = real(img, fmt, long_side)
        seen.append(("pillow", out[0].size))
        return out

    def spy_opencv(data: bytes, *, scale: int, grey: bool) -> Any:
        out = real_opencv(data, scale=scale, grey=grey)
        if out is not None:
            seen.append(("opencv", (out.shape[1], out.shape[0])))
        return out

    monkeypatch.setattr(image, "_decode", spy)
    monkeypatch.setattr(imaging, "decode_jpeg", spy_opencv)
    return seen


def page(width: int, height: int) -> Image.Image:
    """A printed page: lines of dark text on white."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(12, width // 50))
    for y in range(height // 12, height - height // 12, max(16, width // 30)):
        draw.text((width // 12, y), "Minutes of the committee meeting, item 4", "black", font)
    return img


# --- JPEG: one decode at the DCT scale a photo needs --------------------------------------------


def test_large_jpeg_photo_is_decoded_once_at_a_quarter_scale(decodes):
    prepared = prepare_image(encode(photo(4000, 3000), "JPEG", quality=90))
    # 1/4 scale (1000x750) is the smallest that still covers 768 px; 1/8 would be 500 px.
    assert decodes == [("opencv", (1000, 750))]
    assert (prepared.sent_width, prepared.sent_height) == (768, 576)
    assert not prepared.text_heavy


def test_text_heavy_jpeg_is_recognised_on_the_reduced_decode_then_decoded_for_text(decodes):
    prepared = prepare_image(encode(page(2480, 3508), "JPEG", quality=85))
    assert prepared.text_heavy
    # First decode at the photo's scale (1/4: 620x877) told it was text; the second, at 1/2
    # (1240x1754), is the smallest that covers the 1536 px text size.
    assert decodes == [("opencv", (620, 877)), ("pillow", (1240, 1754))]
    assert (prepared.sent_width, prepared.sent_height) == (1086, 1536)


@pytest.mark.parametrize("size", [(1920, 1080), (2560, 1440), (4000, 3000)])
@pytest.mark.parametrize("quality", [60, 95])
def test_text_verdict_on_the_reduced_decode_matches_the_full_decode(size, quality):
    for img in (screenshot(*size), photo(*size)):
        data = encode(img, "JPEG", quality=quality)
        full = Image.open(io.BytesIO(data)).convert("RGB")
        assert prepare_image(data).text_heavy == imaging.looks_text_heavy(full)


def test_tiny_target_never_decodes_below_the_text_tests_sample(decodes):
    prepare_image(encode(photo(4000, 3000), "JPEG"), ImageLimits(target_long_side=64))
    (_, decoded), *_ = decodes
    assert max(decoded) >= 256


def test_jpeg_whose_size_does_not_divide_by_the_scale_keeps_its_edges():
    # 4003 px at 1/4 scale is 1000.75 px: the last decoded column is partly padding, so the
    # resize must use the exact region (draft's box), not stretch the padding in.
    img = Image.new("RGB", (4003, 3001), (20, 40, 200))
    ImageDraw.Draw(img).rectangle((3900, 0, 4002, 3000), fill=(240, 30, 30))
    prepared = prepare_image(encode(img, "JPEG", quality=95))
    assert (prepared.sent_width, prepared.sent_height) == (768, 576)
    r, _g, b = prepared.pixels.getpixel((767, 300))
    assert r > 200
    assert b < 80


def test_orientation_is_applied_after_a_reduced_decode():
    img = photo(4000, 3000)
    img.paste((255, 0, 0), (0, 0, 800, 800))  # the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    prepared = prepare_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert (prepared.width, prepared.height) == (3000, 4000)
    assert (prepared.sent_width, prepared.sent_height) == (576, 768)
    assert prepared.pixels.size == (576, 768)
    r, g, _b = prepared.pixels.getpixel((570, 5))  # shown at the top-right
    assert r > 200
    assert g < 60


def test_large_cmyk_jpeg_is_reduced_and_converted(decodes):
    img = Image.new("CMYK", (3200, 2400), (0, 255, 255, 0))  # C0 M100 Y100 K0: red
    prepared = prepare_image(encode(img, "JPEG", quality=90))
    assert decodes == [("pillow", (800, 600))]  # OpenCV is not asked: CMYK stays with Pillow
    assert prepared.pixels.mode == "RGB"
    assert prepared.pixels.size == (768, 576)
    r, g, b = prepared.pixels.getpixel((300, 300))
    assert r > 200
    assert g < 60
    assert b < 60


def test_jpeg_is_encoded_without_a_second_optimize_pass(monkeypatch):
    params: list[dict[str, object]] = []
    real = Image.Image.save

    def spy(self: Image.Image, fp: Any, format: str | None = None, **kw: object) -> None:
        params.append(kw)
        real(self, fp, format, **kw)

    data = encode(photo(640, 480), "PNG")
    monkeypatch.setattr(Image.Image, "save", spy)
    prepare_image(data)
    assert params == [{"quality": 85}]


# --- both backends: what is sent ----------------------------------------------------------------


def png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


def test_png_output_is_lossless_and_carries_no_metadata(backend):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Secret")
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    data = encode(screenshot(1600, 900), "PNG", pnginfo=info, exif=exif.tobytes())

    prepared = prepare_image(data)

    assert prepared.mime == "image/png"
    # pHYs (pixel density) is the only ancillary chunk allowed: libvips writes a constant one.
    assert set(png_chunks(prepared.data)) <= {b"IHDR", b"pHYs", b"IDAT", b"IEND"}
    assert b"Jane Secret" not in prepared.data
    assert b"SecretCam" not in prepared.data
    sent = Image.open(io.BytesIO(prepared.data)).convert("RGB")
    assert np.array_equal(np.asarray(sent), np.asarray(prepared.pixels))


def test_grey_text_is_sent_as_one_channel_png(backend):
    prepared = prepare_image(encode(page(1200, 1600), "PNG"))
    assert prepared.text_heavy
    sent = Image.open(io.BytesIO(prepared.data))
    assert sent.mode == "L"
    assert np.array_equal(np.asarray(sent), np.asarray(prepared.pixels)[..., 0])


def test_png_exif_orientation_is_applied(backend):
    img = Image.new("RGB", (200, 100), "blue")
    img.paste((255, 0, 0), (0, 0, 50, 50))
    exif = Image.Exif()
    exif[0x0112] = 6
    prepared = prepare_image(encode(img, "PNG", exif=exif.tobytes()))
    assert (prepared.width, prepared.height) == (100, 200)
    assert prepared.pixels.getpixel((95, 5)) == (255, 0, 0)
    assert prepared.pixels.getpixel((5, 5)) == (0, 0, 255)


def test_animated_png_uses_the_first_frame(backend):
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "lime", "blue")]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=50)
    assert b"acTL" in data  # really an APNG
    assert prepare_image(data).pixels.getpixel((32, 32)) == (255, 0, 0)


def test_16_bit_rgb_png_is_scaled(backend):
    height, width = 64, 64
    pixels = np.zeros((height, width, 3), dtype=">u2")
    pixels[..., 0] = 65535
    pixels[..., 2] = 32896  # 128 * 257
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    data += chunk(b"IEND", b"")
    r, g, b = prepare_image(data).pixels.getpixel((10, 10))
    assert r == 255
    assert g == 0
    assert 126 <= b <= 130


def test_png_photo_and_screenshot_get_the_same_sizes_on_both_backends(backend):
    shot = prepare_image(encode(screenshot(2880, 1800), "PNG"))
    assert shot.text_heavy
    assert (shot.sent_width, shot.sent_height) == (1536, 960)
    snap = prepare_image(encode(photo(2048, 1536), "PNG"))
    assert not snap.text_heavy
    assert (snap.sent_width, snap.sent_height) == (768, 576)
    assert snap.mime == "image/jpeg"


def test_png_with_a_bad_checksum_is_400(backend):
    data = bytearray(encode(photo(200, 150), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # inside the compressed pixels: the chunk's CRC no longer matches
    with pytest.raises(InvalidImage):
        prepare_image(bytes(data))


# --- libvips: confined ---------------------------------------------------------------------------


@needs_vips
def test_libvips_can_reach_only_the_png_buffer_loader():
    import pyvips

    assert image_vips.available()
    jpeg = encode(photo(64, 48), "JPEG")
    gif = encode(photo(64, 48).convert("P"), "GIF")
    for call in (
        lambda: pyvips.Image.jpegload_buffer(jpeg).avg(),
        lambda: pyvips.Image.new_from_buffer(gif, "").avg(),
        lambda: pyvips.Image.thumbnail_buffer(jpeg, 32).avg(),
        lambda: pyvips.Image.matrixload_source(pyvips.Source.new_from_memory(b"2 2\n1 2\n3 4\n")),
    ):
        with pytest.raises(pyvips.Error):
            call()
    png = encode(photo(64, 48), "PNG")
    assert pyvips.Image.pngload_buffer(png).width == 64


@needs_vips
def test_libvips_keeps_no_operation_cache():
    import pyvips

    prepare_image(encode(photo(300, 200), "PNG"))
    assert pyvips.cache_get_max() == 0
    assert pyvips.cache_get_size() == 0


def test_libvips_is_not_loaded_by_importing_the_engine():
    code = "import sys, alttext.describe.engine; print('pyvips' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_without_pyvips_everything_runs_on_pillow():
    code = (
        "import sys, io; sys.modules['pyvips'] = None\n"  # import pyvips -> ImportError
        "from PIL import Image\n"
        "from alttext.describe import image_vips\n"
        "from alttext.describe.image import prepare_image\n"
        "buf = io.BytesIO(); Image.new('RGB', (2000, 1000), 'white').save(buf, 'PNG')\n"
        "p = prepare_image(buf.getvalue())\n"
        "print(image_vips.available(), p.mime, p.sent_width, p.sent_height)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "image/jpeg", "768", "384"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_text_size_below_the_photo_size_is_honoured(backend, fmt):
    limits = ImageLimits(target_long_side=800, text_long_side=400)
    shot = prepare_image(encode(screenshot(1600, 900), fmt, quality=95), limits)
    assert shot.text_heavy
    assert (shot.sent_width, shot.sent_height) == (400, 225)
    snap = prepare_image(encode(photo(1600, 900), fmt, quality=95), limits)
    assert (snap.sent_width, snap.sent_height) == (800, 450)


def test_no_image_byte_reaches_a_log_at_debug_level(backend, caplog):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "marker-5f3a9c-in-the-image")
    data = encode(screenshot(900, 600), "PNG", pnginfo=info)
    caplog.set_level(logging.DEBUG)  # the root logger, as an app configured for DEBUG
    prepare_image(data)
    for record in caplog.records:
        assert "marker-5f3a9c" not in record.getMessage(), record.name


# --- JPEG photos through OpenCV's decode: the same result as Pillow's path -----------------------


def _pillow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "decode_jpeg", lambda data, *, scale, grey: None)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("size", [(1155, 866), (4000, 3000), (640, 480)])
def test_opencvs_decode_gives_what_pillows_path_gave(
    monkeypatch: pytest.MonkeyPatch, orientation: int, size: tuple[int, int]
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(photo(*size), "JPEG", quality=92, exif=exif.tobytes())
    ours = prepare_image(data)
    _pillow_only(monkeypatch)
    pillows = prepare_image(data)
    assert (ours.width, ours.height, ours.sent_width, ours.sent_height) == (
        pillows.width,
        pillows.height,
        pillows.sent_width,
        pillows.sent_height,
    )
    assert (ours.mime, ours.text_heavy) == (pillows.mime, pillows.text_heavy)
    a = np.asarray(ours.pixels, dtype=np.float64)
    b = np.asarray(pillows.pixels, dtype=np.float64)
    # The same picture, upright: both decoders are libjpeg-turbo (identical pixels here), and
    # any difference left would come from the resize that follows.
    assert np.mean((a - b) ** 2) < 255**2 / 10**3.8  # PSNR above 38 dB


def test_a_grey_jpeg_is_decoded_as_grey(decodes: list[tuple[str, tuple[int, int]]]) -> None:
    prepared = prepare_image(encode(photo(1155, 866).convert("L"), "JPEG", quality=90))
    assert decodes == [("opencv", (1155, 866))]
    assert prepared.mime == "image/jpeg"
    assert Image.open(io.BytesIO(prepared.data)).mode == "L"  # one channel sent


def test_a_jpeg_opencv_refuses_gets_pillows_answer(
    decodes: list[tuple[str, tuple[int, int]]],
) -> None:
    data = encode(photo(1155, 866), "JPEG", quality=90)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        prepare_image(data[: len(data) // 2])
    assert decodes == []  # OpenCV refused it, and Pillow's decode raised


def test_an_embedded_profile_reaches_the_colour_conversion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PIL import ImageCms

    adobe_like = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    data = encode(photo(1155, 866), "JPEG", quality=90, icc_profile=adobe_like)
    seen: list[bytes | None] = []
    real = imaging.to_srgb

    def spy(img: Image.Image) -> Image.Image:
        seen.append(img.info.get("icc_profile"))
        return real(img)

    monkeypatch.setattr(imaging, "to_srgb", spy)
    prepare_image(data)
    assert seen == [adobe_like]


@pytest.mark.parametrize("make", ["screenshot", "photo", "page", "grey"])
def test_the_text_test_on_pixels_matches_the_one_on_images(make: str) -> None:
    img = {
        "screenshot": lambda: screenshot(1920, 1080),
        "photo": lambda: photo(1155, 866),
        "page": lambda: page(1240, 1754),
        "grey": lambda: page(1240, 1754).convert("L"),
    }[make]()
    verdict = imaging.looks_text_heavy(img)
    pixels = np.asarray(img)
    assert imaging.looks_text_heavy_pixels(pixels) == verdict
    if pixels.ndim == 3:
        assert imaging.looks_text_heavy_pixels(np.ascontiguousarray(pixels[..., ::-1])) == verdict
    assert verdict == (make != "photo")
