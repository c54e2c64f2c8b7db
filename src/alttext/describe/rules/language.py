"""Rule 10: the text is in the requested language, judged by how likely that language is.

:class:`LanguageIdentifier` wraps py3langid's model. Loading it takes about a second, so, like
:class:`alttext.describe.ocr.OcrReader`, a process builds one at start-up (in a thread) and
passes it to the engine, which passes it to :func:`check <alttext.describe.rules.checks.check>`.
It only reads the model after loading, so one instance serves every thread.

Why the *requested* language's probability and not the winner's: on a short text the
identifier spreads its belief. "Red motorcycle parked on a grassy verge." is English with only
0.60, yet German with 0.002; asking "is it confidently something else?" let it through as
German, asking "is German still plausible?" does not. So a text fails when the requested
language, together with the languages it cannot be told apart from on a few words
(:data:`CLOSE_GROUPS`), keeps less than :data:`MIN_PROBABILITY` of the identifier's belief.
``tests/describe/rules/language_corpus.py`` measures the rule on short alt texts in 31
languages; docs/quality.md shows the table.

What is not judged (no false alarm is worth a wrong re-ask):

* words that carry no language: quotes from the image (they keep their own language), numbers
  and tokens with digits, acronyms and brands in capitals ("YAMAHA", "PDF"), words with inner
  capitals ("iPhone"), and, in languages that capitalise only names, capitalised words inside a
  sentence ("New York", "Lake Kawaguchi");
* texts with fewer than 4 remaining words (or 6 characters of a script written without
  spaces): a label such as "Acme home" is too short to tell;
* languages the model does not know.

Two cheap second opinions: a judgeable text without a single letter of the requested
language's script (English for Japanese) fails outright, and a text that uses two function
words only the requested language has (:mod:`.wordlists`: "and", "on" in "Croissant and café
au lait on a bistro table.") passes whatever its loanwords make the identifier think.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from alttext.describe.languages import primary_subtag
from alttext.describe.rules.text import without_quotes, words
from alttext.describe.rules.wordlists import distinctive_words

# The requested language (with its close group) must keep at least this much probability.
# Calibrated on the corpus (docs/quality.md): right texts keep >= 0.1, most >= 0.6; wrong ones
# keep < 0.05 except between near neighbours such as Spanish and Portuguese.
MIN_PROBABILITY = 0.05
MIN_WORDS = 4
MIN_LETTERS = 12
MIN_UNSPACED = 6
MIN_GRAMMAR_WORDS = 2

# BCP 47 primary subtags that py3langid names differently.
_ALIASES = {"nb": "no", "fil": "tl", "iw": "he", "in": "id", "ji": "yi"}

# Languages a few words cannot tell apart, as py3langid names them: a text in one passes a
# request for any other of a group it shares. Standard languages with their regional varieties
# the model also knows (Aragonese, Luxembourgish, Wu, Moroccan Arabic, Nigerian Pidgin, ...).
CLOSE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"no", "nn", "da", "sv"}),
    frozenset({"es", "gl", "ca", "an", "ext", "ast"}),
    frozenset({"pt", "gl"}),
    frozenset({"ca", "oc", "an"}),
    frozenset({"fr", "oc", "wa"}),
    frozenset({"hr", "sr", "bs"}),
    frozenset({"hr", "sl"}),
    frozenset({"sr", "mk"}),
    frozenset({"mk", "bg"}),
    frozenset({"cs", "sk"}),
    frozenset({"id", "ms"}),
    frozenset({"de", "lb"}),
    frozenset({"nl", "af", "fy"}),
    frozenset({"en", "pcm"}),
    frozenset({"it", "lij", "vec"}),
    frozenset({"ar", "ary", "arz"}),
    frozenset({"zh", "wuu", "yue"}),
    frozenset({"he", "hbo"}),
    frozenset({"el", "grc"}),
    frozenset({"tr", "crh"}),
)

# Languages that capitalise every noun: a capital letter says nothing about names there.
_NOUN_CAPITALISING = frozenset({"de", "lb"})
# Scripts written without spaces between words: Han, kana, Thai, Lao, Khmer, Myanmar.
_UNSPACED_CHARS = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f"
_UNSPACED = re.compile(f"[{_UNSPACED_CHARS}]")
_UNSPACED_RUN = re.compile(f"[{_UNSPACED_CHARS}]+")
_SENTENCE_END = re.compile(r"[.!?:;…。！？]$")
_EDGE_PUNCT = re.compile(r"^[^\w]+|[^\w]+$")
_APOSTROPHE = re.compile(r"['’]")

# The script a language is written in, where a text without one of its letters cannot be in it.
_LATIN = r"A-Za-z\u00c0-\u024f\u1e00-\u1eff"
_CYRILLIC = r"\u0400-\u04ff"
_LANGUAGES_BY_SCRIPT = (
    (
        _LATIN,
        "en de fr es it pt nl no nn da sv fi pl cs sk hr bs sl tr hu ro vi id ms ca gl eu et "
        "lv lt is ga cy sq af sw tl",
    ),
    (_CYRILLIC, "ru uk be bg mk kk ky mn tg tt ba"),
    (_LATIN + _CYRILLIC, "sr"),
    (r"\u0370-\u03ff\u1f00-\u1fff", "el"),
    (r"\u0600-\u06ff\u0750-\u077f", "ar fa ur ps ug"),
    (r"\u0590-\u05ff", "he"),
    (r"\u0900-\u097f", "hi mr ne"),
    (r"\u3040-\u30ff\u3400-\u9fff", "ja"),
    (r"\u3400-\u9fff\uf900-\ufaff", "zh wuu yue"),
    (r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f", "ko"),
    (r"\u0e00-\u0e7f", "th"),
)
_SCRIPTS: dict[str, re.Pattern[str]] = {
    lang: re.compile(f"[{chars}]")
    for chars, langs in _LANGUAGES_BY_SCRIPT
    for lang in langs.split()
}


def close_languages(label: str) -> frozenset[str]:
    """``label`` and every language that shares a close group with it."""
    out = {label}
    for group in CLOSE_GROUPS:
        if label in group:
            out |= group
    return frozenset(out)


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


def _carries_no_language(part: str, initial: bool, names_capitalised: bool) -> bool:
    core = _EDGE_PUNCT.sub("", part)
    if not core or any(c.isdigit() for c in core):
        return True
    letters = [c for c in core if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return True  # "YAMAHA", "PDF", "USA"
    if any(a.islower() and b.isupper() for a, b in pairwise(core)):
        return True  # "iPhone", "YouTube", "McDonald's"
    return names_capitalised and not initial and core[0].isupper()


def _tokens(body: str) -> list[str]:
    # A run of a script without spaces is a token of its own ("Excelのピボット", "2025年").
    return _UNSPACED_RUN.sub(lambda m: f" {m.group(0)} ", body).split()


def language_bearing_text(text: str, names_capitalised: bool = True) -> str | None:
    """The words of ``text`` that carry its language, or None when too few remain to judge.

    ``names_capitalised``: the text's language capitalises only names (not German), so a
    capitalised word inside a sentence is a name and carries no language."""
    kept: list[str] = []
    initial = True
    for token in _tokens(without_quotes(text)):
        parts = [p for p in token.split("-") if p]
        kept += [
            part
            for i, part in enumerate(parts)
            if not _carries_no_language(part, initial and i == 0, names_capitalised)
        ]
        initial = bool(_SENTENCE_END.search(token))
    rest = " ".join(kept)
    return rest if _enough(rest) else None


def _enough(body: str) -> bool:
    if len(_UNSPACED.findall(body)) >= MIN_UNSPACED:
        return True
    found = words(body)
    return len(found) >= MIN_WORDS and sum(len(w) for w in found) >= MIN_LETTERS


def _script_mismatch(body: str, expected: str) -> bool:
    """A judgeable text without a single letter of the requested language's script."""
    script = _SCRIPTS.get(expected)
    return script is not None and _enough(body) and not script.search(body)


def requested_probability(
    text: str, expected_tag: str, identifier: LanguageIdentifier
) -> tuple[float, str] | None:
    """(probability of the requested language and its close group, the most probable language),
    or None when the text cannot be judged (too short, or a language the model does not know).

    A text without one letter of the requested language's script (an English answer to a
    Japanese request) has probability 0 whatever its length beyond the minimum."""
    expected = identifier.label(expected_tag)
    if expected is None:
        return None
    body = without_quotes(text)
    if _script_mismatch(body, expected):
        return 0.0, identifier.classify(body)[0]
    # Whether a capital letter marks a name depends on the language the text is written in.
    written_in = identifier.classify(body)[0] if _enough(body) else expected
    judged = language_bearing_text(body, written_in not in _NOUN_CAPITALISING)
    if judged is None:
        return None
    ranked = identifier.rank(judged)
    accepted = close_languages(expected)
    return sum(p for lang, p in ranked if lang in accepted), ranked[0][0]


def grammar_of(text: str, expected_tag: str) -> bool:
    """Whether ``text`` uses at least :data:`MIN_GRAMMAR_WORDS` function words that only the
    requested language has: loanwords ("café au lait", "nigiri") then fool no one."""
    distinctive = distinctive_words(expected_tag)
    if not distinctive:
        return False
    found = {
        part.lower()
        for word in words(without_quotes(text))
        for part in _APOSTROPHE.split(word)
        if part.lower() in distinctive
    }
    return len(found) >= MIN_GRAMMAR_WORDS


def detect_language(text: str, identifier: LanguageIdentifier) -> tuple[str, float] | None:
    """(language, probability) for texts long enough to judge, ignoring quoted image text."""
    body = language_bearing_text(text)
    if body is None:
        return None
    return identifier.classify(body)


def wrong_language(text: str, expected_tag: str, identifier: LanguageIdentifier) -> str | None:
    """The most probable language when ``expected_tag`` (or a close language) is implausible
    for ``text``; None when the text passes or cannot be judged."""
    judged = requested_probability(text, expected_tag, identifier)
    if judged is None:
        return None
    probability, top = judged
    expected = identifier.label(expected_tag)
    if probability >= MIN_PROBABILITY or expected is None or top in close_languages(expected):
        return None
    return None if grammar_of(text, expected_tag) else top
