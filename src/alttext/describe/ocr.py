"""Offline text reading with rapidocr (PP-OCR ONNX models that ship inside its wheel).

Why it is set up this way:

* No download, ever. rapidocr fetches a model when it is handed only a model directory and the
  file's checksum does not match; we hand it the exact model files inside the installed wheel, so
  that code path is never reached. A missing file fails loudly at start-up instead.
* One reader per process: loading the three ONNX sessions takes about a second, so the app builds
  one ``OcrReader`` in its lifespan and shares it. The constructor also runs one tiny warm-up read
  so the first request does not pay for the lazy loading rapidocr does on first use.
* Threads: each ONNX session gets a small intra-op pool (1 thread on a 2-core machine), so two
  requests read in parallel instead of two 2-thread pools fighting over 2 cores.
* ``read`` is thread-safe without a lock. onnxruntime's ``InferenceSession.run`` is thread-safe;
  rapidocr's own wrapper loads models under double-checked locks (and we load them eagerly), and
  when called without per-call overrides its only per-call write is ``TextDetector.preprocess_op``,
  which is replaced by an identical, stateless object built from the same config: a benign race.
* Speed: the long side fed to OCR is capped (``MAX_OCR_SIDE``) and the detector works on at most
  ``DET_LIMIT_SIDE`` pixels (rapidocr's default instead *upscales* the short side to 736, which
  makes a 768x432 image cost 3x more). Boxes are scaled back to the caller's image.
* The angle classifier (text rotated 180 degrees) is off: upside-down text is rare on web pages,
  and it costs ~15% per read.

Noise filter (lines dropped), tuned on rendered text and random-noise images:

* recognition score below ``MIN_SCORE`` (0.6): rapidocr keeps down to 0.5, where misreads of
  textures and dots start to appear;
* fewer than ``MIN_ALNUM`` (2) letters or digits: a single stray character, or punctuation only;
* less than half of the non-space characters are letters or digits (dashes, bullets, rules).
  A single CJK character is therefore dropped too; that is accepted for alt text.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_SCORE = 0.6
MIN_ALNUM = 2
MIN_ALNUM_FRACTION = 0.5
MAX_OCR_SIDE = 1536
DET_LIMIT_SIDE = 960

# The PP-OCR files that rapidocr 3.x ships in ``rapidocr/models`` (matching its default config).
_MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
_RAPIDOCR_LOGGER = "RapidOCR"

Box = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float
    box: Box  # polygon in pixel coordinates of the image read


class _DropEmptyNotices(logging.Filter):
    """rapidocr logs a WARNING for every image without text; that is normal, not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "result is empty" not in record.getMessage()


def _quiet_rapidocr_logger() -> None:
    log = logging.getLogger(_RAPIDOCR_LOGGER)
    log.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropEmptyNotices) for f in log.filters):
        log.addFilter(_DropEmptyNotices())


def default_threads() -> int:
    """Intra-op threads per ONNX session: half the cores, between 1 and 2."""
    return max(1, min(2, (os.cpu_count() or 1) // 2))


def model_dir() -> Path:
    """The ``models`` folder inside the installed rapidocr package."""
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models"


class OcrReader:
    """Loads the OCR models once per process; ``read`` is CPU-bound and thread-safe."""

    def __init__(
        self,
        *,
        threads: int | None = None,
        min_score: float = MIN_SCORE,
        max_side: int = MAX_OCR_SIDE,
        warm_up: bool = True,
    ) -> None:
        from rapidocr import RapidOCR

        self.min_score = min_score
        self.max_side = max_side
        root = model_dir()
        params: dict[str, Any] = {
            "Global.log_level": "warning",
            "Global.use_cls": False,
            "Global.text_score": 0.5,  # our own, stricter filter runs after
            "Det.limit_type": "max",
            "Det.limit_side_len": DET_LIMIT_SIDE,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or default_threads(),
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        for section, name in _MODEL_FILES.items():
            path = root / name
            if not path.is_file():
                raise RuntimeError(
                    f"rapidocr model {name} is missing from {root}; reinstall rapidocr "
                    "(models are never downloaded at run time)"
                )
            params[f"{section}.model_path"] = str(path)
        _quiet_rapidocr_logger()
        self._engine = RapidOCR(params=params)
        # RapidOCR.__init__ resets its logger level from the config; keep ours.
        _quiet_rapidocr_logger()
        if warm_up:
            self.read(_warm_up_image())

    def read(self, image: Image.Image) -> list[OcrLine]:
        """Text lines in reading order (top to bottom, then left to right), noise removed."""
        pixels, scale = _prepare(image, self.max_side)
        result = self._engine(pixels)
        boxes = getattr(result, "boxes", None)
        texts = getattr(result, "txts", None)
        scores = getattr(result, "scores", None)
        if boxes is None or texts is None or scores is None:
            return []
        lines = []
        for box, raw, score in zip(boxes, texts, scores, strict=False):
            text = " ".join(str(raw).split())
            if float(score) < self.min_score or not is_meaningful(text):
                continue
            polygon = tuple((float(x) * scale, float(y) * scale) for x, y in box)
            lines.append(OcrLine(text=text, score=float(score), box=polygon))
        return reading_order(lines)


def is_meaningful(text: str) -> bool:
    """False for stray characters and punctuation-only lines (see the module docstring)."""
    alnum = sum(ch.isalnum() for ch in text)
    visible = sum(not ch.isspace() for ch in text)
    return alnum >= MIN_ALNUM and alnum >= MIN_ALNUM_FRACTION * visible


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Group lines whose vertical centres are close into rows; rows top-down, each left-right."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: _span(ln, 1)[0]):
        top, bottom = _span(line, 1)
        if rows:
            ref_top, ref_bottom = _span(rows[-1][0], 1)
            tolerance = 0.5 * min(bottom - top, ref_bottom - ref_top)
            if abs((top + bottom) / 2 - (ref_top + ref_bottom) / 2) <= tolerance:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda ln: _span(ln, 0)[0])]


def _span(line: OcrLine, axis: int) -> tuple[float, float]:
    values = [point[axis] for point in line.box]
    return min(values), max(values)


def _prepare(image: Image.Image, max_side: int) -> tuple[np.ndarray[Any, Any], float]:
    """BGR uint8 pixels for rapidocr (it takes arrays as BGR) and the factor back to ``image``."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    img = image.convert("RGBA" if has_alpha else "RGB")
    scale = 1.0
    long_side = max(img.size)
    if long_side > max_side:
        scale = long_side / max_side
        size = (max(1, round(img.width / scale)), max(1, round(img.height / scale)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if has_alpha:
        img = _flatten(img)
    rgb = np.asarray(img)
    return np.ascontiguousarray(rgb[:, :, ::-1]), scale


def _flatten(img: Image.Image) -> Image.Image:
    """Composite onto white, or black when the visible content is light (a white logo)."""
    rgba = np.asarray(img)
    visible = rgba[:, :, 3] > 0
    luminance = rgba[:, :, :3][visible] @ np.array([0.299, 0.587, 0.114])
    light = luminance.size > 0 and float(luminance.mean()) >= 128
    background = Image.new("RGBA", img.size, (0, 0, 0, 255) if light else (255, 255, 255, 255))
    return Image.alpha_composite(background, img).convert("RGB")


def _warm_up_image() -> Image.Image:
    img = Image.new("RGB", (160, 48), "white")
    ImageDraw.Draw(img).text((8, 8), "OK 42", font=ImageFont.load_default(size=28), fill="black")
    return img
