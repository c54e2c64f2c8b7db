"""imaging.shrink_photo: the resampler of photos that need less than a 2x reduction."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from alttext.describe import image, imaging
from alttext.describe.image import ImageLimits, prepare_image
from tests.describe.test_image import encode


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_exact_size_same_mode_and_info_kept(mode: str) -> None:
    src = Image.new(mode, (1155, 866), 128 if mode == "L" else (10, 20, 30))
    src.info["icc_profile"] = b"profile"
    out = imaging.shrink_photo(src, (768, 576))
    assert out.size == (768, 576)
    assert out.mode == mode
    assert out.info == {"icc_profile": b"profile"}
    assert np.asarray(out).reshape(-1, 1 if mode == "L" else 3).std(axis=0).max() == 0


def test_one_pixel_stripes_come_out_grey_not_as_false_stripes() -> None:
    """The finest detail there is (alternate black and white columns) cannot be shown at 2/3 of
    the size; without a prefilter, bilinear sampling turns it into coarse false stripes."""
    stripes = np.zeros((600, 900), dtype=np.uint8)
    stripes[:, ::2] = 255
    out = np.asarray(imaging.shrink_photo(Image.fromarray(stripes), (600, 400))).astype(float)
    naive = cv2.resize(stripes, (600, 400), interpolation=cv2.INTER_LINEAR).astype(float)
    assert abs(out.mean() - 127.5) < 3
    assert out.std() < 0.5 * naive.std()


def test_detail_the_smaller_image_can_show_is_kept() -> None:
    """A sinusoid of period 8 becomes one of period 5.3 at 2/3 of the size, well within what the
    smaller image can show: it keeps most of its contrast (no needless blur)."""
    x = np.arange(900)
    wave = np.tile((127.5 + 100 * np.sin(2 * np.pi * x / 8)).astype(np.uint8), (600, 1))
    out = np.asarray(imaging.shrink_photo(Image.fromarray(wave), (600, 400))).astype(float)
    amplitude = (np.percentile(out, 99) - np.percentile(out, 1)) / 2
    assert amplitude >= 0.75 * 100


def test_prepare_sends_a_small_reduction_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[int, int], tuple[int, int]]] = []
    real = imaging.shrink_photo_pixels

    def spy(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        calls.append(((pixels.shape[1], pixels.shape[0]), size))
        return real(pixels, size)

    monkeypatch.setattr(image.imaging, "shrink_photo_pixels", spy)
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 256, (866, 1155, 3), dtype=np.uint8)
    prepared = prepare_image(encode(Image.fromarray(noisy), "JPEG"), ImageLimits())
    assert calls == [((1155, 866), (768, 576))]
    assert (prepared.sent_width, prepared.sent_height) == (768, 576)


@pytest.mark.parametrize("sigma", [0.25, 0.45, 0.56, 0.58, 0.6, 0.75, 0.87, 1.3])
def test_the_short_kernel_blurs_as_opencvs_full_one(sigma: float) -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    taps = imaging._taps(sigma)
    short = cv2.GaussianBlur(noise, (taps, taps), sigma).astype(int)
    full = cv2.GaussianBlur(noise, (0, 0), sigma).astype(int)
    assert np.abs(short - full).max() <= 3
    assert taps <= 5 or sigma > 0.87
