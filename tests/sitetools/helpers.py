"""Shared by the sitetools tests: a copy of the corpus with its images, a fake generator, and
the byte-preservation check (written without the code under test)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

from PIL import Image as PILImage

from alttext.sitetools.documents import decode, load
from alttext.sitetools.generate import AltRequest, Generated, GenerationFailed

CORPUS = Path(__file__).parent / "corpus"
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
