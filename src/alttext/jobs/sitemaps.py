"""Sitemaps (sitemaps.org): a ``<urlset>`` lists pages, a ``<sitemapindex>`` lists sitemaps.

The XML comes from a stranger, so it is read with a bare expat parser that refuses any
DOCTYPE (no entities, internal or external, can be declared) and builds no tree; a gzip
sitemap is unpacked only up to the same byte cap as any fetched body.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Literal
from xml.parsers import expat

_XML_TYPES = frozenset({"application/xml", "text/xml"})
_GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip"})
_GZIP_MAGIC = b"\x1f\x8b"
_ROOTS = {"urlset": "url", "sitemapindex": "sitemap"}  # root -> its entries' element
_MAX_LOCS = 50_000  # the protocol's limit per file
_SNIFF = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:urlset|sitemapindex)\b")

SitemapKind = Literal["urlset", "sitemapindex"]


class NotASitemap(Exception):
    """The body is not a sitemap; the message says why, for people."""


@dataclass(frozen=True)
class Sitemap:
    kind: SitemapKind
    locs: list[str]  # the entries' <loc> texts, stripped, in document order


def might_be_sitemap(content_type: str, body: bytes) -> bool:
    """Worth parsing as a sitemap: an XML or gzip type, gzip bytes, or a sitemap root near the
    start (servers label sitemaps text/plain or text/html often enough)."""
    if content_type in _XML_TYPES or content_type in _GZIP_TYPES:
        return True
    if content_type.endswith("+xml") and content_type != "application/xhtml+xml":
        return True
    return body.startswith(_GZIP_MAGIC) or bool(_SNIFF.search(body[:4096]))


def parse_sitemap(body: bytes, max_bytes: int) -> Sitemap:
    """The sitemap in ``body`` (gzip or not); raises NotASitemap."""
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body, max_bytes)
    return _parse_xml(body)


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = unpacker.decompress(body, max_bytes + 1)
    except zlib.error:
        raise NotASitemap("it is not valid gzip") from None
    if len(data) > max_bytes or unpacker.unconsumed_tail:
        raise NotASitemap(f"it is larger than the {max_bytes} byte limit once unpacked")
    return data


class _Reader:
    def __init__(self) -> None:
        self.kind: SitemapKind | None = None
        self.path: list[str] = []
        self.locs: list[str] = []
        self.text: list[str] | None = None  # while inside an entry's <loc>

    def start(self, name: str, _attrs: dict[str, str]) -> None:
        local = name.rsplit("}", 1)[-1]
        if not self.path:
            if local not in _ROOTS:
                raise NotASitemap(
                    f"its root element is <{local[:40]}>, not <urlset> or <sitemapindex>"
                )
            self.kind = "urlset" if local == "urlset" else "sitemapindex"
        elif len(self.path) == 2 and local == "loc" and self.path[1] == _ROOTS[self.path[0]]:
            self.text = []
        self.path.append(local)

    def end(self, _name: str) -> None:
        if self.text is not None and len(self.path) == 3:
            if len(self.locs) < _MAX_LOCS:
                self.locs.append("".join(self.text).strip())
            self.text = None
        self.path.pop()

    def chars(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)


def _refuse_doctype(*_args: object) -> None:
    raise NotASitemap("it declares a DOCTYPE, which a sitemap never needs")


def _parse_xml(body: bytes) -> Sitemap:
    reader = _Reader()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.chars
    parser.StartDoctypeDeclHandler = _refuse_doctype
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise NotASitemap(
            f"it is not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno})"
        ) from None
    if reader.kind is None:
        raise NotASitemap("it has no root element")
    return Sitemap(reader.kind, [loc for loc in reader.locs if loc])
