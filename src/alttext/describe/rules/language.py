"""Rule 10: the text is in the requested language, judged by a language identifier.

:class:`LanguageIdentifier` wraps py3langid's model. Loading it takes about a second, so, like
:class:`alttext.describe.ocr.OcrReader`, a process builds one at start-up (in a thread) and
passes it to the engine, which passes it to :func:`check <alttext.describe.rules.checks.check>`.
It only reads the model after loading, so one instance serves every thread.

The rule errs towards silence: short texts, languages the model does not know, languages it
cannot tell apart, and any doubt (the requested language still a contender) pass. Quoted text
is ignored because words transcribed from the image keep their own language.
"""

from __future__ import annotations

import re
from typing import Any

from alttext.describe.languages import primary_subtag
from alttext.describe.rules.text import without_quotes, words

# BCP 47 primary subtags that py3langid names differently.
_ALIASES = {"nb": "no", "nn": "no", "fil": "tl", "iw": "he", "in": "id", "ji": "yi"}
# Languages py3langid cannot tell apart.
_CLOSE_LANGUAGES = (
    frozenset({"no", "da", "sv"}),
    frozenset({"id", "ms"}),
    frozenset({"hr", "sr", "bs"}),
    frozenset({"cs", "sk"}),
    frozenset({"es", "gl", "ca"}),
    frozenset({"pt", "gl"}),
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


class LanguageIdentifier:
    """py3langid's model with normalised probabilities; build one per process and share it."""

    def __init__(self) -> None:
        # Imported here, not at module level: importing the rules stays cheap (the CLI, tools).
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as Model

        self._model: Any = Model.from_model_file(MODEL_FILE, norm_probs=True)
        # The model's language names (mostly ISO 639-1 codes).
        self.labels: frozenset[str] = frozenset(str(c) for c in self._model.nb_classes)

    def label(self, tag: str) -> str | None:
        """The model's name for the language of the BCP 47 ``tag``; None if it does not know it."""
        primary = primary_subtag(tag)
        label = _ALIASES.get(primary, primary)
        return label if label in self.labels else None

    def classify(self, text: str) -> tuple[str, float]:
        """The most probable language of ``text`` and its probability."""
        lang, prob = self._model.classify(text)
        return str(lang), float(prob)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every language the model knows with its probability, most probable first."""
        return [(str(lang), float(prob)) for lang, prob in self._model.rank(text)]

    def prob(self, text: str, label: str) -> float:
        """The probability that ``text`` is in ``label`` (see :meth:`label`), 0.0 if unknown."""
        return dict(self.rank(text)).get(label, 0.0)


def detect_language(text: str, identifier: LanguageIdentifier) -> tuple[str, float] | None:
    """(language, probability) for texts long enough to judge, ignoring quoted image text."""
    body = without_quotes(text)
    found = words(body)
    letters = sum(len(w) for w in found)
    cjk = len(_CJK.findall(body))
    if letters < 12 or (len(found) < 4 and cjk < 6):
        return None
    return identifier.classify(body)


def wrong_language(text: str, expected_tag: str, identifier: LanguageIdentifier) -> str | None:
    """The detected language when the text is confidently not in ``expected_tag``, else None."""
    expected = identifier.label(expected_tag)
    if expected is None:
        return None
    detected = detect_language(text, identifier)
    if detected is None:
        return None
    lang, prob = detected
    if lang == expected or prob < 0.9:
        return None
    if any(lang in group and expected in group for group in _CLOSE_LANGUAGES):
        return None
    # Still a real contender: too close to call from a short text.
    if identifier.prob(without_quotes(text), expected) >= 0.05:
        return None
    return lang
