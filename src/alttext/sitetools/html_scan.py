"""A careful HTML tokenizer over the original text: tags and attributes with exact offsets.

It follows the HTML standard's tokenizer where it matters for editing: comments, raw-text
elements (script, style, textarea, title, xmp), CDATA and doctypes are skipped (``<!-->`` and
``<!--->`` are whole empty comments), attribute values may be double-, single- or unquoted, a
``>`` inside a quoted value does not end the tag, the first of duplicate attributes wins,
character references in values follow the attribute rule (``?a=1&copy=2`` stays as written), and
a tag left open at the end of the file is not a tag. Context
(link, heading, figure caption, paragraph, ``<html lang>``) comes from the same token stream.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.entities import html5 as _HTML5

from alttext.sitetools.model import Image, line_col, line_starts

_TAG_START = re.compile(r"<(/?)([A-Za-z][^\s/>]*)|<!--|<!\[CDATA\[|<[!?]")
_RAW_TEXT = {"script", "style", "textarea", "title", "xmp", "noscript", "iframe", "noembed"}
_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr", "param",
}  # fmt: skip
_BLOCKS = {
    "p", "li", "td", "th", "dd", "dt", "blockquote", "figcaption", "caption", "div",
    "section", "article", "main", "aside", "header", "footer", "nav", "figure", "picture",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Start tags that end an open paragraph (the HTML standard's "close a p element").
_CLOSES_P = _HEADINGS | {
    "p", "div", "figure", "ul", "ol", "dl", "table", "section", "article", "aside", "header",
    "footer", "nav", "main", "blockquote", "pre", "form", "hr", "address", "details", "fieldset",
}  # fmt: skip
_TEMPLATE = re.compile(r"\{\{|\{%|\{#|<%|<\?|\$\{")
_SPACE = " \t\n\r\f"
# Framework bindings set alt at run time: ``:alt``, ``v-bind:alt``, ``[alt]``, ``[attr.alt]``.
_BOUND_ALT = re.compile(r"(?:^|[:.\[])alt\]?$")


_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")


def unescape_attribute(value: str) -> str:
    """An attribute value's character references decoded as the HTML standard does: like
    :func:`html.unescape`, except that a legacy named reference without ``;`` stays as written
    when ``=`` or an ASCII letter or digit follows it (``&copy=2``, ``&section``), "for
    historical reasons" -- so query strings in ``src`` and ``href`` survive."""
    if "&" not in value:
        return value
    return _CHARREF.sub(_attribute_reference, value)


def _attribute_reference(m: re.Match[str]) -> str:
    name = m.group(1)
    if name.startswith("#") or name in _HTML5:
        return html.unescape(m.group(0))
    for k in range(len(name) - 1, 1, -1):  # the longest legacy name, as html.unescape does
        if name[:k] in _HTML5:
            after = name[k]
            if after == "=" or (after.isascii() and after.isalnum()):
                return m.group(0)
            return _HTML5[name[:k]] + name[k:]
    return m.group(0)


@dataclass
class Attr:
    name: str  # lower case
    value: str  # entities decoded
    value_span: tuple[int, int] | None  # raw value inside its quotes; None: no value
    quote: str  # '"', "'" or "" (unquoted or no value)


@dataclass
class Tag:
    name: str  # lower case
    start: int
    end: int  # after ``>``
    closing: bool
    attrs: dict[str, Attr]
    name_end: int
    self_closing: bool  # ends with ``/>``
    raw: str

    def get(self, name: str) -> str | None:
        attr = self.attrs.get(name)
        return None if attr is None else attr.value


def _parse_tag(text: str, start: int, name_start: int, closing: bool) -> Tag | None:
    """The tag at ``start``; None when the file ends inside it (the standard drops it)."""
    n = len(text)
    i = name_start
    while i < n and text[i] not in _SPACE and text[i] not in "/>":
        i += 1
    name = text[name_start:i].lower()
    name_end = i
    attrs: dict[str, Attr] = {}
    while True:
        while i < n and (text[i] in _SPACE or (text[i] == "/" and text[i + 1 : i + 2] != ">")):
            i += 1
        if i >= n:
            return None
        if text[i] == ">" or text.startswith("/>", i):
            end = i + (2 if text[i] == "/" else 1)
            return Tag(name, start, end, closing, attrs, name_end, text[i] == "/", text[start:end])
        a = i
        i += 1  # the first character may be anything, even "="
        while i < n and text[i] not in _SPACE and text[i] not in "/>=":
            i += 1
        attr_name = text[a:i].lower()
        j = i
        while j < n and text[j] in _SPACE:
            j += 1
        if j < n and text[j] == "=":
            j += 1
            while j < n and text[j] in _SPACE:
                j += 1
            if j >= n:
                return None
            if text[j] in "\"'":
                q = text[j]
                close = text.find(q, j + 1)
                if close < 0:
                    return None
                span, quote, i = (j + 1, close), q, close + 1
            else:
                k = j
                while k < n and text[k] not in _SPACE and text[k] != ">":
                    k += 1
                span, quote, i = (j, k), "", k
            value = unescape_attribute(text[span[0] : span[1]])
            if attr_name not in attrs:
                attrs[attr_name] = Attr(attr_name, value, span, quote)
        elif attr_name not in attrs:
            attrs[attr_name] = Attr(attr_name, "", None, "")


def tokens(text: str) -> Iterator[Tag | tuple[int, int]]:
    """Tags and text runs (start, end) in document order, skipping what is not markup."""
    pos, n = 0, len(text)
    while pos < n:
        m = _TAG_START.search(text, pos)
        if m is None:
            yield (pos, n)
            return
        if m.start() > pos:
            yield (pos, m.start())
        opener = m.group(0)
        if opener == "<!--":
            if text.startswith((">", "->"), m.end()):  # <!--> and <!--->: empty comments
                pos = text.index(">", m.end()) + 1
                continue
            end = text.find("-->", m.end())
            pos = n if end < 0 else end + 3
            continue
        if opener == "<![CDATA[":
            end = text.find("]]>", m.end())
            pos = n if end < 0 else end + 3
            continue
        if opener in ("<!", "<?"):
            end = text.find(">", m.end())
            pos = n if end < 0 else end + 1
            continue
        tag = _parse_tag(text, m.start(), m.start(2), bool(m.group(1)))
        if tag is None:
            return
        yield tag
        pos = tag.end
        if tag.name in _RAW_TEXT and not tag.closing:
            close = re.compile(rf"</{re.escape(tag.name)}[\s/>]", re.IGNORECASE).search(text, pos)
            if close is None:
                return
            pos = close.start()


@dataclass
class _Box:
    """An open element whose text some image will want (link, block, heading, figure)."""

    name: str
    parts: list[str] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    caption: list[str] | None = None
    labelled: bool = False
    label: str = ""

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def _alt_span_of(tag: Tag) -> tuple[tuple[int, int] | None, str]:
    attr = tag.attrs.get("alt")
    if attr is None:
        return None, '"'
    if attr.value_span is None:  # bare ``alt``: an empty value, nothing to replace in place
        return (tag.name_end, tag.name_end), ""
    return attr.value_span, attr.quote


# Template code around a tag: ``{{ "<img src=\\"x.png\\">" | safe }}`` is a string of the template
# language, not markup to edit. Looked for in a window before the tag (bounded work per tag).
_TEMPLATE_CODE = (("{{", "}}"), ("{%", "%}"), ("{#", "#}"), ("<%", "%>"), ("<?", "?>"))
_TEMPLATE_LOOKBACK = 2000


def _in_template_code(text: str, at: int) -> bool:
    """Whether ``at`` lies inside template code opened (and not closed) shortly before it."""
    start = max(0, at - _TEMPLATE_LOOKBACK)
    for opening, closing in _TEMPLATE_CODE:
        i = text.rfind(opening, start, at)
        if i != -1 and text.find(closing, i + len(opening), at) == -1:
            return True
    return False


def _image(tag: Tag, text: str, starts: list[int]) -> Image:
    line, col = line_col(text, tag.start, starts)
    alt = tag.attrs.get("alt")
    span, alt_quote = _alt_span_of(tag)
    outside = re.sub(r"\"[^\"]*\"|'[^']*'", "", tag.raw)
    templated = (
        _in_template_code(text, tag.start)
        or bool(_TEMPLATE.search(outside))
        or bool(_TEMPLATE.search(tag.get("src") or ""))
        or any(n != "alt" and (_BOUND_ALT.search(n) or "{" in n) for n in tag.attrs)
    )
    quotes = [a.quote for a in tag.attrs.values() if a.quote]
    return Image(
        kind="html",
        start=tag.start,
        line=line,
        column=col,
        src=tag.get("src") or tag.get("data-src"),
        alt=None if alt is None else alt.value,
        alt_span=span if alt is not None and alt.value_span is not None else None,
        insert_at=tag.name_end,
        quote=quotes[0] if quotes else '"',
        alt_quote=alt_quote,
        templated=templated,
        title=tag.get("title") or "",
        srcset=tag.get("srcset"),
    )


@dataclass
class HtmlPage:
    """One scan of a document: its images, and what a crawler needs besides."""

    images: list[Image]
    lang: str | None  # ``<html lang>`` as written
    title: str  # ``<title>`` text, whitespace collapsed
    base: str | None  # the first ``<base href>`` as written
    links: list[str]  # ``<a href>`` and ``<area href>`` values in document order


def scan_html(text: str, *, line_text: str | None = None) -> tuple[list[Image], str | None]:
    """Every ``<img>`` of ``text`` with its context, and the document's ``<html lang>``.

    ``line_text`` is the unmasked text for line numbers when ``text`` has code masked out."""
    page = scan_html_page(text, line_text=line_text)
    return page.images, page.lang


def scan_html_page(text: str, *, line_text: str | None = None) -> HtmlPage:
    """:func:`scan_html` plus the title, ``<base href>`` and link targets of the document."""
    starts = line_starts(line_text if line_text is not None else text)
    images: list[Image] = []
    lang: str | None = None
    title: str | None = None
    title_from: int | None = None  # the title's text is raw, so tokens() never yields it
    base: str | None = None
    links: list[str] = []
    sources: list[str] = []  # of the open <picture>
    stack: list[_Box] = []
    heading = ""
    heading_box: _Box | None = None
    last_text = ""
    waiting: list[Image] = []  # images that want the next text run
    for tok in tokens(text):
        if isinstance(tok, tuple):
            chunk = html.unescape(text[tok[0] : tok[1]])
            if chunk.strip():
                last_text = " ".join(chunk.split())
                for image in waiting:
                    image.nearby.append(last_text)
                waiting = []
            for box in stack:
                box.parts.append(chunk)
                if box.caption is not None and box.name == "figcaption":
                    box.caption.append(chunk)
            continue
        name = tok.name
        if title_from is not None:
            if tok.closing and name == "title":
                title = " ".join(html.unescape(text[title_from : tok.start]).split())
            title_from = None
        if not tok.closing:
            if name == "html" and tok.get("lang"):
                lang = tok.get("lang")
            if name == "title" and title is None:
                title_from = tok.end
            elif name == "base" and base is None and tok.get("href") is not None:
                base = tok.get("href")
            elif name in ("a", "area") and tok.get("href") is not None:
                links.append(tok.get("href") or "")
            elif name == "picture":
                sources = []
            elif name == "source" and tok.get("srcset") and _in(stack, "picture"):
                sources.append(tok.get("srcset") or "")
            if name == "img":
                image = _image(tok, text, starts)
                if _in(stack, "picture"):
                    image.sources = list(sources)
                images.append(image)
                for box in stack:
                    box.images.append(image)
                image.heading = heading
                if last_text:
                    image.nearby.append(last_text)
                waiting.append(image)
                continue
            if name in _VOID:
                continue
            if name in _CLOSES_P:
                _close(stack, "p")
            box = _Box("a-no-href" if name == "a" and tok.get("href") is None else name)
            if box.name in ("a", "button"):
                box.labelled = bool(
                    (tok.get("aria-label") or "").strip()
                    or (tok.get("aria-labelledby") or "").strip()
                    or (tok.get("title") or "").strip()
                )
                box.caption = [tok.get("href") or ""] if name == "a" else ["button"]
                box.label = " ".join((tok.get("aria-label") or tok.get("title") or "").split())
            if name in _HEADINGS:
                heading_box = box
            if name == "figure":
                box.caption = []
            if name == "figcaption":
                fig = next((b for b in reversed(stack) if b.name == "figure"), None)
                box.caption = fig.caption if fig is not None else None
            stack.append(box)
        else:
            if name == "a" and not any(b.name == "a" for b in stack):
                name = "a-no-href"
            for box in _close(stack, name):
                if box is heading_box:
                    heading = box.text
    _close(stack, None)
    return HtmlPage(images, lang, title or "", base, links)


def _in(stack: list[_Box], name: str) -> bool:
    return any(b.name == name for b in stack)


def _close(stack: list[_Box], name: str | None) -> list[_Box]:
    """Pop up to and including the last open ``name`` (all when None); finish their images."""
    if name is not None and not any(b.name == name for b in stack):
        return []
    done: list[_Box] = []
    while stack:
        box = stack.pop()
        done.append(box)
        _finish(box)
        if box.name == name:
            break
    return done


def _finish(box: _Box) -> None:
    text = box.text
    if box.name in ("a", "button"):
        target = box.caption[0] if box.caption else ""
        others_with_alt = [i for i in box.images if i.alt]
        for image in box.images:
            if image.link_target is None:
                image.link_target = target
                image.link_text = text
                image.link_label = box.label
                image.link_labelled = box.labelled or any(o is not image for o in others_with_alt)
    elif box.name == "figure":
        caption = " ".join(" ".join(box.caption or []).split())
        for image in box.images:
            image.caption = image.caption or caption
    elif box.name in _BLOCKS and box.name != "figure":
        for image in box.images:
            if not image.paragraph and text:
                image.paragraph = text
