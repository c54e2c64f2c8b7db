"""What the scanners find: images with exact offsets into the document's text, and their context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["html", "markdown"]


@dataclass
class Image:
    """One image. Offsets index the decoded text (one character per original byte sequence)."""

    kind: Kind
    start: int  # first character of ``<img`` or ``![``
    line: int  # 1-based
    column: int  # 1-based, in characters
    src: str | None
    alt: str | None  # decoded; None when the attribute is missing (Markdown: empty brackets)
    # Span of the raw alt value (inside quotes or brackets); None when missing.
    alt_span: tuple[int, int] | None = None
    # Where ` alt="…"` goes when missing (HTML only) and the quote character to use.
    insert_at: int | None = None
    quote: str = '"'
    alt_quote: str = '"'  # the quoting of an existing alt value: '"', "'" or "" (unquoted)
    templated: bool = False  # template syntax in the tag: never edited, not judged missing
    link_target: str | None = None  # href of the enclosing link, or "button"
    link_text: str = ""  # other text of that link (not this image's alt)
    link_labelled: bool = False  # the link has aria-label / title / other images with alt
    heading: str = ""
    caption: str = ""
    paragraph: str = ""
    nearby: list[str] = field(default_factory=list)  # the text runs just before and after
    title: str = ""  # the image's own title (Markdown) or title attribute
    # What a crawler may fall back on when ``src`` is unusable (HTML only).
    srcset: str | None = None
    sources: list[str] = field(default_factory=list)  # srcset of each <source> of its <picture>
    link_label: str = ""  # aria-label or title of the enclosing link or button

    @property
    def role(self) -> Literal["functional", "auto"]:
        return "functional" if self.link_target is not None else "auto"

    def context(self) -> str:
        """The words around the image the generator may use, most specific first."""
        parts = [self.caption, self.title, self.paragraph, self.heading]
        seen: list[str] = []
        for part in parts:
            part = " ".join(part.split())
            if part and part not in seen:
                seen.append(part)
        return " — ".join(seen)[:2000]


@dataclass
class Document:
    path: str
    kind: Kind
    text: str
    lang: str | None = None
    images: list[Image] = field(default_factory=list)


def line_col(text: str, offset: int, line_starts: list[int]) -> tuple[int, int]:
    """1-based line and column of ``offset`` (a CRLF counts as one line break)."""
    import bisect

    i = bisect.bisect_right(line_starts, offset) - 1
    return i + 1, offset - line_starts[i] + 1


def line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n" or (ch == "\r" and text[i + 1 : i + 2] != "\n"):
            starts.append(i + 1)
    return starts
