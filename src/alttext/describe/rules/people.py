"""Rule 9, people: attributes and names that must come from the context, never from a face.

A conservative word list, and a flag, never an edit: only a human can tell whether "elderly" is
observable and relevant, or whether a capitalised pair is a person's name. The context makes an
attribute or a name known when it uses the same words.
"""

from __future__ import annotations

import re

from alttext.describe.languages import primary_subtag
from alttext.describe.rules.findings import Finding, RuleContext, finding
from alttext.describe.rules.text import tokens, without_quotes, word_set

_PERSON = (
    r"(?:man|men|woman|women|person|people|boy|boys|girl|girls|child|children|kid|kids|family|"
    r"couple|guy|guys|lady|ladies|gentleman|gentlemen|teenager|teenagers|student|students|adult|adults)"
)
_GENDER_FAMILIES = (
    word_set("man men male males boy boys gentleman gentlemen guy guys mens"),
    word_set("woman women female females girl girls lady ladies womens"),
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
_NOT_NAMES = word_set(
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


def person_findings(text: str, ctx: RuleContext) -> list[Finding]:
    """Flags for people's attributes and names the context does not give (quotes exempt)."""
    body = without_quotes(text)
    context_words = set(tokens(ctx.context or ""))
    kinds: list[str] = []
    for m in _GENDER.finditer(body):
        word = m.group(1).lower()
        family = next((f for f in _GENDER_FAMILIES if word in f), frozenset({word}))
        if not family & context_words:
            kinds.append("gender")
            break
    for kind, pattern in (("age", _AGE), ("race", _RACE), ("disability", _DISABILITY)):
        # The context makes an attribute known when it uses the same word ("elderly", "Black").
        if any(tokens(m.group(1))[0] not in context_words for m in pattern.finditer(body)):
            kinds.append(kind)
    out = [finding("person_attributes", kinds=", ".join(kinds))] if kinds else []
    if _names_outside_context(body, ctx, context_words):
        out.append(finding("person_name"))
    return out


def _names_outside_context(body: str, ctx: RuleContext, context_words: set[str]) -> bool:
    if ctx.role not in ("informative", "complex"):
        return False
    if primary_subtag(ctx.language) in _NOUN_CAPITALISING:
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
