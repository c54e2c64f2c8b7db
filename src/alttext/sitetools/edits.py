"""Byte-preserving rewrites: only alt values (or a new ``alt`` attribute) change, and a diff.

An HTML value is escaped for its quoting (``&amp;``, ``&lt;``, ``&quot;`` or ``&#39;``); a new
attribute follows the tag's own quote character and goes right after the tag name. A Markdown
alt goes between the brackets with backslash escapes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from alttext.sitetools.model import Image


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str  # replaces text[start:end]
    image: Image
    alt: str  # the new alt, unescaped


def html_escape(value: str, quote: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("'", "&#39;") if quote == "'" else value.replace('"', "&quot;")


def markdown_escape(value: str) -> str:
    return re.sub(r"([\\\[\]*_`<>&!])", r"\\\1", value)


def one_line(value: str) -> str:
    return " ".join(value.split())


def edit_for(image: Image, alt: str) -> Edit:
    alt = one_line(alt)
    if image.kind == "markdown":
        assert image.alt_span is not None
        start, end = image.alt_span
        return Edit(start, end, markdown_escape(alt), image, alt)
    if image.alt_span is not None:  # replace an existing value in place, same quoting
        start, end = image.alt_span
        if image.alt_quote:
            return Edit(start, end, html_escape(alt, image.alt_quote), image, alt)
        return Edit(start, end, f'"{html_escape(alt, chr(34))}"', image, alt)
    assert image.insert_at is not None
    q = image.quote
    return Edit(image.insert_at, image.insert_at, f" alt={q}{html_escape(alt, q)}{q}", image, alt)


def apply(text: str, edits: list[Edit]) -> str:
    out: list[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: e.start):
        if e.start < pos:
            raise ValueError("overlapping edits")
        out.append(text[pos : e.start])
        out.append(e.text)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def unified_diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
