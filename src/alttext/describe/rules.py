"""The deterministic rules of ALT_TEXT_GUIDE.md, applied to every model answer.

* :func:`clean` makes the repairs that never change meaning (wrappers, Markdown, HTML, emoji,
  redundant openings such as "The image shows", a missing final period).
* :func:`check` reports every rule a text still breaks: ``check`` findings make the engine ask
  the model again (or repair); ``flag`` findings only send the result to human review.
* :func:`repair` is the last resort after the re-ask: it removes what can be removed and cuts at
  a word boundary.

Decisions the guide leaves open (documented here because tests pin them):

* A bare medium noun is redundant ("Photo of", "An image showing", "Photograph of"); a medium
  with a qualifier carries meaning and stays ("Black-and-white photo of", "Screenshot of",
  "Line chart of", "Illustration of", "Oil painting of").
* End punctuation: texts of one or two words are labels, not sentences; functional and text
  roles are labels up to six words ("Download the 2025 report (PDF)").
* Copy of the context is judged for informative and complex images only: a logo or a button
  legitimately repeats a name that is in the context.
* A camera model as metadata ("shot on iPhone 15", "f/2.8, ISO 100") is a check; a bare model
  name is only flagged (it may be the product shown) and not at all when the context names it.
* Quoted words missing from the OCR text are a check when OCR read something (likely invented)
  and a flag when OCR read nothing (unverifiable).
* Hedges, keywords and people rules are flags: only a human can tell if they are right.
"""

from __future__ import annotations

import difflib
import html
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from alttext.describe.types import DEFAULT_MAX_LENGTH, ResolvedRole

Severity = Literal["check", "flag"]


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class RuleContext:
    role: ResolvedRole
    max_length: int = DEFAULT_MAX_LENGTH
    language: str = "en"
    context: str | None = None
    keywords: tuple[str, ...] = ()
    # Text local OCR read in the image; None when OCR did not run.
    ocr_text: str | None = None


# --------------------------------------------------------------------------- patterns


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_NOUN = r"(?:image|picture|photo|photograph|pic|graphic|snapshot)"
_VERB = (
    r"(?:shows|showing|depicts|depicting|displays|displaying|features|featuring|contains|"
    r"presents|portrays|captures|illustrates|is\s+of|of|with)"
)
_OPENING = re.compile(
    r"^(?:"
    r"(?:sure|certainly|of\s+course|okay|ok)\s*[!,.:]\s*"
    r"|here(?:'s|’s|\s+is|\s+are|\s+we\s+have|\s+you\s+can\s+see)\s+"
    r"|(?:i|we|you|one)\s+(?:can\s+)?see\s+"
    rf"|in\s+(?:this|the)\s+{_NOUN}\s*,?\s*(?:(?:we|you|one)\s+can\s+see|there\s+(?:is|are)|is|are)?\s*"
    rf"|(?:(?:this|the|that|it)\s+(?:is\s+)?(?:an?\s+)?|an?\s+)?{_NOUN}\s+{_VERB}\s+(?:that\s+)?"
    r")",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^(?:(?:here\s+is\s+|here's\s+)?(?:the\s+|an?\s+|suggested\s+|short\s+|final\s+)?)"
    r"(?:alt(?:ernative)?[\s_-]*(?:text|tag|attribute)?|image\s+description|description|caption|"
    r"image|photo|picture|answer|output)\s*(?::|：|\s[-–—]\s)\s*",
    re.IGNORECASE,
)
_QUOTE_PAIRS = {
    '"': '"',
    "“": "”",
    "”": "”",
    "„": "“",
    "«": "»",
    "»": "«",
    "'": "'",
    "‘": "’",
    "`": "`",
    "「": "」",
}
_WRAPPED = re.compile(r"^(.)(.*)(.)([.!?]?)$", re.DOTALL)
_APOSTROPHE = re.compile(r"(?<=\w)['’](?=\w)")

_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_HTML_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_MD_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_MD_EM = re.compile(
    r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"
)
_MD_FENCE = re.compile(r"```[\w-]*")
_MD_LINE = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+•][ \t]+|\d{1,2}[.)][ \t]+)", re.MULTILINE
)
_MARKDOWN = re.compile(
    r"\*\*|__|~~|```|`[^`]+`|^\s*#{1,6}\s|\[[^\]]*\]\([^)]*\)"
    r"|(?<![\w*])\*(?=\S)[^*]+(?<=\S)\*(?![\w*])",
    re.MULTILINE,
)
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0e\ufe0f\u200d\u20e3"
    "\U000e0020-\U000e007f\u231a\u231b\u23e9-\u23fa\u24c2\u3030\u303d\u3297\u3299]"
)
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x0b\x0c]")

_URL = re.compile(
    r"(?:https?|ftp)://[^\s<>\"'\]]+|\bwww\.[^\s<>\"'\]]+|\bdata:[\w/+.-]+;base64,[\w+/=]+",
    re.IGNORECASE,
)
# A URL with the words that point at it ("see https://…"): removed together by repair().
_URL_REFERENCE = re.compile(
    rf"(?:\b(?:see|visit|at|from|via|source:?)\s+)?(?:{_URL.pattern})", re.IGNORECASE
)
_FILE_NAME = re.compile(
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
_CAMERA_META = re.compile(
    rf"[,;(]?\s*\b(?:shot|taken|captured|photographed|filmed)\s+(?:on|with)\s+"
    rf"(?:an?\s+|the\s+|my\s+)?{_CAMERA}\)?"
    r"|[,;(]?\s*(?:\bf/\d+(?:\.\d+)?|\bISO\s?\d{2,6}\b|\b1/\d{2,5}\s?(?:s|sec)\b)\)?",
    re.IGNORECASE,
)

_PLACEHOLDERS = _set(
    "image photo photograph picture pic img graphic graphics untitled logo icon banner thumbnail "
    "placeholder spacer decorative decoration blank alt null none na screenshot figure "
    "illustration bild foto imagen immagine afbeelding grafik"
) | {"decorative image", "image placeholder", "alt text", "no alt text", "no description", "n a"}
_PLACEHOLDER_NUMBERED = re.compile(r"^(?:img|image|photo|picture|figure|fig|graphic)\s*\d+$")

_ALNUM = re.compile(r"[^\W_]")
_ICON_WORDS = re.compile(
    r"\b(?:icon|symbol|glyph|graphic|image|picture|illustration)\W*$", re.IGNORECASE
)
_END = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|«([^»]+)»|„([^“”]+)[“”]|「([^」]+)」")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")

_HEDGE = re.compile(
    r"\b(?:appears?\s+to|appearing\s+to|possibly|likely|probably|perhaps|seems?|seemingly|"
    r"might\s+be|may\s+be|could\s+be|presumably|apparently|"
    r"scheint|vermutlich|wahrscheinlich|möglicherweise|semble|probablement|peut-être|"
    r"parece|probablemente|posiblemente)\b",
    re.IGNORECASE,
)

_STOPWORDS = _set(
    "with from that this these those their they there into over under each some have been "
    "what when which while also than then them your about above below between through "
    "eine einer einem einen eines oder und sich sind wird auch nicht dans avec pour sont "
    "une les des sur como para por con una los las del que"
)
_LABEL_WORDS = {"functional": 6, "text": 6}

# --- people (ALT_TEXT_GUIDE.md rule 9): a conservative list; a flag, never an edit.
_PERSON = (
    r"(?:man|men|woman|women|person|people|boy|boys|girl|girls|child|children|kid|kids|family|"
    r"couple|guy|guys|lady|ladies|gentleman|gentlemen|teenager|teenagers|student|students|adult|adults)"
)
_GENDER_FAMILIES = (
    _set("man men male males boy boys gentleman gentlemen guy guys mens"),
    _set("woman women female females girl girls lady ladies womens"),
)
_GENDER = re.compile(
    r"\b(men|man|males?|boys?|gentlem[ae]n|guys?|wom[ae]n|females?|girls?|lad(?:y|ies))"
    r"(?:['’]s)?\b",
    re.IGNORECASE,
)
_AGE = re.compile(
    rf"\b(elderly|middle-aged|teenage|teenagers?|senior\s+citizens?|(?:old|older|young|younger)"
    rf"\s+{_PERSON}|\d{{1,3}}-year-old|in\s+(?:his|her|their)\s+(?:early\s+|mid-?|late\s+)?\d0s)\b",
    re.IGNORECASE,
)
_RACE = re.compile(
    rf"\b((?:black|white|asian|hispanic|latino|latina|caucasian|african[- ]american|arab|indian|"
    rf"brown-skinned|dark-skinned|light-skinned|fair-skinned)\s+{_PERSON}|caucasian|hispanic|"
    r"latinx|latin[ao]|african-american|dark-skinned|light-skinned|fair-skinned)\b",
    re.IGNORECASE,
)
_DISABILITY = re.compile(
    rf"\b(disabled|handicapped|wheelchair-bound|confined\s+to\s+a\s+wheelchair|amputee|autistic|"
    rf"(?:blind|deaf|paralyzed|paralysed)\s+{_PERSON})\b",
    re.IGNORECASE,
)
_NAME_PAIR = re.compile(
    r"(?<![\w'’-])([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\s+(?:[A-Z]\.\s+)?([A-Z][a-z]+(?:-[A-Z][a-z]+)?)"
    r"(?![\w-])"
)
_CAPITALISED_NEXT = re.compile(r"^\s+[A-Z]")
_CAPITALISED_PREV = re.compile(r"[A-Z][\w'’-]*\s+$")
_NOT_NAMES = _set(
    "The A An This That These Those In On At Of For With And Or But To From By Its Their His "
    "Her Our Your My New Old North South East West Northern Southern Eastern Western Saint St "
    "San Santa Los Las Le La El Mount Mt Lake River Street Road Avenue Park Bridge City County "
    "State University College School Museum Hotel Center Centre Tower Building Church Cathedral "
    "Station Airport Company Inc Ltd Corp Group Day Square Hall Garden Gardens Beach Bay Valley "
    "Forest National Island Islands Republic Kingdom United Great Royal Grand Central Golden "
    "January February March April May June July August September October November December "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday Christmas Easter Google Apple "
    "Microsoft Amazon Windows Mac Android Chrome Firefox Safari Excel Word PowerPoint Office"
)
# Languages that capitalise every noun: a capitalised pair says nothing about names there.
_NOUN_CAPITALISING = frozenset({"de", "lb"})


# --------------------------------------------------------------------------- helpers


def primary(tag: str) -> str:
    return tag.strip().lower().replace("_", "-").split("-", 1)[0]


def _tokens(text: str) -> list[str]:
    text = re.sub(r"['’]s\b", "", text.lower())
    text = _APOSTROPHE.sub("", text)
    return re.findall(r"[^\W_]+", text)


def _norm(text: str) -> str:
    return " ".join(_tokens(text))


def _without_quotes(text: str) -> str:
    return _QUOTED.sub(" ", text)


def quoted_spans(text: str) -> list[str]:
    """Quoted text (double quotes, guillemets; single quotes are too often apostrophes)."""
    return [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(text)]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _is_label(text: str, role: str | None) -> bool:
    return len(text.split()) <= _LABEL_WORDS.get(role or "", 2)


def _has_inner_quote(inner: str, opening: str, closing: str) -> bool:
    if opening in ("'", "‘") or closing == "’":
        inner = _APOSTROPHE.sub("", inner)
    return opening in inner or closing in inner


def _strip_wrapping_quotes(text: str) -> str:
    m = _WRAPPED.match(text)
    if not m or len(text) < 3:
        return text
    opening, inner, closing, trailer = m.groups()
    if _QUOTE_PAIRS.get(opening) != closing and not (opening == closing == "”"):
        return text
    if _has_inner_quote(inner, opening, closing):
        return text
    inner = inner.strip()
    if trailer and not _END.search(inner):
        inner += trailer
    return inner


def _capitalise(text: str) -> str:
    first = text.split(" ", 1)[0]
    # "iPhone", "eBay": a word with inner capitals is a name; leave it alone.
    if first[:1].islower() and first == first.lower():
        return text[0].upper() + text[1:]
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return re.sub(r"^[\s,;:–—-]+", "", text).strip()


# --------------------------------------------------------------------------- clean


def _strip_formatting(text: str) -> str:
    text = _EMOJI.sub("", text)
    text = _MD_FENCE.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    if _HTML_ENTITY.search(text):
        text = html.unescape(text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EM.sub(lambda m: m.group(1) or m.group(2), text)
    text = re.sub(r"\*\*|__|~~", "", text)  # unpaired markers left by a cut-off answer
    text = _MD_LINE.sub("", text)
    text = text.replace("`", "")
    return re.sub(r"\s+", " ", text).strip()


def strip_openings(text: str) -> str:
    """Remove wrappers and redundant openings repeatedly ('"Alt text: Image of a dog"')."""
    changed = False
    while True:
        before = text
        text = _strip_wrapping_quotes(text)
        text = _LABEL.sub("", text, count=1)
        text = _OPENING.sub("", text, count=1)
        text = _tidy(text)
        if text == before:
            break
        changed = True
    return _capitalise(text) if changed and text else text


def ensure_end(text: str, role: str | None = None) -> str:
    if not text or _END.search(text) or _is_label(text, role):
        return text
    return re.sub(r"[\s,;:–—-]+$", "", text) + "."


def clean(text: str, *, role: str | None = None) -> str:
    """Repairs that never change meaning. ``role`` decides whether a short text is a label."""
    text = unicodedata.normalize("NFC", text)
    text = _strip_formatting(text)
    text = strip_openings(text)
    if role == "decorative" or not _ALNUM.search(text):
        # A decorative image's alt is "" by definition; bare punctuation is nothing at all.
        return ""
    return ensure_end(text, role)


# --------------------------------------------------------------------------- check


def _is_placeholder(text: str) -> bool:
    norm = _norm(text)
    norm = re.sub(r"^(?:an?|the)\s+", "", norm)
    return norm in _PLACEHOLDERS or bool(_PLACEHOLDER_NUMBERED.match(norm))


def copies_context(text: str, context: str | None) -> bool:
    """Normalised substring either way, or token-set overlap (Jaccard) ≥ 0.8."""
    if not context:
        return False
    alt, ctx = _tokens(text), _tokens(context)
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
    return "".join(_tokens(text))


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


_identifier: Any = None
_identifier_lock = threading.Lock()


def language_identifier() -> Any:
    """py3langid's model, loaded once per process on first use (~1 s; call early to warm up)."""
    global _identifier
    if _identifier is None:
        with _identifier_lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


# BCP 47 primary subtags that py3langid names differently, and pairs it cannot tell apart.
_LANGID_ALIASES = {"nb": "no", "nn": "no", "fil": "tl", "iw": "he", "in": "id", "ji": "yi"}
_CLOSE_LANGUAGES = (
    frozenset({"no", "da", "sv"}),
    frozenset({"id", "ms"}),
    frozenset({"hr", "sr", "bs"}),
    frozenset({"cs", "sk"}),
    frozenset({"es", "gl", "ca"}),
    frozenset({"pt", "gl"}),
)


def detect_language(text: str) -> tuple[str, float] | None:
    """(language, probability) for texts long enough to judge, ignoring quoted image text."""
    body = _without_quotes(text)
    words = _words(body)
    letters = sum(len(w) for w in words)
    cjk = len(re.findall(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", body))
    if letters < 12 or (len(words) < 4 and cjk < 6):
        return None
    lang, prob = language_identifier().classify(body)
    return str(lang), float(prob)


def wrong_language(text: str, expected_tag: str) -> str | None:
    """The detected language when the text is confidently not in ``expected_tag``, else None."""
    expected = primary(expected_tag)
    expected = _LANGID_ALIASES.get(expected, expected)
    identifier = language_identifier()
    if expected not in identifier.nb_classes:
        return None
    detected = detect_language(text)
    if detected is None:
        return None
    lang, prob = detected
    if lang == expected or prob < 0.9:
        return None
    if any(lang in group and expected in group for group in _CLOSE_LANGUAGES):
        return None
    ranked = dict(identifier.rank(_without_quotes(text)))
    # Still a real contender: too close to call from a short text.
    if float(ranked.get(expected, 0.0)) >= 0.05:
        return None
    return lang


# Every finding's severity and message; the messages go both into the re-ask prompt and into
# review_reasons, so they never quote the alt text itself.
_RULES: dict[str, tuple[Severity, str]] = {
    "decorative_not_empty": ("check", 'a decorative image must have an empty alt text ("")'),
    "empty": ("check", "the alt text is empty, but the image is not decorative"),
    "redundant_opening": (
        "check",
        'the text opens with a redundant phrase such as "Image of" or "The image shows"; '
        "start with the content",
    ),
    "wrapper": ("check", 'the text has a label such as "Alt text:" or surrounding quotes'),
    "markdown": ("check", "the text contains Markdown formatting"),
    "html": ("check", "the text contains HTML"),
    "line_break": ("check", "the text contains line breaks"),
    "emoji": ("check", "the text contains emoji"),
    "url": ("check", "the text contains a URL"),
    "file_name": ("check", "the text contains a file name"),
    "camera_details": ("check", "the text contains camera details (model or settings)"),
    "camera_name": ("flag", "mentions a camera model; check it is the subject, not photo metadata"),
    "placeholder": (
        "check",
        'the text is only a placeholder word such as "image"; describe what matters',
    ),
    "functional_describes_icon": (
        "check",
        'a link or button image needs the action or destination (such as "Search"), '
        "not a description of the icon",
    ),
    "too_long": ("check", "the text is {length} characters long; the limit is {limit}"),
    "no_end_punctuation": ("check", 'the sentence does not end with ".", "!" or "?"'),
    "copies_context": ("check", "the text copies the supplied context; say what the image adds"),
    "captcha_transcribed": (
        "check",
        "the text transcribes a CAPTCHA; state its purpose, never its characters",
    ),
    "quote_not_in_image": (
        "check",
        "quoted text was not found in the image; quote only text that is legible in it",
    ),
    "quote_unverified": (
        "flag",
        "quoted text could not be confirmed by OCR; check it is in the image",
    ),
    "wrong_language": (
        "check",
        "the text is not in the requested language {language} (it reads as {detected})",
    ),
    "repeated_word": ("flag", "a word is used more than twice; check for keyword stuffing"),
    "keyword_stuffing": (
        "flag",
        "the text reads as a list of keywords; use keywords only where they truthfully fit",
    ),
    "hedge": ("flag", 'the text hedges ("appears to", "possibly"); check the uncertain detail'),
    "person_attributes": (
        "flag",
        "describes a person's {kinds}; check it is observable and relevant",
    ),
    "person_name": (
        "flag",
        "names a person not named in the context; a name must come from the context, "
        "never from a face",
    ),
}


def finding(code: str, **values: object) -> Finding:
    severity, message = _RULES[code]
    return Finding(code, severity, message.format(**values))


def _person_findings(text: str, ctx: RuleContext) -> list[Finding]:
    body = _without_quotes(text)
    context_words = set(_tokens(ctx.context or ""))
    kinds: list[str] = []
    for m in _GENDER.finditer(body):
        word = m.group(1).lower()
        family = next((f for f in _GENDER_FAMILIES if word in f), frozenset({word}))
        if not family & context_words:
            kinds.append("gender")
            break
    for kind, pattern in (("age", _AGE), ("race", _RACE), ("disability", _DISABILITY)):
        # The context makes an attribute known when it uses the same word ("elderly", "Black").
        if any(_tokens(m.group(1))[0] not in context_words for m in pattern.finditer(body)):
            kinds.append(kind)
    out = [finding("person_attributes", kinds=", ".join(kinds))] if kinds else []
    if _names_outside_context(body, ctx, context_words):
        out.append(finding("person_name"))
    return out


def _names_outside_context(body: str, ctx: RuleContext, context_words: set[str]) -> bool:
    if ctx.role not in ("informative", "complex") or primary(ctx.language) in _NOUN_CAPITALISING:
        return False
    for m in _NAME_PAIR.finditer(body):
        first, last = m.group(1), m.group(2)
        if first in _NOT_NAMES or last in _NOT_NAMES:
            continue
        # A run of three or more capitalised words is a title or an organisation, not a name.
        if _CAPITALISED_NEXT.match(body[m.end() :]) or _CAPITALISED_PREV.search(body[: m.start()]):
            continue
        if not {first.lower(), last.lower()} <= context_words:
            return True
    return False


def _style_findings(text: str) -> list[Finding]:
    tests = (
        ("redundant_opening", bool(_OPENING.match(text))),
        ("wrapper", bool(_LABEL.match(text)) or _strip_wrapping_quotes(text) != text),
        ("markdown", bool(_MARKDOWN.search(text))),
        ("html", bool(_HTML_TAG.search(text) or _HTML_ENTITY.search(text))),
        ("line_break", bool(_LINE_BREAK.search(text))),
        ("emoji", bool(_EMOJI.search(text))),
        ("url", bool(_URL.search(text))),
        ("file_name", bool(_FILE_NAME.search(_URL.sub(" ", text)))),
        ("camera_details", bool(_CAMERA_META.search(text))),
        ("placeholder", _is_placeholder(text)),
    )
    return [finding(code) for code, failed in tests if failed]


def _content_findings(text: str, ctx: RuleContext) -> list[Finding]:
    out: list[Finding] = []
    if not _CAMERA_META.search(text):
        context = _norm(ctx.context or "")
        if any(_norm(m.group(0)) not in context for m in _CAMERA_NAME.finditer(text)):
            out.append(finding("camera_name"))
    if ctx.role == "functional" and _ICON_WORDS.search(text):
        out.append(finding("functional_describes_icon"))
    if len(text) > ctx.max_length:
        out.append(finding("too_long", length=len(text), limit=ctx.max_length))
    if not _END.search(text) and not _is_label(text, ctx.role):
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
    for word in _words(_without_quotes(text)):
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
    if _HEDGE.search(_without_quotes(text)):
        out.append(finding("hedge"))
    return out


def check(text: str, ctx: RuleContext) -> list[Finding]:
    """Every rule ``text`` breaks for ``ctx``; an empty list means the text passes."""
    if ctx.role == "decorative":
        return [] if text == "" else [finding("decorative_not_empty")]
    if not text.strip():
        return [finding("empty")]
    findings = _style_findings(text) + _content_findings(text, ctx) + _quote_findings(text, ctx)
    detected = wrong_language(text, ctx.language)
    if detected is not None:
        findings.append(finding("wrong_language", language=ctx.language, detected=detected))
    return findings + _wording_findings(text, ctx) + _person_findings(text, ctx)


# --------------------------------------------------------------------------- repair

_DANGLING = re.compile(
    r"(?:[\s,;:–—-]+|\s+(?:and|or|but|with|of|the|a|an|to|in|on|at|for|by|from|as|its|their|"
    r"about|over|under|into|onto|near|next|behind|beside|between|through|across|along|around|"
    r"while|that|which|who|is|are|was|were|his|her|und|oder|mit|der|die|das|ein|eine|et|ou|"
    r"avec|le|la|les|un|une|y|o|con|el|los|las))+$",
    re.IGNORECASE,
)


def cut(text: str, limit: int, *, sentence: bool) -> str:
    """Cut at a word boundary within ``limit``, no dangling "and" or comma; sentences keep a
    period."""
    if len(text) <= limit:
        return text
    room = limit - 1 if sentence else limit
    head = text[:room]
    # Cutting inside a word: go back to the previous space (a word longer than the limit is
    # cut hard, there is no better place).
    if text[room].isalnum() and " " in head:
        head = head[: head.rfind(" ")]
    head = head.rstrip()
    # Never leave a quotation or a parenthesis open.
    if head.count('"') % 2:
        head = head[: head.rfind('"')]
    if head.count("(") > head.count(")"):
        head = head[: head.rfind("(")]
    previous = None
    while previous != head:
        previous = head
        head = _DANGLING.sub("", head).rstrip(" .")
    head = head[:room]
    return head + "." if sentence and head else head


def repair(text: str, ctx: RuleContext) -> str:
    """Last resort after the re-ask: drop what must not be there, then cut to the limit."""
    if ctx.role == "decorative":
        return ""
    text = _URL_REFERENCE.sub(" ", text)
    text = _FILE_NAME.sub(" ", text)
    text = _CAMERA_META.sub(" ", text)
    text = _tidy(text)
    text = clean(text, role=ctx.role)
    if _is_placeholder(text) or not _ALNUM.search(text):
        return ""
    sentence = bool(_END.search(text)) or not _is_label(text, ctx.role)
    text = cut(text, ctx.max_length, sentence=sentence)
    if _is_placeholder(text):
        return ""
    return ensure_end(text, ctx.role) if len(text) < ctx.max_length else text
