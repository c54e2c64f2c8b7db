"""The last resort after the re-ask: remove what can be removed, then cut to the limit.

Only what the checks can find is removed (URLs with the words pointing at them, file names,
camera details); a text that is then only a placeholder, or nothing, becomes "" so the engine
refuses it instead of returning it (rule 14). Cutting is :func:`.cut.cut`: the best boundary,
never a dangling word, the medium and subject kept.
"""

from __future__ import annotations

import re

from alttext.describe.rules.checks import CAMERA_META, FILE_NAME, URL, is_placeholder
from alttext.describe.rules.clean import clean, ensure_end, tidy
from alttext.describe.rules.cut import cut
from alttext.describe.rules.findings import RuleContext
from alttext.describe.rules.text import ALNUM, END, is_label

__all__ = ["cut", "repair"]

# A URL with the words that point at it ("see https://…"): removed together.
_URL_REFERENCE = re.compile(
    rf"(?:\b(?:see|visit|at|from|via|source:?)\s+)?(?:{URL.pattern})", re.IGNORECASE
)


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
    text = cut(text, ctx.max_length, sentence=sentence, language=ctx.language)
    if is_placeholder(text) or not ALNUM.search(text):
        return ""
    return ensure_end(text, ctx.role) if len(text) < ctx.max_length else text
