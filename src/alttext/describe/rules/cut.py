"""Cutting a text to a length without inventing a sentence.

A cut never writes new words, it only chooses where to stop, and the choice matters: stopping
at the last word that fits turned a page heading into "Region-based segmentation Let." and a
photo into "Photo of a red." So every boundary that fits is a candidate, and the longest wins
after weighting by how complete that kind of boundary leaves the text (:data:`WEIGHTS`):

* whole sentences, whole lines of transcribed text (line breaks given by the caller), clauses
  (before a comma, semicolon, colon, dash, parenthesis or slash);
* the subject with its medium: "Photo of a red Yamaha motorcycle parked …" -> "Photo of a
  motorcycle" (English also "Motorcycle photo"), for the languages with word lists;
* the last word that fits, unless that ends between the medium and its head noun.

Every candidate is finished the same way: an open quotation is closed with "…" when two or more
of its words remain (otherwise it goes, with "reading" or "saying" before it), no open
parenthesis, no trailing comma or dash, no dangling function word (:mod:`.wordlists`, per
language), and only then the final period.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from alttext.describe.languages import primary_subtag
from alttext.describe.rules.clean import join_lines
from alttext.describe.rules.text import ALNUM, END, word_set
from alttext.describe.rules.wordlists import dangling_words

# How much of the meaning a kind of boundary keeps, per character kept: a whole first sentence
# beats a word cut up to 1.6 times as long, a clause one up to 1.3 times.
WEIGHTS = {"sentence": 1.0, "line": 0.9, "clause": 0.8, "subject": 0.75, "word": 0.6}

_SENTENCE_END = re.compile(r"(?<=\S)[.!?…。！？][\"'”’»)\]]*(?=\s|$)")
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:[A-Za-z]|e\.g|i\.e|etc|vs|approx|ca|Dr|Mr|Mrs|Ms|St|Nr|No|Fig|z\.B|bzw|Abb)\.$",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[–—-]\s|\s(?=\()|\s/\s|\s\|\s")
_TRAILING = re.compile(r"[\s,;:–—\-/|&+(\[{«„“‘'\"…]+$")
_EDGE = re.compile(r"^\W+|\W+$")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x0b\x0c]+")
# Opening quotation marks and what closes them ("„" is German, closed by "“").
_CLOSING_FOR = {'"': '"', "“": "”", "«": "»", "„": "“"}
_QUOTE_CHARS = re.compile('["“”«»„]')
# Words that introduce a quotation; without the quote they would dangle ("Sign reading.").
_INTRO_AT_END = re.compile(
    r"\s*,?\s*\b(?:reading|saying|that\s+says|which\s+says|with\s+the\s+(?:text|words)|"
    r"label(?:l)?ed|titled|entitled|marked|mit\s+der\s+Aufschrift|mit\s+dem\s+Text|"
    r"avec\s+le\s+texte|portant\s+l[ae]\s+mention|con\s+el\s+texto|que\s+dice)\s*$",
    re.IGNORECASE,
)

# The medium, the word joining it to the subject, and articles, for the languages listed.
_MEDIUM = {
    "en": word_set(
        "photo photograph picture image screenshot scan chart graph diagram map illustration "
        "drawing painting sketch logo icon poster infographic page cover snapshot rendering"
    ),
    "de": word_set(
        "foto fotografie bild aufnahme screenshot bildschirmfoto scan diagramm grafik karte "
        "zeichnung gemälde illustration logo symbol plakat seite"
    ),
    "fr": word_set(
        "photo photographie image capture graphique diagramme carte dessin peinture "
        "illustration logo icône affiche page"
    ),
    "es": word_set(
        "foto fotografía imagen captura gráfico diagrama mapa dibujo pintura ilustración "
        "logotipo logo icono cartel página"
    ),
}
_LINK = {
    "en": word_set("of showing"),
    "de": word_set("von eines einer des der mit"),
    "fr": word_set("de du des d"),
    "es": word_set("de del"),
}
_ARTICLES = {
    "en": word_set("a an the"),
    "de": word_set("ein eine einen einem einer eines der die das den dem des"),
    "fr": word_set("un une le la les l des du"),
    "es": word_set("un una unos unas el la los las"),
}
_HEAD_FIRST = frozenset({"fr", "es"})  # the noun comes before its adjectives
_PARTICIPLE = re.compile(r"\w(?:ed|ing)$")


@dataclass(frozen=True)
class _Candidate:
    text: str
    weight: float

    @property
    def score(self) -> float:
        return len(self.text) * self.weight


@dataclass(frozen=True)
class _Subject:
    """The medium phrase and its subject: ``forms`` to offer, and the span a cut must not end
    inside (after the link word, before the head noun), counted in words."""

    forms: tuple[str, ...]
    inside: range


def _words_of(token: str) -> list[str]:
    """A token's words, lower case: "d'une" -> ["d", "une"]; punctuation around it dropped."""
    core = _EDGE.sub("", token).lower()
    return [part for part in re.split(r"['’]", core) if part]


def _last_word(token: str) -> str:
    """The word that decides a token: "Black-and-white" -> "white", "d'une" -> "une"."""
    parts = _words_of(token.split("-")[-1])
    return parts[-1] if parts else ""


def ends_dangling(text: str, language: str) -> bool:
    """Whether ``text`` (a final period aside) ends on a word that cannot end a phrase."""
    tokens = text.rstrip(".!?…").split()
    return bool(tokens) and _last_word(tokens[-1]) in dangling_words(language)


def _open_quote(text: str) -> tuple[int, str] | None:
    """Where the outermost quotation still open at the end of ``text`` starts, and the mark that
    would close it; None when every quotation is closed."""
    stack: list[tuple[int, str]] = []
    for i, char in enumerate(text):
        if stack and char == stack[-1][1]:
            stack.pop()
        elif char in _CLOSING_FOR:
            stack.append((i, _CLOSING_FOR[char]))
    return stack[0] if stack else None


def _end_quote(text: str, room: int, dangling: frozenset[str]) -> str:
    """Close a quotation the cut opened with "…" if two or more of its words fit; else drop it.
    Always drop an open parenthesis."""
    opened = _open_quote(text)
    if opened is not None:
        start, closing = opened
        inner = _QUOTE_CHARS.sub(" ", text[start + 1 :]).split()

        def closed() -> str:
            return f"{text[: start + 1]}{' '.join(inner)}…{closing}"

        while inner and (
            _last_word(inner[-1]) in dangling or not ALNUM.search(inner[-1]) or len(closed()) > room
        ):
            inner.pop()
        kept = sum(1 for word in inner if ALNUM.search(word))
        text = closed() if kept >= 2 else text[:start]
    while text.count("(") > text.count(")"):
        text = text[: text.rfind("(")]
    return text


def finish(text: str, language: str, room: int) -> str:
    """A cut-off head made clean: quotes and parentheses closed or dropped, no trailing
    punctuation, no dangling word; at most ``room`` characters. "" when no word can end it."""
    dangling = dangling_words(language)
    previous = None
    while previous != text:
        previous = text
        text = _end_quote(text, room, dangling)
        if text.endswith(("…”", '…"', "…»", "…“")):
            break
        text = _INTRO_AT_END.sub("", text)
        text = _TRAILING.sub("", text).rstrip(" .")
        last = text.split()[-1] if text.split() else ""
        if last and (_last_word(last) in dangling or not ALNUM.search(last)):
            text = text.rsplit(maxsplit=1)[0] if " " in text.strip() else ""
    return text[:room] if len(text) > room else text


def _sentences(text: str, limit: int, lang: str) -> Iterator[str]:
    """Prefixes of whole sentences within ``limit`` whose last sentence ends cleanly."""
    for m in _SENTENCE_END.finditer(text):
        body = text[: m.start()].rstrip()
        if m.end() > limit or _ABBREVIATION.search(text[: m.start() + 1]):
            continue
        if body and finish(body, lang, limit) == body:
            yield text[: m.end()]


def _word_prefix(text: str, room: int) -> str:
    """The longest prefix within ``room`` that ends at a word boundary (a hard cut for a single
    word longer than the room: there is no better place)."""
    if len(text) <= room:
        return text
    head = text[:room]
    inside_word = not text[room].isspace() and not head[-1].isspace()
    if inside_word and " " in head.strip():
        head = head[: head.rfind(" ")]
    return head.rstrip()


def _subject(text: str, lang: str) -> _Subject | None:
    """'Photo of a red Yamaha motorcycle parked …' -> 'Photo of a motorcycle' (and, in English,
    'Motorcycle photo'): the medium and the head noun of its subject; None when there is none."""
    media, links, articles = _MEDIUM.get(lang), _LINK.get(lang), _ARTICLES.get(lang)
    if media is None or links is None or articles is None:
        return None
    words = text.split()
    medium = next((i for i, word in enumerate(words[:4]) if _last_word(word) in media), None)
    if medium is None or medium + 1 >= len(words):
        return None
    link = _words_of(words[medium + 1])
    if not link or link[0] not in links:
        return None
    rest = words[medium + 2 :]
    article: list[str] = []
    # "d'une" brings its article along; otherwise an article may follow the link.
    if len(link) < 2 and rest and _last_word(rest[0]) in articles:
        article, rest = [rest[0]], rest[1:]
    stop = dangling_words(lang)
    phrase: list[str] = []
    for word in rest[:5]:
        last = _last_word(word)
        quoted = any(q in word for q in '"“„«(')
        participle = lang == "en" and phrase and _PARTICIPLE.search(last)
        if not last or last in stop or quoted or participle:
            break
        phrase.append(_EDGE.sub("", word))
        if _EDGE.sub("", word) != word:
            break  # the word carries punctuation: the phrase ends with it
    if not phrase:
        return None
    head_at = 0 if lang in _HEAD_FIRST else len(phrase) - 1
    head = phrase[head_at]
    lead = words[: medium + 2]
    forms = [" ".join([*lead, *article, head])]
    if lang == "en":
        forms.append(f"{head[0].upper()}{head[1:]} {words[medium].lower()}")
    first = medium + 2 + len(article)
    return _Subject(tuple(forms), range(medium + 2, first + head_at + 1))


def _candidates(text: str, lines: list[str], limit: int, room: int, lang: str) -> list[_Candidate]:
    out = [_Candidate(head, WEIGHTS["sentence"]) for head in _sentences(text, limit, lang)]
    for k in range(1, len(lines)):
        head = join_lines("\n".join(lines[:k]))
        if len(head) <= room:
            out.append(_Candidate(finish(head, lang, room), WEIGHTS["line"]))
    for m in _CLAUSE.finditer(text):
        if m.start() <= room:
            out.append(_Candidate(finish(text[: m.start()], lang, room), WEIGHTS["clause"]))
    subject = _subject(text, lang)
    if subject is not None:
        out += [
            _Candidate(finish(form, lang, room), WEIGHTS["subject"])
            for form in subject.forms
            if len(form) <= room
        ]
    word = finish(_word_prefix(text, room), lang, room)
    if subject is None or len(word.split()) not in subject.inside or not out:
        out.append(_Candidate(word, WEIGHTS["word"]))
    return [c for c in out if ALNUM.search(c.text)]


def cut(text: str, limit: int, *, sentence: bool, language: str = "en") -> str:
    """At most ``limit`` characters of ``text``, cut at the best boundary, ending cleanly.

    ``sentence``: the result ends with ".", "!" or "?" (a label does not). ``language`` (a BCP
    47 tag) chooses the dangling words and the subject phrase. Line breaks in ``text`` mark
    lines of transcribed text and are boundaries too; the result has none. The result is ""
    only when no word of the text can end it cleanly."""
    pieces = _LINE_BREAK.split(text)
    lines = [line.strip() for line in pieces if line.strip()]
    flat = join_lines("\n".join(lines)) if len(pieces) > 1 else text
    if len(flat) <= limit:
        return flat
    room = limit - 1 if sentence else limit
    candidates = _candidates(flat, lines, limit, room, primary_subtag(language))
    if not candidates:
        return ""
    best = max(candidates, key=lambda c: c.score).text
    if sentence and not END.search(best):
        best = best[:room] + "."
    return best
