"""Shared by the sitetools tests: a copy of the corpus with its images, a fake generator, the
byte-preservation check (written without the code under test) and html.parser event streams."""

from __future__ import annotations

import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image as PILImage

from alttext.sitetools.documents import decode, kind_of, load
from alttext.sitetools.generate import AltRequest, Generated, GenerationFailed

CORPUS = Path(__file__).parent / "corpus"
REAL = CORPUS / "real"  # real-world pages, copied byte for byte (real/SOURCES.md)
_SRC = re.compile(r"""(?:src\s*=\s*["']?|\]\(|\]:\s*<?)(img/[^"'\s)>]+)""", re.IGNORECASE)


def png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 48), color).save(buf, "PNG")
    return buf.getvalue()


def corpus_copy(tmp: Path) -> Path:
    """The corpus with a real PNG for every local image it names, except missing-file.png."""
    root = tmp / "site"
    shutil.copytree(CORPUS, root, ignore=shutil.ignore_patterns("SOURCES.md", "ruff.toml", ".*"))
    for doc in root.iterdir():
        if not doc.is_file():
            continue
        for m in _SRC.finditer(decode(doc.read_bytes())):
            name = m.group(1).replace("&amp;", "&")
            if "missing-file" in name:
                continue
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(png())
    (root / "img" / "short cut.png").write_bytes(png())
    return root


def corpus_documents(root: Path = CORPUS) -> list[str]:
    """Every HTML and Markdown document under ``root`` (the corpus, or a copy of it), as POSIX
    paths relative to it: hand-written files, package READMEs and ``real/``."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if kind_of(p.name) and p.name != "SOURCES.md" and not p.name.startswith("LICENSE"):
            out.append(rel.as_posix())
    return sorted(out)


def add_images(site: Path, webroot: Path) -> None:
    """A PNG for every local image a document of ``site`` names that does not exist yet:
    relative paths next to the document, site-absolute ones under ``webroot`` (``--root``).
    The scanner finds the names; a name it got wrong only makes an image "skipped"."""
    for name in corpus_documents(site):
        doc = load(site / name)
        for image in doc.images:
            src = (image.src or "").strip()
            parts = urlsplit(src)
            if not src or parts.scheme or src.startswith("//") or image.templated:
                continue
            rel = unquote(parts.path)
            if not rel:
                continue
            base = webroot if rel.startswith("/") else (site / name).parent
            target = (base / rel.lstrip("/")).resolve()
            if not target.is_relative_to(site.parent.resolve()) or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png())


class FakeGenerator:
    """Deterministic alt text with characters that need escaping; records the requests."""

    def __init__(self) -> None:
        self.requests: list[AltRequest] = []

    async def fetch(self, url: str) -> bytes:
        raise GenerationFailed(f"no network in tests: {url}")

    async def describe(self, image: bytes, request: AltRequest) -> Generated:
        self.requests.append(request)
        n = len(self.requests)
        if request.role == "functional":
            return Generated(f"Go to {request.link_target} & more {n}", False, 1)
        return Generated(f'Red "tile" <{n}> & [box] it\'s *bold*.', False, 1)


def alt_regions(path: Path, text: str) -> list[tuple[int, int]]:
    """Spans of ``text`` that may differ: whole HTML alt attributes (from the whitespace before
    ``alt`` to the closing quote) and the contents of Markdown alt brackets."""
    doc = load(path)
    assert doc.text == text
    lower = text.lower()
    out = []
    for image in doc.images:
        if image.alt_span is None:
            continue
        a, b = image.alt_span
        if image.kind == "html":
            a = lower.rfind("alt", 0, a) - 1
            b += 1 if image.alt_quote else 0
        out.append((a, b))
    return out


def without(text: str, regions: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for a, b in sorted(regions):
        out.append(text[pos:a])
        pos = b
    return "".join(out) + text[pos:]


def assert_only_alt_changed(before: str, after_path: Path) -> None:
    """Everything outside alt values is byte-identical: both texts, with every alt region cut
    out, encode to the same bytes (regions come from scanning each text on its own)."""
    after = decode(after_path.read_bytes())
    tmp = after_path.with_name("." + after_path.name + ".before" + after_path.suffix)
    tmp.write_bytes(before.encode("utf-8", "surrogateescape"))
    try:
        before_regions = alt_regions(tmp, before)
    finally:
        tmp.unlink()
    kept_before = without(before, before_regions).encode("utf-8", "surrogateescape")
    kept_after = without(after, alt_regions(after_path, after)).encode("utf-8", "surrogateescape")
    assert kept_after == kept_before


class Events(HTMLParser):
    """html.parser's view of a page: tags with their attributes (minus ``alt`` on ``<img>``),
    text and comments, so two pages that differ only in img alt give the same events."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[object, ...]] = []
        self.alts: list[str | None] = []  # the first alt of every <img>, as html.parser reads it
        self.srcs: list[str | None] = []  # and its first src

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kept = [(k, v) for k, v in attrs if not (tag == "img" and k == "alt")]
        if tag == "img":
            self.alts.append(next((v or "" for k, v in attrs if k == "alt"), None))
            self.srcs.append(next((v or "" for k, v in attrs if k == "src"), None))
        self.events.append(("start", tag, kept))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self.events.append(("data", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))


def parsed(text: str) -> Events:
    parser = Events()
    parser.feed(text)
    parser.close()
    return parser


def events(text: str) -> list[tuple[object, ...]]:
    return parsed(text).events
