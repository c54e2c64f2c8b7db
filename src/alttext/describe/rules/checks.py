"""Every rule a text still breaks after cleaning, as findings (docs/alt-text-guide.md, checks 1-14).

``check`` findings make the engine ask the model again (or repair); ``flag`` findings only send
the result to human review. Decisions the guide leaves open (tests pin them):

* End punctuation: texts of one or two words are labels, not sentences; functional and text
  roles are labels up to six words ("Download the 2025 report (PDF)").
* Copy of the context is judged for informative and complex images only: a logo or a button
  legitimately repeats a name that is in the context.
* A camera model as metadata ("shot on iPhone 15", "f/2.8, ISO 100") is a check; a bare model
  name is only flagged (it may be the product shown) and not at all when the context names it.
* Quoted words missing from the OCR text are a check when OCR read something (likely invented)
  and a flag when OCR read nothing (unverifiable).
* Hedges, keywords and people rules are flags: only a human can tell if they are right.

The URL, file name, camera and placeholder patterns are public within the package because
:mod:`.repair` removes exactly what they find.
"""

from __future__ import annotations

import difflib
import re

from alttext.describe.rules.clean import (
    EMOJI,
    HTML_ENTITY,
    HTML_TAG,
    LABEL,
    OPENING,
    strip_wrapping_quotes,
)
from alttext.describe.rules.findings import Finding, RuleContext, finding
from alttext.describe.rules.language import LanguageIdentifier, wrong_language
from alttext.describe.rules.people import person_findings
from alttext.describe.rules.text import (
    END,
    is_label,
    norm,
    quoted_spans,
    tokens,
    without_quotes,
    word_set,
    words,
)

_MARKDOWN = re.compile(
    r"\*\*|__|~~|```|`[^`]+`|^\s*#{1,6}\s|\[[^\]]*\]\([^)]*\)"
    r"|(?<![\w*])\*(?=\S)[^*]+(?<=\S)\*(?![\w*])",
    re.MULTILINE,
)
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x0b\x0c]")

URL = re.compile(
    r"(?:https?|ftp)://[^\s<>\"'\]]+|\bwww\.[^\s<>\"'\]]+|\bdata:[\w/+.-]+;base64,[\w+/=]+",
    re.IGNORECASE,
)
FILE_NAME = re.compile(
    r"(?<![\w/.-])[\w.-]*\w\.(?:jpe?g|jfif|png|gif|webp|svg|bmp|tiff?|heic|heif|avif|ico)\b"
    r"|\b(?:IMG|DSC[NF]?|DCIM|PXL|MVIMG|GOPR|DJI|VID)[_-]?\d{3,}[\w-]*",
    re.IGNORECASE,
)
_CAMERA = (
    r"(?:Canon\s+(?:EOS|PowerShot)(?:[\s-]?[\w-]*\d\w*)?|Nikon\s+(?:[DZ]\s?\d+\w*|Coolpix\s?\w*)"
    r"|Sony\s+(?:Alpha|α|ILCE|DSC|A\d)[\w-]*|Fujifilm\s+X[-\s]?\w+|Panasonic\s+Lumix\s?\w*"
    r"|Olympus\s+(?:OM-D|E-M)\s?\w*|Leica\s+[A-Z]\w*|GoPro(?:\s+Hero\s?\d*)?"
    r"|DJI\s+(?:Mavic|Mini|Air|Phantom|Osmo)\s?\w*"
    r"|iPhone\s?(?:\d{1,2}|X[RS]?|SE)(?:\s?(?:Pro(?:\s?Max)?|Plus|mini))?"
    r"|(?:Google\s+)?Pixel\s?\d+a?(?:\s?Pro(?:\s?XL)?)?|(?:Samsung\s+)?Galaxy\s+S\d+(?:\s?Ultra)?)"
)
_CAMERA_NAME = re.compile(rf"\b{_CAMERA}")
CAMERA_META = re.compile(
    rf"[,;(]?\s*\b(?:shot|taken|captured|photographed|filmed)\s+(?:on|with)\s+"
    rf"(?:an?\s+|the\s+|my\s+)?{_CAMERA}\)?"
    r"|[,;(]?\s*(?:\bf/\d+(?:\.\d+)?|\bISO\s?\d{2,6}\b|\b1/\d{2,5}\s?(?:s|sec)\b)\)?",
    re.IGNORECASE,
)

_PLACEHOLDERS = word_set(
    "image photo photograph picture pic img graphic graphics untitled logo icon banner thumbnail "
    "placeholder spacer decorative decoration blank alt null none na screenshot figure "
    "illustration bild foto imagen immagine afbeelding grafik"
) | {"decorative image", "image placeholder", "alt text", "no alt text", "no description", "n a"}
_PLACEHOLDER_NUMBERED = re.compile(r"^(?:img|image|photo|picture|figure|fig|graphic)\s*\d+$")

_ICON_WORDS = re.compile(
    r"\b(?:icon|symbol|glyph|graphic|image|picture|illustration)\W*$", re.IGNORECASE
)
_HEDGE = re.compile(
    r"\b(?:appears?\s+to|appearing\s+to|possibly|likely|probably|perhaps|seems?|seemingly|"
    r"might\s+be|may\s+be|could\s+be|presumably|apparently|"
    r"scheint|vermutlich|wahrscheinlich|möglicherweise|semble|probablement|peut-être|"
    r"parece|probablemente|posiblemente)\b",
    re.IGNORECASE,
)
_STOPWORDS = word_set(
    "with from that this these those their they there into over under each some have been "
    "what when which while also than then them your about above below between through "
    "eine einer einem einen eines oder und sich sind wird auch nicht dans avec pour sont "
    "une les des sur como para por con una los las del que"
)


def is_placeholder(text: str) -> bool:
    normalised = re.sub(r"^(?:an?|the)\s+", "", norm(text))
    return normalised in _PLACEHOLDERS or bool(_PLACEHOLDER_NUMBERED.match(normalised))


def copies_context(text: str, context: str | None) -> bool:
    """Normalised substring either way, or token-set overlap (Jaccard) ≥ 0.8."""
    if not context:
        return False
    alt, ctx = tokens(text), tokens(context)
    if not alt or not ctx:
        return False
    alt_s, ctx_s = " ".join(alt), " ".join(ctx)
    if len(alt) >= 4 and f" {alt_s} " in f" {ctx_s} ":
        return True
    if len(ctx) >= 3 and f" {ctx_s} " in f" {alt_s} " and len(alt) - len(ctx) <= 2:
        return True
    a, c = set(alt), set(ctx)
    return len(a) >= 3 and len(a & c) / len(a | c) >= 0.8


def _squash(text: str) -> str:
    return "".join(tokens(text))


def quote_in_ocr(quote: str, ocr_text: str) -> bool:
    """Case-insensitive, spacing-insensitive match that tolerates small OCR errors (ratio ≥ 0.8)."""
    q, ocr = _squash(quote), _squash(ocr_text)[:5000]
    if not q:
        return True
    if q in ocr:
        return True
    if len(q) < 4:
        return False
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(q)
    for size in {len(q) - 1, len(q), len(q) + 1}:
        for start in range(max(1, len(ocr) - size + 1)):
            matcher.set_seq1(ocr[start : start + size])
            if matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8:
                return True
    return False


def _style_findings(text: str) -> list[Finding]:
    tests = (
        ("redundant_opening", bool(OPENING.match(text))),
        ("wrapper", bool(LABEL.match(text)) or strip_wrapping_quotes(text) != text),
        ("markdown", bool(_MARKDOWN.search(text))),
        ("html", bool(HTML_TAG.search(text) or HTML_ENTITY.search(text))),
        ("line_break", bool(_LINE_BREAK.search(text))),
        ("emoji", bool(EMOJI.search(text))),
        ("url", bool(URL.search(text))),
        ("file_name", bool(FILE_NAME.search(URL.sub(" ", text)))),
        ("camera_details", bool(CAMERA_META.search(text))),
        ("placeholder", is_placeholder(text)),
    )
    return [finding(code) for code, failed in tests if failed]


def _content_findings(text: str, ctx: RuleContext) -> list[Finding]:
    out: list[Finding] = []
    if not CAMERA_META.search(text):
        context = norm(ctx.context or "")
        if any(norm(m.group(0)) not in context for m in _CAMERA_NAME.finditer(text)):
            out.append(finding("camera_name"))
    if ctx.role == "functional" and _ICON_WORDS.search(text):
        out.append(finding("functional_describes_icon"))
    if len(text) > ctx.max_length:
        out.append(finding("too_long", length=len(text), limit=ctx.max_length))
    if not END.search(text) and not is_label(text, ctx.role):
        out.append(finding("no_end_punctuation"))
    if ctx.role in ("informative", "complex") and copies_context(text, ctx.context):
        out.append(finding("copies_context"))
    return out


def _quote_findings(text: str, ctx: RuleContext) -> list[Finding]:
    quotes = quoted_spans(text)
    if not quotes:
        return []
    out: list[Finding] = []
    if "captcha" in f"{text} {ctx.context or ''}".lower():
        out.append(finding("captcha_transcribed"))
    if ctx.ocr_text is not None and not all(quote_in_ocr(q, ctx.ocr_text) for q in quotes):
        # OCR that read something yet not these words: likely invented. OCR that read nothing
        # cannot tell (stylised lettering), so a human looks.
        out.append(finding("quote_not_in_image" if _squash(ctx.ocr_text) else "quote_unverified"))
    return out


def _wording_findings(text: str, ctx: RuleContext) -> list[Finding]:
    out: list[Finding] = []
    counts: dict[str, int] = {}
    for word in words(without_quotes(text)):
        w = word.lower()
        if len(w) >= 4 and w not in _STOPWORDS:
            counts[w] = counts.get(w, 0) + 1
    if any(n > 2 for n in counts.values()):
        out.append(finding("repeated_word"))
    parts = [p.strip() for p in re.split(r"[,;|]", text) if p.strip()]
    keywords = [k.lower() for k in ctx.keywords if k.strip()]
    with_keyword = sum(1 for p in parts if any(k in p.lower() for k in keywords))
    short_parts = len(parts) >= 4 and all(len(p.split()) <= 3 for p in parts)
    if short_parts and (len(parts) >= 5 or with_keyword >= 2):
        out.append(finding("keyword_stuffing"))
    if _HEDGE.search(without_quotes(text)):
        out.append(finding("hedge"))
    return out


def check(text: str, ctx: RuleContext, identifier: LanguageIdentifier) -> list[Finding]:
    """Every rule ``text`` breaks for ``ctx``; an empty list means the text passes.

    ``identifier`` is the process's language identifier (rule 10)."""
    if ctx.role == "decorative":
        return [] if text == "" else [finding("decorative_not_empty")]
    if not text.strip():
        return [finding("empty")]
    findings = _style_findings(text) + _content_findings(text, ctx) + _quote_findings(text, ctx)
    detected = wrong_language(text, ctx.language, identifier)
    if detected is not None:
        findings.append(finding("wrong_language", language=ctx.language, detected=detected))
    return findings + _wording_findings(text, ctx) + person_findings(text, ctx)
