"""read_header: a decorative request's image is validated from its header, never decoded."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from alttext.describe.engine import Engine
from alttext.describe.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from alttext.describe.image import ImageLimits, prepare_image, read_header
from alttext.describe.rules import LanguageIdentifier
from alttext.describe.types import DescribeOptions, ImageInfo
from tests.describe.engine_helpers import png
from tests.describe.scripted_provider import ScriptedProvider


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def test_reports_size_and_format_and_sends_nothing() -> None:
    assert read_header(png(96, 64)) == ImageInfo(
        width=96, height=64, format="png", sent_width=0, sent_height=0
    )


def test_size_is_after_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (200, 100), "blue"), "JPEG", exif=exif.tobytes())
    info = read_header(data)
    assert (info.width, info.height, info.format) == (100, 200, "jpeg")


def test_pixels_are_never_decoded() -> None:
    data = png(96, 64)
    # Keep the header and the chunk layout, zero the compressed pixels: decoding fails, reading
    # the header does not.
    start = data.index(b"IDAT") + 4
    broken = data[:start] + bytes(len(data) - start - 16) + data[-16:]
    with pytest.raises(InvalidImage):
        prepare_image(broken)
    assert read_header(broken).width == 96


@pytest.mark.parametrize(
    ("data", "limits", "error"),
    [
        (b"", ImageLimits(), InvalidImage),
        (b"GIF87", ImageLimits(), UnsupportedMediaType),
        (b"%PDF-1.7 not an image", ImageLimits(), UnsupportedMediaType),
        (b"\x89PNG\r\n\x1a\n", ImageLimits(), InvalidImage),
        (png(96, 64), ImageLimits(max_bytes=100), ImageTooLarge),
        (png(96, 64), ImageLimits(max_pixels=96 * 64 - 1), ImageTooLarge),
        (png(96, 64), ImageLimits(min_side=65), InvalidImage),
    ],
)
def test_refuses_what_prepare_refuses(
    data: bytes, limits: ImageLimits, error: type[Exception]
) -> None:
    with pytest.raises(error):
        read_header(data, limits)
    with pytest.raises(error):
        prepare_image(data, limits)


async def test_a_decorative_image_is_answered_without_the_provider(
    language_identifier: LanguageIdentifier,
) -> None:
    provider = ScriptedProvider()
    with ThreadPoolExecutor(1) as pool:
        engine = Engine(provider, executor=pool, language_identifier=language_identifier)
        d = await engine.describe(
            png(120, 80),
            DescribeOptions(role="decorative", languages=("en", "de"), long_description=True),
        )
    assert (d.image.width, d.image.height, d.image.sent_width) == (120, 80, 0)
    assert (d.alt_text, d.alt_texts, d.decorative, d.model) == (
        "",
        {"en": "", "de": ""},
        True,
        "none",
    )
    assert d.review_reasons == ["no long description: the image is marked decorative"]
    assert provider.requests == []
