"""Markdown images with exact offsets: inline ``![alt](src "title")``, reference-style
``![alt][ref]`` / ``![alt][]`` / ``![alt]`` (only when ``[ref]:`` is defined), images that are
the only content of a link ``[![alt](src)](href)``, and HTML ``<img>`` inside Markdown.

Fenced and indented code blocks, code spans, HTML comments and front matter are masked out
first (replaced by spaces of the same length), so nothing in them is ever found or edited. In an
HTML block (CommonMark's seven kinds, such as a ``<div>`` line up to the next blank line) only
``<img>`` tags are images: Markdown there is text.
"""

from __future__ import annotations

import re

from alttext.sitetools.html_scan import scan_html, unescape_attribute
from alttext.sitetools.model import Image, line_col, line_starts

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[^\n]*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*\r?$", re.M | re.S)
_FM_LANG = re.compile(r"^(?:lang|language|locale)\s*:\s*[\"']?([A-Za-z]{2,3}(?:[-_]\w+)*)", re.M)
_REF_DEF = re.compile(r"^ {0,3}\[((?:[^\]\\]|\\.)+)\]:[ \t]*(<[^>\n]*>|\S+)", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$|^(.+)\r?\n {0,3}(?:=+|-+)[ \t]*$", re.M)
_ANGLE_DESTINATION = re.compile(r"\]\([ \t]*(?:\r?\n[ \t]*)?(<[^<>\n]*>)")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]")
_BLOCK_TAGS = (
    "address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|"
    "dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h[1-6]|head|"
    "header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|"
    "param|search|section|summary|table|tbody|td|tfoot|th|thead|title|tr|track|ul"
)
# CommonMark's HTML block starts, kinds 1-6, with the end of each (None: the next blank line).
_HTML_BLOCKS: list[tuple[re.Pattern[str], re.Pattern[str] | None]] = [
    (
        re.compile(r" {0,3}<(?:pre|script|style|textarea)(?:[ \t>]|$)", re.I),
        re.compile(r"</(?:pre|script|style|textarea)>", re.I),
    ),
    (re.compile(r" {0,3}<!--"), re.compile(r"-->")),
    (re.compile(r" {0,3}<\?"), re.compile(r"\?>")),
    (re.compile(r" {0,3}<![A-Za-z]"), re.compile(r">")),
    (re.compile(r" {0,3}<!\[CDATA\["), re.compile(r"\]\]>")),
    (re.compile(rf" {{0,3}}</?(?:{_BLOCK_TAGS})(?:[ \t]|/?>|$)", re.I), None),
]
# Kind 7: a line that is only a complete open or closing tag; it cannot interrupt a paragraph.
_ATTRIBUTE = r"""[ \t]+[A-Za-z_:][\w.:-]*(?:[ \t]*=[ \t]*(?:[^\s"'=<>`]+|'[^']*'|"[^"]*"))?"""
_HTML_BLOCK_7 = re.compile(
    rf" {{0,3}}(?:<[A-Za-z][A-Za-z0-9-]*(?:{_ATTRIBUTE})*[ \t]*/?>|</[A-Za-z][A-Za-z0-9-]*[ \t]*>)"
    r"[ \t]*$"
)


def _blank(text: str, start: int, end: int) -> str:
    return re.sub(r"[^\r\n]", " ", text[start:end])


def mask(text: str) -> tuple[str, str | None]:
    """The text with code, comments and front matter blanked; and the front matter's language."""
    out, lang = _mask_blocks(text)
    return _mask_inline(out), lang


def _mask_blocks(text: str) -> tuple[str, str | None]:
    """Front matter and fenced and indented code blanked; the front matter's language."""
    out = text
    lang: str | None = None

    def put(start: int, end: int) -> None:
        nonlocal out
        out = out[:start] + _blank(out, start, end) + out[end:]

    if out.startswith("\ufeff"):
        put(0, 1)
    fm = _FRONT_MATTER.match(text)
    if fm:
        found = _FM_LANG.search(fm.group(1))
        lang = found.group(1).replace("_", "-") if found else None
        put(0, fm.end())
    pos = 0
    while True:  # fenced code: to the closing fence of the same kind, or the end
        m = _FENCE.search(out, pos)
        if m is None:
            break
        fence = m.group(2)
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*\r?$", re.M)
        c = close.search(out, m.end())
        end = len(out) if c is None else c.end()
        put(m.start(), end)
        pos = end
    return _mask_indented(out), lang


def _mask_inline(text: str) -> str:
    """HTML comments and code spans blanked."""
    out = text
    for pattern in (r"<!---?>|<!--.*?(?:-->|\Z)", r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)"):
        for m in re.finditer(pattern, out, re.S):
            out = out[: m.start()] + _blank(out, m.start(), m.end()) + out[m.end() :]
    return out


def _html_blocks(text: str) -> list[tuple[int, int]]:
    """Spans of the HTML blocks of ``text`` (code already blanked), at the top level."""
    spans: list[tuple[int, int]] = []
    start = -1
    end: re.Pattern[str] | None = None
    in_paragraph = False
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        blank = not body.strip()
        if start < 0:
            for begin, block_end in _HTML_BLOCKS:
                if begin.match(body):
                    start, end = pos, block_end
                    break
            else:
                if not in_paragraph and _HTML_BLOCK_7.match(body):
                    start, end = pos, None
        if start >= 0 and (end.search(body) if end is not None else blank):
            spans.append((start, pos + len(line)))
            start = -1
            blank = True  # what follows an HTML block is no paragraph continuation
        in_paragraph = not blank and start < 0
        pos += len(line)
    if start >= 0:
        spans.append((start, len(text)))
    return spans


def _inside(spans: list[tuple[int, int]], offset: int) -> bool:
    return any(a <= offset < b for a, b in spans)


def _mask_indented(text: str) -> str:
    lines = text.splitlines(keepends=True)
    in_code = False
    in_list = False
    prev_blank = True
    for n, line in enumerate(lines):
        body = line.rstrip("\r\n")
        blank = not body.strip()
        indented = body.startswith(("    ", "\t"))
        if not blank and not indented:
            in_list = bool(_LIST_ITEM.match(body)) or (in_list and not prev_blank)
        if indented and not blank and (in_code or (prev_blank and not in_list)):
            in_code = True
            lines[n] = " " * len(body) + line[len(body) :]
        elif not blank:
            in_code = False
        prev_blank = blank
    return "".join(lines)


def _bracket_end(text: str, i: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``i`` (nesting and backslash escapes); -1."""
    depth = 0
    j = i
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "\n" and text[j + 1 : j + 2] in ("\n", "\r"):
            return -1  # a blank line ends the paragraph
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _destination(text: str, i: int) -> tuple[str, str, int] | None:
    """``(src, title, end)`` of the ``(…)`` at ``i``."""
    m = re.compile(
        r"\(\s*(<[^<>\n]*>|(?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*)"
        r"(?:\s+(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\((?:[^()\\]|\\.)*\)))?\s*\)"
    ).match(text, i)
    if m is None:
        return None
    src = m.group(1)
    src = src[1:-1] if src.startswith("<") else src
    title = (m.group(2) or "")[1:-1]
    return _unescape(src), _unescape(title), m.end()


def _unescape(s: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", s)


def _norm_label(label: str) -> str:
    return " ".join(label.split()).casefold()


def _blocks(masked: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S(?:.|\n(?![ \t]*\r?\n))*", masked)]


def _headings(masked: str) -> list[tuple[int, str]]:
    out = []
    for m in _HEADING.finditer(masked):
        title = m.group(2) if m.group(1) else m.group(3)
        if title and title.strip() and not _LIST_ITEM.match(title):
            out.append((m.start(), title.strip()))
    return out


def _plain(s: str) -> str:
    # Images go (their alt is not text next to them), then links keep their text.
    s = re.sub(r"!\[(?:[^\[\]\\]|\\.)*\](?:\([^)]*\)|\[[^\]]*\])?", " ", s)
    s = re.sub(r"\[([^\[\]]*)\](?:\([^)]*\)|\[[^\]]*\])?", r"\1", s)
    s = re.sub(r"<[^>]*>|[*_`#>]+", " ", s)
    return " ".join(s.split())


def scan_markdown(text: str) -> tuple[list[Image], str | None]:
    without_code, lang = _mask_blocks(text)
    raw_html = _html_blocks(without_code)
    masked = _mask_inline(without_code)
    refs: dict[str, tuple[str, str]] = {}
    for m in _REF_DEF.finditer(masked):
        if not _inside(raw_html, m.start()):
            refs.setdefault(_norm_label(m.group(1)), (m.group(2).strip("<>"), ""))
    starts = line_starts(text)
    images: list[Image] = []
    for m in re.finditer(r"!\[", masked):
        if (m.start() > 0 and masked[m.start() - 1] == "\\") or _inside(raw_html, m.start()):
            continue
        image = _inline_image(text, masked, m.start(), refs, starts)
        if image is not None:
            images.append(image)
    for m in _REF_DEF.finditer(masked):  # a definition's <destination> is no HTML tag
        masked = masked[: m.start()] + _blank(masked, m.start(), m.end()) + masked[m.end() :]
    for m in _ANGLE_DESTINATION.finditer(masked):  # nor is a link's or image's ](<img/a b.png>)
        a, b = m.span(1)
        masked = masked[:a] + _blank(masked, a, b) + masked[b:]
    html_images, html_lang = scan_html(masked, line_text=text)
    for image in html_images:
        if image.alt_span is not None:  # values come from the original text
            image.alt = _html_alt(text, image)
    images.extend(html_images)
    images.sort(key=lambda im: im.start)
    _add_context(masked, images)
    return images, lang or html_lang


def _html_alt(text: str, image: Image) -> str:
    assert image.alt_span is not None
    return unescape_attribute(text[image.alt_span[0] : image.alt_span[1]])


def _inline_image(
    text: str, masked: str, start: int, refs: dict[str, tuple[str, str]], starts: list[int]
) -> Image | None:
    close = _bracket_end(masked, start + 1)
    if close < 0:
        return None
    alt_raw = text[start + 2 : close]
    dest = _destination(masked, close + 1)
    if dest is not None:
        src, title, end = dest
    else:
        ref = re.compile(r"\[((?:[^\]\\]|\\.)*)\]").match(masked, close + 1)
        label = ref.group(1) if ref and ref.group(1) else alt_raw
        target = refs.get(_norm_label(label))
        if target is None:
            return None
        src, title, end = target[0], target[1], ref.end() if ref else close + 1
    line, col = line_col(text, start, starts)
    alt = _unescape(alt_raw).strip()
    image = Image(
        kind="markdown",
        start=start,
        line=line,
        column=col,
        src=src,
        alt=alt if alt else None,
        alt_span=(start + 2, close),
        title=title,
    )
    # ``[![alt](src)](href)``: the image is the whole link text.
    if start > 0 and masked[start - 1] == "[" and masked.startswith("](", end):
        link = _destination(masked, end + 1)
        if link is not None:
            image.link_target = link[0]
    elif start > 0 and masked[start - 1] == "[" and masked.startswith("][", end):
        ref = re.compile(r"\]\[((?:[^\]\\]|\\.)*)\]").match(masked, end)
        if ref and _norm_label(ref.group(1)) in refs:
            image.link_target = refs[_norm_label(ref.group(1))][0]
    return image


def _add_context(masked: str, images: list[Image]) -> None:
    headings = _headings(masked)
    blocks = _blocks(masked)
    for image in images:
        before = [h for pos, h in headings if pos <= image.start]
        if before and not image.heading:
            image.heading = _plain(before[-1])
        if not image.paragraph:
            for a, b in blocks:
                if a <= image.start < b:
                    image.paragraph = _plain(masked[a:b])
                    break
