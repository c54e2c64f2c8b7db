"""Reading documents byte-exactly and finding their images.

Files are decoded as UTF-8 with ``surrogateescape``: every original byte sequence maps to
characters and back unchanged (a BOM stays a ``\\ufeff`` character, CRLF stays CRLF, stray
non-UTF-8 bytes survive), so offsets into the text are safe places to edit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from alttext.sitetools.html_scan import scan_html
from alttext.sitetools.markdown_scan import scan_markdown
from alttext.sitetools.model import Document, Kind

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
# Templates that are mostly HTML: scanned as HTML; tags with template syntax are left alone.
TEMPLATE_SUFFIXES = (
    ".jinja", ".jinja2", ".j2", ".njk", ".hbs", ".handlebars", ".mustache", ".liquid",
    ".twig", ".erb", ".ejs", ".tmpl", ".tpl", ".php",
)  # fmt: skip
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox"}


def kind_of(name: str) -> Kind | None:
    lower = name.lower()
    if lower.endswith(MARKDOWN_SUFFIXES):
        return "markdown"
    if lower.endswith(HTML_SUFFIXES + TEMPLATE_SUFFIXES):
        return "html"
    return None


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def parse(path: str, text: str, kind: Kind) -> Document:
    if kind == "markdown":
        images, lang = scan_markdown(text)
    else:
        images, lang = scan_html(text)
    return Document(path=path, kind=kind, text=text, lang=_primary(lang), images=images)


def _primary(lang: str | None) -> str | None:
    if not lang:
        return None
    m = re.match(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*", lang.strip().replace("_", "-"))
    return m.group(0) if m else None


def load(path: Path, kind: Kind | None = None) -> Document:
    kind = kind or kind_of(path.name) or "html"
    return parse(str(path), decode(path.read_bytes()), kind)


def collect(items: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Files to process (folders searched for HTML and Markdown) and http(s) URLs."""
    files: list[Path] = []
    urls: list[str] = []
    for item in items:
        if item.startswith(("http://", "https://")):
            urls.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                parts = set(p.relative_to(path).parts[:-1])
                if p.is_file() and kind_of(p.name) and not parts & _SKIP_DIRS:
                    files.append(p)
        else:
            files.append(path)
    return list(dict.fromkeys(files)), urls
