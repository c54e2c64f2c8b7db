"""Text helpers every rule module shares: tokens, quoted spans, sentence ends, labels.

They live apart so that cleaning, checks, language and people rules agree on what a word, a
quote and a label are (a quote exempt from one rule is exempt from all of them).
"""

from __future__ import annotations

import re


def word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


APOSTROPHE = re.compile(r"(?<=\w)['’](?=\w)")
ALNUM = re.compile(r"[^\W_]")
END = re.compile(r"[.!?…。！？][\"'”’»)\]]*$")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|«([^»]+)»|„([^“”]+)[“”]|「([^」]+)」")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_LABEL_WORDS = {"functional": 6, "text": 6}


def tokens(text: str) -> list[str]:
    text = re.sub(r"['’]s\b", "", text.lower())
    text = APOSTROPHE.sub("", text)
    return re.findall(r"[^\W_]+", text)


def norm(text: str) -> str:
    return " ".join(tokens(text))


def without_quotes(text: str) -> str:
    return _QUOTED.sub(" ", text)


def quoted_spans(text: str) -> list[str]:
    """Quoted text (double quotes, guillemets; single quotes are too often apostrophes)."""
    return [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(text)]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def is_label(text: str, role: str | None) -> bool:
    return len(text.split()) <= _LABEL_WORDS.get(role or "", 2)
