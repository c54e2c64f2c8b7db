"""Audit rules for images found in documents (API.md, ``alttext audit``).

Errors: ``missing-alt`` and ``empty-alt-in-link`` (an ``alt=""`` image that is the only content of
a link or button). Warnings: suspicious alt text. What makes alt text suspicious is decided by the
engine's own checks (:func:`alttext.describe.rules.check`; the guide's checks 2-5, 7), so
an alt the engine would reject is exactly an alt the audit reports; only "the same alt on
different images" is the audit's own rule, because the engine sees one image at a time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from alttext.describe.rules import LanguageIdentifier, RuleContext, check, copies_context
from alttext.describe.rules.text import norm
from alttext.describe.types import ResolvedRole
from alttext.sitetools.model import Document, Image

Level = Literal["error", "warning"]
LEVELS: dict[str, int] = {"error": 2, "warning": 1, "never": 3}
DEFAULT_MAX_LENGTH = 150

# Engine finding code -> audit rule id and message. Only these engine checks make sense on
# alt text written by people: punctuation, hedges and the like are style, not defects.
ENGINE_RULES: dict[str, tuple[str, str]] = {
    "file_name": ("alt-file-name", "the alt text is or contains a file name"),
    "url": ("alt-url", "the alt text contains a URL"),
    "placeholder": ("alt-placeholder", 'the alt text is a placeholder word such as "image"'),
    "redundant_opening": (
        "alt-redundant-opening",
        'the alt text opens with a redundant phrase such as "image of"; start with the content',
    ),
    "wrapper": ("alt-wrapper", 'the alt text has a label such as "Alt text:" or quotes around it'),
    "too_long": ("alt-too-long", "the alt text is {length} characters long (limit {limit})"),
    "functional_describes_icon": (
        "alt-describes-icon",
        "a linked image needs the link's destination or action, not a description of the icon",
    ),
}
RULES: dict[str, tuple[Level, str]] = {
    "missing-alt": ("error", "the image has no alt attribute"),
    "empty-alt-in-link": (
        "error",
        'alt="" on an image that is the only content of a link or button: the link has no name',
    ),
    "alt-repeated": ("warning", "the same alt text is used on different images"),
    "alt-copies-text": ("warning", "the alt text repeats the text next to the image"),
    **{rule: ("warning", text) for rule, text in ENGINE_RULES.values()},
}


@dataclass(frozen=True)
class AuditFinding:
    file: str
    line: int
    column: int
    rule: str
    severity: Level
    message: str
    src: str | None
    alt: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "src": self.src,
            "alt": self.alt,
        }


@functools.cache
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def suspicious(image: Image, lang: str | None, max_length: int = DEFAULT_MAX_LENGTH) -> list[str]:
    """Rule ids of the engine checks a non-empty alt fails (empty: nothing to judge)."""
    alt = (image.alt or "").strip()
    if not alt:
        return []
    role: ResolvedRole = "functional" if image.link_target is not None else "informative"
    ctx = RuleContext(role=role, max_length=max_length, language=lang or "en")
    out = []
    for f in check(alt, ctx, _identifier()):
        if f.code in ENGINE_RULES and ENGINE_RULES[f.code][0] not in out:
            out.append(ENGINE_RULES[f.code][0])
    nearby = [image.caption, image.link_text, image.paragraph, *image.nearby]
    if role == "informative" and any(
        norm(alt) == norm(t) or copies_context(alt, t) for t in nearby if t
    ):
        out.append("alt-copies-text")
    return out


def _message(rule: str, image: Image, max_length: int) -> str:
    text = RULES[rule][1]
    if rule == "alt-too-long":
        text = text.format(length=len((image.alt or "").strip()), limit=max_length)
    return text


def needs_alt(image: Image) -> bool:
    """Missing alt that fix should fill: not ``alt=""``, not a templated tag."""
    return image.alt is None and not image.templated


def empty_in_link(image: Image) -> bool:
    return (
        image.alt is not None
        and not image.alt.strip()
        and image.link_target is not None
        and not image.link_text.strip()
        and not image.link_labelled
    )


def audit(document: Document, max_length: int = DEFAULT_MAX_LENGTH) -> list[AuditFinding]:
    found: list[tuple[Image, str]] = []
    by_alt: dict[str, set[str]] = {}
    for image in document.images:
        if image.alt and image.alt.strip() and image.src:
            by_alt.setdefault(norm(image.alt), set()).add(image.src)
    for image in document.images:
        if needs_alt(image):
            found.append((image, "missing-alt"))
        elif empty_in_link(image):
            found.append((image, "empty-alt-in-link"))
        else:
            found.extend((image, rule) for rule in suspicious(image, document.lang, max_length))
            key = norm(image.alt or "")
            if key and len(by_alt.get(key, ())) > 1:
                found.append((image, "alt-repeated"))
    return [
        AuditFinding(
            file=document.path,
            line=image.line,
            column=image.column,
            rule=rule,
            severity=RULES[rule][0],
            message=_message(rule, image, max_length),
            src=image.src,
            alt=image.alt,
        )
        for image, rule in found
    ]


def fails(findings: list[AuditFinding], fail_on: str) -> bool:
    threshold = LEVELS[fail_on]
    return any(LEVELS[f.severity] >= threshold for f in findings)
