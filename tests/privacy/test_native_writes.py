"""The decoders and encoders that run in C, below the audit hook (OpenCV's JPEG decode, libvips'
PNG load and save, Pillow's and pillow-heif's codecs), create no file while they prepare an
image: the kernel is asked (inotify) about the folders any of them would write a temporary file
to (OpenCV's ``OPENCV_TEMP_PATH``, ``TMPDIR``, the working directory), so a file written and
deleted again within a call is seen too."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alttext.describe import imaging
from alttext.describe.errors import InvalidImage
from alttext.describe.image import prepare_image
from tests.describe.test_image import photo, screenshot
from tests.privacy import nostorage


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Private folders for every place a native library would put a temporary file."""
    paths = [tmp_path / name for name in ("opencv", "tmpdir", "cwd")]
    for path in paths:
        path.mkdir()
    monkeypatch.setenv("OPENCV_TEMP_PATH", str(paths[0]))
    monkeypatch.setenv("TMPDIR", str(paths[1]))
    monkeypatch.setattr(tempfile, "tempdir", str(paths[1]))
    monkeypatch.chdir(paths[2])
    return paths


def encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def test_the_witness_sees_a_file_written_and_deleted_within_the_block(
    folders: list[Path],
) -> None:
    # NamedTemporaryFile: in TMPDIR, deleted on close.
    with nostorage.watching(folders) as seen, tempfile.NamedTemporaryFile() as f:
        f.write(b"pixels")
        f.flush()
    assert any(entry.startswith(str(folders[1])) for entry in seen), seen


def test_preparing_every_format_writes_no_file(folders: list[Path]) -> None:
    big = photo(4000, 3000)
    images = {
        "jpeg 1 MP": encoded(photo(1155, 866), "JPEG", quality=90),
        "jpeg 12 MP (1/4 scale)": encoded(big, "JPEG", quality=85),
        "jpeg grey": encoded(photo(1155, 866).convert("L"), "JPEG"),
        "jpeg text-heavy": encoded(screenshot(1920, 1080), "JPEG", quality=90),
        "jpeg cmyk": encoded(photo(800, 600).convert("CMYK"), "JPEG"),
        "png screenshot": encoded(screenshot(1920, 1080), "PNG"),
        "png photo": encoded(photo(1200, 900), "PNG"),
        "webp": encoded(photo(1200, 900), "WEBP"),
        "gif": encoded(screenshot(600, 300).convert("P"), "GIF"),
        "heic": encoded(photo(1200, 900), "HEIF"),
        "avif": encoded(photo(1200, 900), "AVIF"),
    }
    truncated = images["jpeg 1 MP"][: len(images["jpeg 1 MP"]) // 2]
    with nostorage.watching(folders) as seen:
        for data in images.values():
            prepare_image(data)
        with pytest.raises(InvalidImage):
            prepare_image(truncated)
        for scale in (1, 2, 4, 8):
            decoded = imaging.decode_jpeg(images["jpeg 12 MP (1/4 scale)"], scale=scale, grey=False)
            assert decoded is not None
    assert seen == []
    assert all(os.listdir(folder) == [] for folder in folders)


def test_opencv_decodes_from_memory(folders: list[Path]) -> None:
    """OpenCV falls back to a temporary file for a decoder that cannot read a buffer; its JPEG
    decoder reads the buffer, so the pixels come back and no file appears."""
    data = encoded(photo(640, 480), "JPEG", quality=95)
    with nostorage.watching(folders) as seen:
        pixels = imaging.decode_jpeg(data, scale=1, grey=False)
    assert seen == []
    assert pixels is not None
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(imaging.rgb_from_bgr(pixels), rgb)
