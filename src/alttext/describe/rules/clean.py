"""The repairs that never change meaning, applied to every model answer before it is checked.

Wrappers ("Alt text:", surrounding quotes), Markdown, HTML, emoji, line breaks, redundant
openings such as "The image shows", and a missing final period. A bare medium noun is redundant
("Photo of", "An image showing"); a medium with a qualifier carries meaning and stays
("Black-and-white photo of", "Screenshot of", "Line chart of", "Oil painting of").

The patterns are public within the package because :mod:`.checks` reports, with the very same
patterns, what cleaning would have removed.
"""

from __future__ import annotations

import html
import re
import unicodedata

from alttext.describe.rules.text import ALNUM, APOSTROPHE, END, is_label
from alttext.describe.rules.wordlists import DANGLING

_NOUN = r"(?:image|picture|photo|photograph|pic|graphic|snapshot)"
_VERB = (
    r"(?:shows|showing|depicts|depicting|displays|displaying|features|featuring|contains|"
    r"presents|portrays|captures|illustrates|is\s+of|of|with)"
)
OPENING = re.compile(
    r"^(?:"
    r"(?:sure|certainly|of\s+course|okay|ok)\s*[!,.:]\s*"
    r"|here(?:'s|’s|\s+is|\s+are|\s+we\s+have|\s+you\s+can\s+see)\s+"
    r"|(?:i|we|you|one)\s+(?:can\s+)?see\s+"
    rf"|in\s+(?:this|the)\s+{_NOUN}\s*,?\s*(?:(?:we|you|one)\s+can\s+see|there\s+(?:is|are)|is|are)?\s*"
    rf"|(?:(?:this|the|that|it)\s+(?:is\s+)?(?:an?\s+)?|an?\s+)?{_NOUN}\s+{_VERB}\s+(?:that\s+)?"
    r")",
    re.IGNORECASE,
)
LABEL = re.compile(
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

HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
HTML_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)")
_MD_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_MD_EM = re.compile(
    r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"
)
_MD_FENCE = re.compile(r"```[\w-]*")
_MD_LINE = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+•][ \t]+|\d{1,2}[.)][ \t]+)", re.MULTILINE
)
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0e\ufe0f\u200d\u20e3"
    "\U000e0020-\U000e007f\u231a\u231b\u23e9-\u23fa\u24c2\u3030\u303d\u3297\u3299]"
)


def _has_inner_quote(inner: str, opening: str, closing: str) -> bool:
    if opening in ("'", "‘") or closing == "’":
        inner = APOSTROPHE.sub("", inner)
    return opening in inner or closing in inner


def strip_wrapping_quotes(text: str) -> str:
    m = _WRAPPED.match(text)
    if not m or len(text) < 3:
        return text
    opening, inner, closing, trailer = m.groups()
    if _QUOTE_PAIRS.get(opening) != closing and not (opening == closing == "”"):
        return text
    if _has_inner_quote(inner, opening, closing):
        return text
    inner = inner.strip()
    if trailer and not END.search(inner):
        inner += trailer
    return inner


def _capitalise(text: str) -> str:
    first = text.split(" ", 1)[0]
    # "iPhone", "eBay": a word with inner capitals is a name; leave it alone.
    if first[:1].islower() and first == first.lower():
        return text[0].upper() + text[1:]
    return text


def tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return re.sub(r"^[\s,;:–—-]+", "", text).strip()


_ANY_DANGLING = frozenset().union(*DANGLING.values())
_LINE_END = re.compile(r"[.!?…:;,。！？][\"'”’»)\]]*$")


def join_lines(text: str) -> str:
    """Lines as one line. A line that ends without punctuation before a line that starts with a
    capital is a heading or a line of transcribed text: it ends a sentence ("Region-based
    segmentation" / "Let R be …"); any other line break is a space ("**Bold** text" / "line
    two"), as is one after a word that cannot end a phrase ("with the" / "Yamaha logo")."""
    lines = [line.strip() for line in re.split(r"[\r\n\u2028\u2029\x0b\x0c]+", text)]
    lines = [line for line in lines if line]
    out = lines[:1]
    for line in lines[1:]:
        previous = out[-1]
        last = previous.split()[-1].lower() if previous.split() else ""
        if line[0].isupper() and not _LINE_END.search(previous) and last not in _ANY_DANGLING:
            out[-1] = previous + "."
        out.append(line)
    return " ".join(out)


def _strip_formatting(text: str) -> str:
    text = EMOJI.sub("", text)
    text = _MD_FENCE.sub(" ", text)
    text = HTML_TAG.sub(" ", text)
    if HTML_ENTITY.search(text):
        text = html.unescape(text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EM.sub(lambda m: m.group(1) or m.group(2), text)
    text = re.sub(r"\*\*|__|~~", "", text)  # unpaired markers left by a cut-off answer
    text = _MD_LINE.sub("", text)
    text = join_lines(text.replace("`", ""))
    return re.sub(r"\s+", " ", text).strip()


def strip_openings(text: str) -> str:
    """Remove wrappers and redundant openings repeatedly ('"Alt text: Image of a dog"')."""
    changed = False
    while True:
        before = text
        text = strip_wrapping_quotes(text)
        text = LABEL.sub("", text, count=1)
        text = OPENING.sub("", text, count=1)
        text = tidy(text)
        if text == before:
            break
        changed = True
    return _capitalise(text) if changed and text else text


def ensure_end(text: str, role: str | None = None) -> str:
    if not text or END.search(text) or is_label(text, role):
        return text
    return re.sub(r"[\s,;:–—-]+$", "", text) + "."


def clean(text: str, *, role: str | None = None) -> str:
    """Repairs that never change meaning. ``role`` decides whether a short text is a label."""
    text = unicodedata.normalize("NFC", text)
    text = _strip_formatting(text)
    text = strip_openings(text)
    if role == "decorative" or not ALNUM.search(text):
        # A decorative image's alt is "" by definition; bare punctuation is nothing at all.
        return ""
    return ensure_end(text, role)
