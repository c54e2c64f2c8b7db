"""The offline engine: alt text from OCR, a small image classifier and plain pixel facts.

No model service and no network. It never invents content. What it can say truthfully: the words
OCR read with confidence, one plain noun from the image classifier when it is sure ("Photo of a
cat."; see :mod:`alttext.describe.classify`), what kind of image a screenshot or a document page
is (with its OCR'd heading), and facts computed from pixels (shape, dominant colours, flat graphic
vs photo-like, transparency). Everything it says is marked for review with a reason; so is what it
could not use (the caller's context and keywords, unreadable text). The reply has the same JSON
shape the engine asks of a vision model, so the engine parses and checks it the same way.

Auto role (thresholds on a 128-px thumbnail; see ``inspect_image``):

* near-uniform pixels (std dev < ``UNIFORM_STD``): a spacer or solid divider -> decorative;
* a ``link_target`` was given -> functional (the image is the content of a link);
* a screenshot, or a document page whose words do not fit in the alt text -> informative, named
  as such ('Screenshot of a page headed "Billing".', 'Document page headed "Minutes".');
* OCR words on a plain background (the most common colour covers >= ``PLAIN_BG_SHARE`` and
  < ``OTHER_INK_MAX`` of the pixels differ from it outside the text boxes), or text boxes cover
  >= ``TEXT_COVER_MIN`` of the image -> text;
* anything else -> informative (the classifier's noun when it is sure, else the pixel facts;
  with the words quoted when there are any).

OCR lines scoring below ``QUOTE_SCORE`` (handwriting read as "(f-xfas") are never presented as
the image's words: not in the alt text, ``text_in_image`` or ``long_description``; a review
reason says text was left out.

Screenshot and document, from pixels and OCR boxes only: at least ``DOC_MIN_LINES`` confident
lines of two words or more. A *document* is one column of text (the lines share a left margin)
on a light background with little ink outside the text boxes and no flat panels of another
colour; a *screenshot* is a flat graphic with text in several columns, or with panels (a sidebar,
a title bar), other drawn elements (buttons) or a dark background. Tuned on rendered pages,
screenshots and a scan; no photo, chart or table of the held-out set was wrongly named
(docs/quality.md). The heading is the tallest of the first ``HEADING_LOOKAHEAD`` lines when it
stands out (>= ``HEADING_RATIO`` x the median line height), else the first line.

Languages: the image's words are language-neutral, the generic phrases are English only. A
non-English language gets the words alone when there are any, else the English phrase, and the
reply says so in ``review_reasons``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image, ImageDraw

from alttext.describe.classify import Guess, ImageClassifier
from alttext.describe.errors import InvalidImage, UpstreamError
from alttext.describe.languages import primary_subtag
from alttext.describe.ocr import OcrLine, OcrReader
from alttext.describe.providers.base import ModelInfo, ModelReply, ModelRequest
from alttext.describe.rules.cut import cut
from alttext.describe.types import DescribeOptions, ResolvedRole

MODEL_ID = "local/rapidocr"

THUMB_SIDE = 128
UNIFORM_STD = 3.0  # of 0-255 grey levels (and alpha)
FLAT_TOP_COLOURS = 8  # a flat graphic: its 8 most common 4-bit colours cover ...
FLAT_COVERAGE = 0.85  # ... at least this share of the pixels
GREY_FLAT_COVERAGE = 0.6  # greyscale: its 8 most common exact grey levels cover this share
INK_DISTANCE = 48  # a pixel differs from the background by more than this in some channel
PLAIN_BG_SHARE = 0.5
OTHER_INK_MAX = 0.03
TEXT_COVER_MIN = 0.35
COLOUR_SHARE_MIN = 0.2
QUOTE_SCORE = 0.85  # OCR lines below this are not the image's words (handwriting: ~0.73)
SURE_OCR_SCORE = 0.95  # quoted lines below this get a spelling-check reason
DOC_MIN_LINES = 4  # lines of two words or more
COLUMN_SLACK = 0.04  # of the width: lines starting this close share a left margin
ONE_COLUMN_SHARE = 0.7  # this share of the lines on one margin: a single column
DOC_BG_GREY = 190  # a document's background is at least this light (0-255) ...
DOC_OTHER_INK = 0.06  # ... with at most this much ink outside the text boxes
SCREEN_OTHER_INK = 0.03  # a screenshot: several columns, or this much other ink,
DARK_BG_GREY = 80  # or a background at most this dark,
PANEL_SHARE = 0.08  # or flat panels of another colour (sidebar, title bar) covering this share
PANEL_MIN_DIFF = 6  # a panel's colour differs from the background by this much ...
PANEL_MIN_PIXELS = 64  # ... over at least this many thumbnail pixels
HEADING_LOOKAHEAD = 3
HEADING_RATIO = 1.2
HEADING_MAX_WORDS = 10
LABEL_MAX_WORDS = 6
LABEL_MAX_CHARS = 60

GENERIC = "offline engine: no vision model configured; description is generic"
OCR_CHECK = "offline engine: text read by OCR, check spelling"
ENGLISH_ONLY = "offline engine writes only English descriptions"
LINK_LABEL = "offline engine: label derived from the link target, not the image"
NO_LABEL = "offline engine: no readable label or link target for a functional image"
NO_TEXT = "offline engine: no readable text found in an image marked as text"
CUT = "offline engine: the text in the image was cut to fit max_length"
AUTO_DECORATIVE = "offline engine: near-uniform image classified as decorative"
NO_LONG = (
    "offline engine: no long description: no readable text to build it from, and it cannot "
    "describe charts or diagrams"
)
UNREADABLE = "offline engine: some text in the image could not be read reliably and was left out"
CLASSIFIED = "offline engine: the subject was named by a small image classifier; check it"
PERSON = (
    "offline engine: the picture may show a person; the offline engine does not describe people"
)
NO_CONTEXT = "offline engine: the supplied context was not used (no vision model to relate it)"
NO_KEYWORDS = "offline engine: keywords not used: "

Kind = Literal["screenshot", "document"]

_DOC_TYPES = {"pdf", "doc", "docx", "xls", "xlsx", "csv", "ppt", "pptx", "zip", "txt"}


@dataclass(frozen=True)
class Look:
    """Facts about one image that the offline engine may state."""

    width: int
    height: int
    uniform: bool
    flat: bool
    transparent: bool
    # One or two dominant colour names; empty when multicoloured; ("transparent",) when invisible.
    colours: tuple[str, ...]
    lines: tuple[OcrLine, ...]  # confident lines (score >= QUOTE_SCORE), in reading order
    text_cover: float  # share of the image inside OCR boxes
    plain_text: bool  # the words sit on a plain background with nothing else drawn
    unreadable: int = 0  # OCR lines left out for low confidence
    kind: Kind | None = None
    heading: str | None = None
    subject: Guess | None = None  # the classifier's answer; None when it did not run

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    @property
    def min_score(self) -> float:
        return min((line.score for line in self.lines), default=1.0)


class LocalProvider:
    """Provider that runs on this machine: rapidocr, an image classifier, pixel statistics."""

    name = "local"

    def __init__(
        self,
        ocr: OcrReader,
        executor: Executor | None = None,
        classifier: ImageClassifier | None = None,
    ) -> None:
        self._ocr = ocr
        self._executor = executor
        self._classifier = classifier

    async def complete(self, request: ModelRequest) -> ModelReply:
        options = request.options
        loop = asyncio.get_running_loop()
        see = options.role != "decorative"
        try:
            # OCR and the classifier are CPU work: never on the event loop.
            look = await loop.run_in_executor(self._executor, self._look_at, request, see)
        except InvalidImage:
            raise
        except Exception as exc:
            raise UpstreamError("The offline engine failed on this image.") from exc
        payload, reasons = compose(look, options)
        return ModelReply(
            content=json.dumps(payload, ensure_ascii=False),
            model=MODEL_ID,
            provider=self.name,
            cost_usd=0.0,
            review_reasons=tuple(reasons),
        )

    def _look_at(self, request: ModelRequest, see: bool) -> Look:
        image = request.pixels if request.pixels is not None else _decode(request.image)
        lines = self._ocr.read(image) if see else []
        subject = self._classifier.classify(image) if see and self._classifier else None
        return inspect_image(image, lines, subject)

    async def models(self) -> list[ModelInfo]:
        extra: dict[str, Any] = {"engine": "rapidocr", "network": False}
        if self._classifier is not None:
            extra["classifier"] = "efficientnet-lite0 (ImageNet-1k)"
        return [
            ModelInfo(
                id=MODEL_ID,
                name="Offline OCR engine",
                input_modalities=("image",),
                prompt_price_usd=0.0,
                completion_price_usd=0.0,
                image_price_usd=0.0,
                extra=extra,
            )
        ]

    def routing_policy(self) -> dict[str, Any]:
        return {"provider": "local", "data_leaves_process": False}

    async def aclose(self) -> None:
        return None


def _decode(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.copy()
    except Exception as exc:
        raise InvalidImage("The image could not be decoded.") from exc


# --- pixel facts -------------------------------------------------------------------------------


def inspect_image(
    image: Image.Image, lines: Sequence[OcrLine], subject: Guess | None = None
) -> Look:
    """Cheap statistics on a thumbnail; ``lines`` are OCR results in ``image`` coordinates."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    base = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA" if has_alpha else "RGB")
    factor = THUMB_SIDE / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    small = base.resize(size, Image.Resampling.BOX)
    thumb = np.asarray(small.convert("RGBA")).astype(np.int16)
    rgb, alpha = thumb[:, :, :3], thumb[:, :, 3]
    opaque = alpha >= 128
    transparent = bool(has_alpha and (alpha < 250).mean() > 0.05)
    grey = rgb.mean(axis=2)
    uniform = not opaque.any() or (
        float(grey[opaque].std()) < UNIFORM_STD and float(alpha.std()) < UNIFORM_STD
    )
    visible = rgb[opaque] if opaque.any() else rgb.reshape(-1, 3)
    codes = (visible // 16) @ np.array([256, 16, 1])
    counts = np.sort(np.bincount(codes.ravel()))[::-1]
    flat = counts[:FLAT_TOP_COLOURS].sum() >= FLAT_COVERAGE * codes.size
    if (visible == visible[:, :1]).all():
        # Greyscale has only 16 levels at 4 bits, so any grey photo would look flat: count
        # exact levels instead (a scan or photo spreads over many, line art keeps a few).
        levels = np.sort(np.bincount(visible[:, 0].ravel(), minlength=256))[::-1]
        flat = levels[:FLAT_TOP_COLOURS].sum() >= GREY_FLAT_COVERAGE * levels.sum()

    # Unsure lines still mark where text is (their ink is not "other ink"), but are not words.
    text_mask = _text_mask(size, lines, factor)
    text_cover = float(text_mask.mean())
    bg_code = int(np.bincount(codes.ravel()).argmax())
    bg = np.array([bg_code // 256, (bg_code // 16) % 16, bg_code % 16]) * 16 + 8
    ink = (np.abs(rgb - bg).max(axis=2) > INK_DISTANCE) & opaque
    bg_share = float((~ink & opaque).mean())
    other_ink = float((ink & ~text_mask).mean())
    plain_text = bool(lines) and bg_share >= PLAIN_BG_SHARE and other_ink < OTHER_INK_MAX
    sure = [line for line in lines if line.score >= QUOTE_SCORE]
    panels = _panel_share(visible)
    kind = _kind(sure, image.width, bool(flat), float(bg.mean()), other_ink, panels)
    return Look(
        width=image.width,
        height=image.height,
        uniform=bool(uniform),
        flat=bool(flat),
        transparent=transparent,
        colours=_colour_names(small, opaque),
        lines=tuple(sure),
        text_cover=text_cover,
        plain_text=plain_text and bool(sure),
        unreadable=len(lines) - len(sure),
        kind=kind,
        heading=heading(sure) if kind else None,
        subject=subject,
    )


def _kind(
    lines: Sequence[OcrLine],
    width: int,
    flat: bool,
    bg_grey: float,
    other_ink: float,
    panels: float,
) -> Kind | None:
    """Document page, screenshot, or neither (see the module docstring)."""
    prose = [line for line in lines if len(line.text.split()) >= 2]
    if len(prose) < DOC_MIN_LINES:
        return None  # a chart's axis labels, a logo, a few words: not a page
    lefts = [_span_x(line)[0] for line in prose]
    margin = float(np.median(lefts))
    aligned = sum(abs(left - margin) <= COLUMN_SLACK * width for left in lefts)
    one_column = aligned >= ONE_COLUMN_SHARE * len(prose)
    panelled = panels >= PANEL_SHARE
    if one_column and not panelled and bg_grey >= DOC_BG_GREY and other_ink < DOC_OTHER_INK:
        return "document"
    drawn = panelled or other_ink >= SCREEN_OTHER_INK or bg_grey <= DARK_BG_GREY
    if flat and (drawn or not one_column):
        return "screenshot"
    return None


def _panel_share(visible: np.ndarray[Any, Any]) -> float:
    """Share of pixels in flat areas of another exact colour than the background (a sidebar,
    a title bar): a screenshot has them, a page of text or a scan does not."""
    codes = visible.astype(np.int64) @ np.array([65536, 256, 1])
    values, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts)[: FLAT_TOP_COLOURS + 1]
    bg = values[order[0]]
    bg_rgb = np.array([bg // 65536, (bg // 256) % 256, bg % 256])
    share = 0
    for i in order[1:]:
        rgb = np.array([values[i] // 65536, (values[i] // 256) % 256, values[i] % 256])
        if np.abs(rgb - bg_rgb).max() >= PANEL_MIN_DIFF and counts[i] >= PANEL_MIN_PIXELS:
            share += int(counts[i])
    return share / max(1, int(codes.size))


def _span_x(line: OcrLine) -> tuple[float, float]:
    xs = [point[0] for point in line.box]
    return min(xs), max(xs)


def heading(lines: Sequence[OcrLine]) -> str | None:
    """The tallest of the first lines when it stands out, else the first line; None if long."""
    if not lines:
        return None
    heights = [_height(line) for line in lines]
    first = list(lines[:HEADING_LOOKAHEAD])
    tallest = max(first, key=_height)
    median = float(np.median(heights))
    chosen = tallest if _height(tallest) >= HEADING_RATIO * median else first[0]
    return chosen.text if len(chosen.text.split()) <= HEADING_MAX_WORDS else None


def _height(line: OcrLine) -> float:
    ys = [point[1] for point in line.box]
    return max(ys) - min(ys)


def _text_mask(
    size: tuple[int, int], lines: Sequence[OcrLine], factor: float
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for line in lines:
        xs = [p[0] * factor for p in line.box]
        ys = [p[1] * factor for p in line.box]
        # One pixel of slack: the thumbnail blurs glyph edges just outside the box.
        draw.rectangle((min(xs) - 1, min(ys) - 1, max(xs) + 1, max(ys) + 1), fill=255)
    return np.asarray(mask) > 0


# Hue bands in degrees (upper bounds) and their names; red wraps around 360.
_HUES: tuple[tuple[int, str], ...] = (
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (165, "green"),
    (195, "teal"),
    (255, "blue"),
    (290, "purple"),
    (345, "pink"),
    (361, "red"),
)


def _colour_names(thumb: Image.Image, opaque: np.ndarray[Any, Any]) -> tuple[str, ...]:
    """One or two basic colour words covering >= ``COLOUR_SHARE_MIN`` of the visible pixels."""
    hsv = np.asarray(thumb.convert("RGB").convert("HSV")).astype(np.int32)[opaque]
    if hsv.size == 0:
        return ("transparent",)
    names = colour_names(hsv[:, 0], hsv[:, 1], hsv[:, 2])
    values, counts = np.unique(names, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:2]
    return tuple(str(values[i]) for i in order if counts[i] >= COLOUR_SHARE_MIN * names.size)


def colour_names(
    h: np.ndarray[Any, Any], s: np.ndarray[Any, Any], v: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Name HSV colours (Pillow scales H, S and V to 0-255) with a dozen basic words."""
    degrees = h * 360 / 255
    band = np.searchsorted(np.array([upper for upper, _ in _HUES]), degrees, side="right")
    names = np.array([name for _, name in _HUES], dtype=object)[band]
    names = np.where((names == "orange") & (v < 150), "brown", names)
    grey = (s < 40) | ((s < 70) & (v > 220))
    names = np.where(grey, np.where(v > 200, "white", "grey"), names)
    return np.where(v < 50, "black", names)


# --- wording -----------------------------------------------------------------------------------


def resolve_role(look: Look, options: DescribeOptions) -> ResolvedRole:
    if options.role != "auto":
        return options.role
    if look.uniform:
        return "decorative"
    if options.link_target:
        return "functional"
    if named_kind(look, options):
        return "informative"
    if look.lines and (look.plain_text or look.text_cover >= TEXT_COVER_MIN):
        return "text"
    return "informative"


def named_kind(look: Look, options: DescribeOptions) -> Kind | None:
    """The kind to name: a screenshot always; a document page when its words do not fit."""
    if look.kind == "screenshot":
        return "screenshot"
    if look.kind == "document" and len(look.text) > options.max_length:
        return "document"
    return None


def compose(look: Look, options: DescribeOptions) -> tuple[dict[str, Any], list[str]]:
    """The reply JSON (role, alt_texts, long_description, text_in_image) and review reasons."""
    role = resolve_role(look, options)
    reasons: list[str] = []
    text = look.text or None
    english: str
    other: str  # for any non-English language
    if role == "decorative":
        english = other = ""
        if options.role == "auto":
            reasons.append(AUTO_DECORATIVE)
    elif role == "functional":
        english, other = _functional(look, options, reasons)
    elif role == "text" and text:
        english = other = _words(text, options.max_length, reasons)
    else:
        if role == "text":
            reasons.append(NO_TEXT)
        english = _described(look, options, reasons)
        other = english
        if text and any(not _is_english(lang) for lang in options.languages):
            other = _words(text, options.max_length, reasons)
    long_description = None
    if role != "decorative":
        if text and look.min_score < SURE_OCR_SCORE:
            reasons.append(OCR_CHECK)
        if look.unreadable:
            reasons.append(UNREADABLE)
        if look.subject is not None and look.subject.maybe_person:
            reasons.append(PERSON)
        reasons += _unused(options, english)
        if options.long_description or role == "complex":
            # The words in reading order, one OCR line a line; nothing else is known for sure.
            long_description = "\n".join(line.text for line in look.lines) or None
            if long_description is None:
                reasons.append(NO_LONG)
    # Non-English readers get English wording whenever the text is more than the image's words.
    english_wording = other != english or bool(english and not text)
    if english_wording and any(not _is_english(lang) for lang in options.languages):
        reasons.append(ENGLISH_ONLY)
    payload = {
        "role": role,
        "alt_texts": {
            lang: (english if _is_english(lang) else other) for lang in options.languages
        },
        "long_description": long_description,
        "text_in_image": text,
    }
    return payload, list(dict.fromkeys(reasons))


def _unused(options: DescribeOptions, english: str) -> list[str]:
    """Name what the caller gave that the offline engine could not use."""
    reasons = []
    if options.context and options.context.strip():
        reasons.append(NO_CONTEXT)
    unused = [
        keyword
        for keyword in options.keywords
        if keyword.strip()
        and not re.search(rf"(?<!\w){re.escape(keyword.strip())}(?!\w)", english, re.IGNORECASE)
    ]
    if unused:
        reasons.append(NO_KEYWORDS + ", ".join(f'"{keyword.strip()}"' for keyword in unused))
    return reasons


def _is_english(lang: str) -> bool:
    return primary_subtag(lang) == "en"


def _words(text: str, limit: int, reasons: list[str]) -> str:
    """The image's words as alt text: verbatim, a full stop added to a phrase of 3+ words."""
    words = text if len(text.split()) < 3 or text[-1] in ".!?" else text + "."
    if len(words) <= limit:
        return words
    reasons.append(CUT)
    return _cut(text, limit - 1) + "."


def _functional(look: Look, options: DescribeOptions, reasons: list[str]) -> tuple[str, str]:
    """(English, other languages) label: the image's words, else the link's destination."""
    text = look.text
    limit = options.max_length
    home = _is_home(options.link_target)
    if text and len(text.split()) <= LABEL_MAX_WORDS and len(text) <= LABEL_MAX_CHARS:
        label = _cut(text, limit)
        english = label if not home or label.lower().endswith("home") else f"{label} home"
        return _cut(english, limit), label
    if options.link_target and (label_from_link := link_label(options.link_target)):
        reasons.append(LINK_LABEL)
        return _cut(label_from_link, limit), _cut(label_from_link, limit)
    reasons.append(NO_LABEL)
    if text:
        words = _words(text, limit, reasons)
        return words, words
    generic = _described(look, options, reasons)
    return generic, generic


def _is_home(target: str | None) -> bool:
    if not target:
        return False
    parts = urlsplit(target.strip())
    return parts.scheme in ("", "http", "https") and parts.path in ("", "/") and not parts.query


def link_label(target: str) -> str | None:
    """A short label from a link: "/docs/getting-started" -> "Getting started"; None if none."""
    parts = urlsplit(target.strip())
    if parts.scheme == "mailto":
        return "Send email"
    if parts.scheme == "tel":
        return "Call"
    if parts.scheme not in ("", "http", "https"):
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    while segments:
        stem, _, ext = segments[-1].rpartition(".")
        name = stem if ext.lower() in _DOC_TYPES and stem else segments[-1]
        words = " ".join(re.split(r"[-_+.\s]+", name)).strip()
        if words and not words.replace(" ", "").isdigit():
            label = words[0].upper() + words[1:]
            return f"{label} ({ext.upper()})" if name == stem else label
        segments.pop()
    host = (parts.hostname or "").removeprefix("www.")
    if host:
        site = host.split(".")[0]
        return f"{site[0].upper()}{site[1:]} home"
    return "Home" if parts.path == "/" else None


def _described(look: Look, options: DescribeOptions, reasons: list[str]) -> str:
    """What kind of image, or the classifier's noun, or pixel facts; with any sure words.

    'Screenshot of a page headed "Billing".', 'Photo of a cat.',
    'Mostly blue and white flat graphic with the text "SALE", wide banner format.'
    """
    limit = options.max_length
    kind = named_kind(look, options)
    if kind is not None:
        reasons.append(GENERIC)
        return _kind_phrase(kind, look, limit, reasons)
    subject = look.subject.phrase if look.subject is not None else None
    if subject:
        reasons.append(CLASSIFIED)
        # A flat graphic may be a drawing: "Picture", not "Photo".
        medium = "Picture" if look.flat else "Photo"
        return _with_text(f"{medium} of {subject}", look.text, None, limit, reasons)
    reasons.append(GENERIC)
    if look.colours == ("transparent",):
        return _cut("Fully transparent graphic.", limit)
    if len(look.colours) == 2:
        colour = f"Mostly {look.colours[0]} and {look.colours[1]}"
    elif look.colours:
        colour = f"Mostly {look.colours[0]}"
    else:
        colour = "Multicoloured"
    medium = "flat graphic" if look.flat else "photo-like picture"
    if look.transparent:
        medium += " with transparent areas"
    shape = _shape(look.width, look.height)
    if not look.text:
        candidates = [
            f"{colour} {medium}, {shape}.",
            f"{colour} {medium}.",
            f"{medium.capitalize()}.",
        ]
        return next((c for c in candidates if len(c) <= limit), _cut(candidates[-1], limit))
    return _with_text(f"{colour} {medium}", look.text, shape, limit, reasons)


def _kind_phrase(kind: Kind, look: Look, limit: int, reasons: list[str]) -> str:
    """'Document page headed "Minutes".', 'Screenshot of a page headed "Billing".'"""
    name = "Document page" if kind == "document" else "Screenshot of a page"
    if look.heading:
        for candidate in (
            f'{name} headed "{look.heading}".',
            f'{name.split()[0]} headed "{look.heading}".',
        ):
            if len(candidate) <= limit:
                return candidate
    if kind == "document":
        return _with_text("Document page", look.text, None, limit, reasons)
    return _with_text("Screenshot", look.text, None, limit, reasons)


def _with_text(head: str, text: str, shape: str | None, limit: int, reasons: list[str]) -> str:
    """'<head> with the text "<text>", <shape>.', shortened to fit ``limit``."""
    tail = f", {shape}" if shape else ""
    if not text:
        candidates = [f"{head}{tail}.", f"{head}."]
        return next((c for c in candidates if len(c) <= limit), _cut(head, limit - 1) + ".")
    for candidate in (f'{head} with the text "{text}"{tail}.', f'{head} with the text "{text}".'):
        if len(candidate) <= limit:
            return candidate
    reasons.append(CUT)
    room = limit - len(f'{head} with the text "".')
    if room >= 12:
        return f'{head} with the text "{_cut(text, room)}".'
    return _cut(text, limit - 1) + "."


def _shape(width: int, height: int) -> str:
    ratio = width / height
    if ratio >= 2.5:
        return "wide banner format"
    if ratio >= 1.2:
        return "landscape format"
    if ratio <= 0.4:
        return "tall narrow format"
    if ratio <= 0.83:
        return "portrait format"
    return "square format"


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut by the rules' cutter at the best boundary (never on a
    dangling word); a text with no clean boundary keeps its first ``limit`` characters."""
    return cut(text, limit, sentence=False) or text[:limit].rstrip(" ,;:-–")
