"""What the engine tests share: generated images, a counting OCR stand-in, the engine factory type.

The ``make`` fixture itself lives in ``conftest.py`` so every engine test module gets it.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from alttext.describe.engine import Engine
from alttext.describe.ocr import OcrLine, OcrReader

MakeEngine = Callable[..., Engine]


def png(width: int = 96, height: int = 64) -> bytes:
    """A small flat drawing (an ellipse on a plain background)."""
    img = Image.new("RGB", (width, height), (210, 180, 140))
    ImageDraw.Draw(img).ellipse((20, 10, 70, 55), fill=(90, 60, 30))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def photo_png(width: int = 160, height: int = 120) -> bytes:
    """A smooth, noisy, photo-like PNG: not text-heavy."""
    rng = np.random.default_rng(7)
    blobs = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    smooth = np.asarray(blobs.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, "PNG")
    return buf.getvalue()


def page_png(width: int = 480, height: int = 360) -> bytes:
    """A page of black text on white: the engine treats it as text-heavy."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    for row, y in enumerate(range(20, height - 20, 18)):
        draw.text((16, y), "Region-based segmentation of images"[: 20 + row % 15], "black", font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class FakeOcr(OcrReader):
    """Reads a fixed text; counts calls. Skips the real model load."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def read(self, image: Image.Image) -> list[OcrLine]:
        self.calls += 1
        return [
            OcrLine(text=line, score=0.99, box=((0, 0), (1, 0), (1, 1), (0, 1)))
            for line in self.text.splitlines()
        ]
