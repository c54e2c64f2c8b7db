"""The last resort after the re-ask: remove what can be removed, then cut at a word boundary.

Only what the checks can find is removed (URLs with the words pointing at them, file names,
camera details); a text that is then only a placeholder, or nothing, becomes "" so the engine
refuses it instead of returning it (rule 14).
"""

from __future__ import annotations

import re

from alttext.describe.rules.checks import CAMERA_META, FILE_NAME, URL, is_placeholder
from alttext.describe.rules.clean import clean, ensure_end, tidy
from alttext.describe.rules.findings import RuleContext
from alttext.describe.rules.text import ALNUM, END, is_label

# A URL with the words that point at it ("see https://…"): removed together.
_URL_REFERENCE = re.compile(
    rf"(?:\b(?:see|visit|at|from|via|source:?)\s+)?(?:{URL.pattern})", re.IGNORECASE
)
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
    text = FILE_NAME.sub(" ", text)
    text = CAMERA_META.sub(" ", text)
    text = tidy(text)
    text = clean(text, role=ctx.role)
    if is_placeholder(text) or not ALNUM.search(text):
        return ""
    sentence = bool(END.search(text)) or not is_label(text, ctx.role)
    text = cut(text, ctx.max_length, sentence=sentence)
    if is_placeholder(text):
        return ""
    return ensure_end(text, ctx.role) if len(text) < ctx.max_length else text
