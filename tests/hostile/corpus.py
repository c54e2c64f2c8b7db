"""A hostile image corpus, built in memory by the tests: nothing is downloaded, nothing written.

Every sample names the answers it may get: ``"ok"`` (a prepared image, or a 200 from the
service) or the status of the clean refusal (400 ``invalid_image``, 413 ``image_too_large``,
415 ``unsupported_media_type``). Never a 500, never another exception.

* bombs: huge declared dimensions in tiny files, in every accepted format (PNG, GIF, WebP in its
  three headers, TIFF, HEIC, AVIF, JPEG, BMP), and a PNG whose 49 megapixels (just under the
  limit) inflate from 50 kB;
* truncations of every format at every class of offset: in the header, in the first chunk, in
  the middle of the data, in the last bytes;
* polyglots: a GIF that is also a ZIP, a GIF that is also HTML/JavaScript, a JPEG with PHP after
  its end or in a comment, a PNG with HTML after IEND or in a text chunk, and their reverses
  (a ZIP, HTML or PDF that holds an image further on);
* a GIF of 10,000 frames;
* huge metadata: EXIF filling a JPEG APP1 segment, 16 MB EXIF in PNG and WebP, 16 MB ICC profiles
  in JPEG (255 APP2 segments), PNG, TIFF and WebP, an ICC profile and a text chunk that inflate
  to 100 MB;
* what is not an image we take: SVG (with an external entity), SVGZ, PDF, PostScript, EPS,
  HTML, XML.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()  # HEIC writer (and reader) for Pillow

OK = "ok"
Outcome = str | int  # "ok", or the status of the refusal


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    outcomes: frozenset[Outcome]
    # Bytes of the input that must never reach what is sent on (scripts, archives, metadata).
    payload: bytes | None = field(default=None, repr=False)

    @property
    def header_outcomes(self) -> frozenset[Outcome]:
        """What ``read_header`` may answer: the same refusals before any pixel is decoded
        (format, size); a file broken further on may still have a readable header."""
        if self.outcomes <= {413, 415}:
            return self.outcomes
        return self.outcomes | {OK}

    def __str__(self) -> str:
        return self.name


def _sample(name: str, data: bytes, *outcomes: Outcome, payload: bytes | None = None) -> Sample:
    return Sample(name, data, frozenset(outcomes), payload)


# --- building blocks ----------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def photo(width: int, height: int, seed: int = 7) -> Image.Image:
    """Gradients and noise: compresses like a photo, so every format has real data to cut."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 100 / (width + height)], -1)
    noisy = base + rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with(*chunks: bytes, width: int = 16, height: int = 16, mode: int = 0) -> bytes:
    """A PNG of ``width`` x ``height`` 8-bit pixels (grey, or RGB with ``mode=2``) with
    ``chunks`` between IHDR and IDAT; the pixels are zeros, deflated."""
    channels = 3 if mode == 2 else 1
    raw = (b"\0" + b"\0" * width * channels) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0))
        + b"".join(chunks)
        + png_chunk(b"IDAT", zlib.compress(raw, 1))
        + png_chunk(b"IEND", b"")
    )


def tiff_exif(entries: int, value_size: int) -> bytes:
    """A little-endian TIFF/EXIF block: ``entries`` UNDEFINED tags whose ``value_size`` bytes
    all start at the same offset (each tag a window onto one block of zeros)."""
    data_offset = 8 + 2 + 12 * entries + 4
    ifd = struct.pack("<H", entries) + b"".join(
        struct.pack("<HHII", i + 1, 7, value_size, data_offset) for i in range(entries)
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + b"\0" * value_size


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WEBP" + b"".join(
        kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
        for kind, data in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        out.append((kind, data[at + 8 : at + 8 + size]))
        at += 8 + size + (size % 2)
    return out


def vp8x(width: int, height: int, *, icc: bool = False, exif: bool = False) -> bytes:
    flags = (0x20 if icc else 0) | (0x08 if exif else 0)
    return (
        bytes([flags, 0, 0, 0])
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )


def small(fmt: str, size: tuple[int, int] = (96, 72), **params: object) -> bytes:
    return encode(photo(*size), fmt, **params)


# --- bombs -------------------------------------------------------------------------------------


def _png_bomb(width: int, height: int) -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def _patched(data: bytes, at: int, value: bytes) -> bytes:
    out = bytearray(data)
    out[at : at + len(value)] = value
    return bytes(out)


def _gif_bomb() -> bytes:
    data = encode(Image.new("P", (16, 16)), "GIF")
    data = _patched(data, 6, struct.pack("<HH", 65535, 65535))  # logical screen
    descriptor = data.index(b",", 13)
    return _patched(data, descriptor + 5, struct.pack("<HH", 65535, 65535))


def _webp_vp8_bomb() -> bytes:
    data = small("WEBP", (16, 16), quality=50)
    assert data[12:16] == b"VP8 "
    # The key frame's 14-bit width and height follow its start code (9d 01 2a).
    return _patched(data, data.index(b"\x9d\x01\x2a") + 3, struct.pack("<HH", 16383, 16383))


def _webp_vp8l_bomb() -> bytes:
    data = small("WEBP", (16, 16), lossless=True)
    assert data[12:16] == b"VP8L"
    # After the 0x2f signature: 14 bits width - 1, 14 bits height - 1, alpha, version.
    bits = int.from_bytes(data[21:25], "little")
    bits = (bits & ~((1 << 28) - 1)) | 16383 | (16383 << 14)
    return _patched(data, 21, bits.to_bytes(4, "little"))


def _webp_vp8x_bomb() -> bytes:
    chunks = webp_chunks(small("WEBP", (16, 16), quality=50))
    return riff((b"VP8X", vp8x(1 << 24, 1 << 24)), *chunks)


def _tiff_bomb() -> bytes:
    data = bytearray(small("TIFF", (16, 16)))
    ifd = struct.unpack("<I", data[4:8])[0]
    for index in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        at = ifd + 2 + 12 * index
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            value = struct.pack("<HH", 65535, 0) if kind == 3 else struct.pack("<I", 2_000_000_000)
            data[at + 8 : at + 12] = value
    return bytes(data)


def _ispe_bomb(fmt: str, side: int) -> bytes:
    # 64x64: no clean-aperture box, so the declared size is the ispe box's.
    data = encode(photo(64, 64), fmt, quality=50)
    at = data.index(b"ispe") + 8  # after the box type and its version and flags
    return _patched(data, at, struct.pack(">II", side, side))


@cache
def avif_over_the_limit() -> bytes:
    """A real AVIF of 7100x7100 (50.4 megapixels, just over the limit) in about 1 kB."""
    return encode(Image.new("L", (7100, 7100)), "AVIF", speed=10, quality=0, subsampling="4:2:0")


def _jpeg_bomb() -> bytes:
    data = small("JPEG", (16, 16))
    sof = data.index(b"\xff\xc0")
    return _patched(data, sof + 5, struct.pack(">HH", 65000, 65000))


def _bmp_bomb() -> bytes:
    return _patched(small("BMP", (16, 16)), 18, struct.pack("<ii", 1_000_000, 1_000_000))


def bombs() -> Iterator[Sample]:
    yield _sample("png_ihdr_100000x100000", _png_bomb(100_000, 100_000), 413)
    yield _sample("png_ihdr_2147483647_square", _png_bomb(2**31 - 1, 2**31 - 1), 413)
    yield _sample("png_ihdr_1x2147483647", _png_bomb(1, 2**31 - 1), 400, 413)
    # 49 megapixels, just under the limit: 49 MB of pixels from a 50 kB file. Allowed, and
    # decoded within the time and memory bounds of the tests.
    yield _sample("png_zlib_49_megapixels", png_with(width=7000, height=7000), OK)
    yield _sample("gif_65535x65535", _gif_bomb(), 413)
    yield _sample("webp_vp8_16383x16383", _webp_vp8_bomb(), 413)
    yield _sample("webp_vp8l_16384x16384", _webp_vp8l_bomb(), 413)
    yield _sample("webp_vp8x_canvas_16777216_square", _webp_vp8x_bomb(), 400, 413)
    yield _sample("tiff_2000000000x65535", _tiff_bomb(), 413)
    yield _sample("heic_ispe_60000x60000", _ispe_bomb("HEIF", 60_000), 413)
    yield _sample("heic_ispe_4294967295_square", _ispe_bomb("HEIF", 2**32 - 1), 400, 413)
    yield _sample("avif_7100x7100_real", avif_over_the_limit(), 413)
    yield _sample("avif_ispe_60000x60000", _ispe_bomb("AVIF", 60_000), 400, 413)
    yield _sample("jpeg_sof_65000x65000", _jpeg_bomb(), 413)
    yield _sample("bmp_1000000x1000000", _bmp_bomb(), 413)


# --- truncations -------------------------------------------------------------------------------

TRUNCATED_FORMATS = {
    "png": ("PNG", {}),
    "gif": ("GIF", {}),
    "webp_lossy": ("WEBP", {"quality": 80}),
    "webp_lossless": ("WEBP", {"lossless": True}),
    "tiff": ("TIFF", {}),
    "tiff_deflate": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    "heic": ("HEIF", {"quality": 80}),
    "avif": ("AVIF", {"quality": 80}),
    "jpeg": ("JPEG", {"quality": 90}),
    "jpeg_progressive": ("JPEG", {"quality": 90, "progressive": True}),
    "bmp": ("BMP", {}),
}


def cut_points(size: int) -> dict[str, int]:
    """Where to cut a file of ``size`` bytes: each class of offset, a few times."""
    points = {
        "header_1": 1,
        "header_4": 4,
        "header_8": 8,
        "header_12": 12,
        "first_chunk_20": 20,
        "first_chunk_33": 33,
        "first_chunk_eighth": size // 8,
        "mid_data": size // 2,
        "last_16": size - 16,
        "last_4": size - 4,
        "last_1": size - 1,
    }
    return {name: at for name, at in points.items() if 0 < at < size}


def truncations() -> Iterator[Sample]:
    for name, (fmt, params) in TRUNCATED_FORMATS.items():
        whole = encode(photo(96, 72), fmt, **params)
        for point, at in cut_points(len(whole)).items():
            yield _sample(f"{name}_cut_{point}", whole[:at], OK, 400, 415)


# --- polyglots ---------------------------------------------------------------------------------

PHP = b"<?php system($_GET['c']); ?>"
SCRIPT = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _zip_archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("payload.php", PHP)
        archive.writestr("index.html", SCRIPT)
    return buf.getvalue()


def _jpeg_with_comment(comment: bytes) -> bytes:
    data = small("JPEG", (64, 48))
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return data[:2] + segment + data[2:]


def polyglots() -> Iterator[Sample]:
    gif = small("GIF", (64, 48))
    png = small("PNG", (64, 48))
    jpeg = small("JPEG", (64, 48))
    archive = _zip_archive()
    # A GIF that is a ZIP too (GIFAR): readers of each format find theirs.
    yield _sample("gif_zip", gif + archive, OK, payload=b"payload.php")
    # GIF89a/*…*/: a GIF header that is also the start of a script comment in HTML/JS.
    html_gif = b"GIF89a/*<svg onload=alert(1)>*/=1;" + SCRIPT + b"\x3b"
    yield _sample("gif_html_script", html_gif, 400, 413)
    yield _sample("gif_html_in_comment", _gif_with_comment(SCRIPT), OK, payload=b"<script>")
    yield _sample("jpeg_trailing_php", jpeg + PHP, OK, payload=PHP)
    yield _sample("jpeg_php_in_comment", _jpeg_with_comment(PHP), OK, payload=PHP)
    yield _sample("jpeg_trailing_pdf", jpeg + b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", OK)
    yield _sample("png_trailing_html", png + SCRIPT, OK, payload=b"<script>")
    html_chunk = png_chunk(b"tEXt", b"Comment\0" + SCRIPT)
    yield _sample("png_html_in_text_chunk", png_with(html_chunk), OK, payload=b"<script>")
    yield _sample("zip_then_gif", archive + gif, 415)
    yield _sample("html_then_gif", SCRIPT + gif, 415)
    yield _sample("pdf_then_jpeg", b"%PDF-1.7\n" + jpeg, 415)
    yield _sample("php_then_png", PHP + png, 415)


def _gif_with_comment(comment: bytes) -> bytes:
    return encode(photo(64, 48).convert("P"), "GIF", comment=comment)


# --- many frames -------------------------------------------------------------------------------


def gif_frames(count: int) -> bytes:
    """A 16x16 GIF of ``count`` frames: one full frame from Pillow, then ``count - 1``
    hand-written 1x1 frames (the smallest LZW stream there is), each with its own delay."""
    first = encode(Image.new("P", (16, 16), 1), "GIF")
    assert first.endswith(b"\x3b")
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 10 ms
        + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # 1x1 at (0, 0), no local table
        + b"\x02\x02\x44\x01\x00"  # LZW minimum code size 2: clear, index 0, end
    )
    return first[:-1] + frame * (count - 1) + b"\x3b"


def many_frames() -> Iterator[Sample]:
    yield _sample("gif_10000_frames", gif_frames(10_000), OK)


# --- huge metadata -----------------------------------------------------------------------------

MB = 1 << 20


def _jpeg_with_segments(*segments: bytes) -> bytes:
    data = small("JPEG", (64, 48))
    return data[:2] + b"".join(segments) + data[2:]


def _app(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _jpeg_icc_16mb() -> bytes:
    piece = 65519 - 14
    junk = bytes(range(256)) * (piece // 256 + 1)
    segments = [
        _app(0xE2, b"ICC_PROFILE\0" + bytes([i + 1, 255]) + junk[:piece]) for i in range(255)
    ]
    return _jpeg_with_segments(*segments)


def _jpeg_exif_full_app1() -> bytes:
    # The most an APP1 segment holds: 65,533 bytes, an IFD of 5,000 windows onto 5 kB.
    exif = tiff_exif(5000, 5000)[: 65533 - 6]
    return _jpeg_with_segments(_app(0xE1, b"Exif\0\0" + exif))


def _tiff_icc(size: int) -> bytes:
    profile = (b"\x00" * 128 + bytes(range(256))) * (size // 384)
    return encode(photo(64, 48), "TIFF", icc_profile=profile)


def _webp_with(kind: bytes, data: bytes, flag: str) -> bytes:
    chunks = webp_chunks(small("WEBP", (64, 48), quality=80))
    header = vp8x(64, 48, icc=flag == "icc", exif=flag == "exif")
    if kind == b"ICCP":
        return riff((b"VP8X", header), (kind, data), *chunks)
    return riff((b"VP8X", header), *chunks, (kind, data))


def huge_metadata() -> Iterator[Sample]:
    exif_16mb = tiff_exif(65535, 16 * MB - 65535 * 12 - 32)
    yield _sample("jpeg_exif_full_app1_5000_tags", _jpeg_exif_full_app1(), OK, 400)
    yield _sample("png_exif_16mb_65535_tags", png_with(png_chunk(b"eXIf", exif_16mb)), OK, 400)
    yield _sample("webp_exif_16mb", _webp_with(b"EXIF", exif_16mb, "exif"), OK, 400)
    yield _sample("jpeg_icc_16mb_255_segments", _jpeg_icc_16mb(), OK, 400)
    junk_icc = b"\x00" * 128 + bytes(range(256)) * (16 * MB // 256)
    iccp = png_chunk(b"iCCP", b"junk\0\0" + zlib.compress(junk_icc, 1))
    yield _sample("png_icc_16mb", png_with(iccp), OK, 400)
    bomb_icc = png_chunk(b"iCCP", b"bomb\0\0" + zlib.compress(b"\0" * (100 * MB), 1))
    yield _sample("png_icc_inflating_to_100mb", png_with(bomb_icc), OK, 400)
    ztxt = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * (100 * MB), 1))
    yield _sample("png_ztxt_inflating_to_100mb", png_with(ztxt), OK, 400)
    yield _sample("tiff_icc_16mb", _tiff_icc(16 * MB), OK, 400)
    yield _sample("webp_icc_16mb", _webp_with(b"ICCP", junk_icc, "icc"), OK, 400)


# --- not an image we take ----------------------------------------------------------------------

SVG = (
    b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<text>&xxe;</text><image href="http://169.254.169.254/latest/meta-data/"/>'
    b"<script>alert(1)</script></svg>"
)
POSTSCRIPT = (
    b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 100 100\n"
    b"(%pipe%touch /tmp/alttext-pwned) (w) file\nshowpage\n"
)
PDF = (
    b"%PDF-1.7\n1 0 obj<</Type/Catalog/Pages 2 0 R/OpenAction<</S/JavaScript/JS(app.alert(1))>>"
    b">>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _eps_binary() -> bytes:
    # The DOS EPS header (C5 D0 D3 C6) in front of PostScript: Pillow's EPS reader would run
    # Ghostscript on it.
    header = b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 32, len(POSTSCRIPT), 0, 0, 0, 0)
    return header + b"\xff\xff" + POSTSCRIPT


def unsupported() -> Iterator[Sample]:
    yield _sample("svg_with_external_entity", SVG, 415)
    yield _sample("svg_bare", b'<svg xmlns="http://www.w3.org/2000/svg"/>', 415)
    yield _sample("svgz", gzip.compress(SVG), 415)
    yield _sample("pdf_with_javascript", PDF, 415)
    yield _sample("postscript", POSTSCRIPT, 415)
    yield _sample("eps_dos_binary", _eps_binary(), 415)
    yield _sample("eps_text", b"%!PS-Adobe-3.0 EPSF-3.0\n" + POSTSCRIPT, 415)
    yield _sample("html", SCRIPT, 415)
    yield _sample("xml", b'<?xml version="1.0"?><root/>', 415)


SUPPORTED_CATEGORIES = {
    "bombs": bombs,
    "truncations": truncations,
    "polyglots": polyglots,
    "many_frames": many_frames,
    "huge_metadata": huge_metadata,
    "unsupported": unsupported,
}


@cache
def corpus() -> tuple[Sample, ...]:
    """Every sample, built once per test process."""
    samples = tuple(s for build in SUPPORTED_CATEGORIES.values() for s in build())
    names = [s.name for s in samples]
    assert len(names) == len(set(names)), "sample names must be unique"
    return samples
