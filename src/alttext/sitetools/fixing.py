"""``alttext fix``: for each image without alt, gather its context, generate, and edit in place.

Nothing here raises for one image: a missing file, a remote image without ``--fetch-remote``, a
fetch or generation failure each make the image "skipped" with a reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from alttext.describe.languages import normalise_tag
from alttext.sitetools.documents import encode, load
from alttext.sitetools.edits import Edit, apply, edit_for, unified_diff
from alttext.sitetools.findings import needs_alt, suspicious
from alttext.sitetools.generate import AltRequest, GenerationFailed, Generator
from alttext.sitetools.model import Document, Image


@dataclass(frozen=True)
class FixOptions:
    write: bool = False
    overwrite: bool = False
    fetch_remote: bool = False
    base_url: str | None = None
    root: Path | None = None
    language: str = "en"
    max_length: int = 125


@dataclass(frozen=True)
class Skipped:
    file: str
    line: int
    column: int
    src: str | None
    reason: str


@dataclass
class FileResult:
    path: str
    before: str
    after: str
    edits: list[Edit]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return unified_diff(self.path, self.before, self.after)


@dataclass
class Summary:
    files: int = 0
    images: int = 0
    fixed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    credits: int = 0
    errors: list[str] = field(default_factory=list)  # files that could not be read or written

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "images": self.images,
            "fixed": self.fixed,
            "skipped": len(self.skipped),
            "credits": self.credits,
        }


def targets(document: Document, overwrite: bool) -> list[Image]:
    """Images fix changes: missing alt, and (``overwrite``) alts the audit finds suspicious."""
    out = []
    for image in document.images:
        if image.templated:
            continue
        if needs_alt(image) or (overwrite and suspicious(image, document.lang)):
            out.append(image)
    return out


class _Skip(Exception):
    pass


async def _image_bytes(
    image: Image, document: Document, generator: Generator, options: FixOptions
) -> bytes:
    src = (image.src or "").strip()
    if not src:
        raise _Skip("the image has no src")
    if src.startswith("data:"):
        head, _, payload = src.partition(",")
        try:
            return (
                base64.b64decode(payload) if head.endswith(";base64") else unquote(payload).encode()
            )
        except (binascii.Error, ValueError) as exc:
            raise _Skip("an unreadable data: URL") from exc
    if src.startswith("//"):
        src = "https:" + src
    parts = urlsplit(src)
    if not parts.scheme and src.startswith("/") and options.root is None and options.base_url:
        src, parts = urljoin(options.base_url, src), urlsplit(urljoin(options.base_url, src))
    if parts.scheme in ("http", "https"):
        if not options.fetch_remote:
            raise _Skip("a remote image: add --fetch-remote to fetch it")
        try:
            return await generator.fetch(src)
        except GenerationFailed as exc:
            raise _Skip(str(exc)) from exc
    if parts.scheme and parts.scheme != "file":
        raise _Skip(f"an unsupported image address ({parts.scheme}:)")
    rel = unquote(parts.path)
    if rel.startswith("/"):
        if options.root is None:
            raise _Skip("a site-absolute path: give --root or --base-url")
        path = options.root / rel.lstrip("/")
    else:
        path = Path(document.path).parent / rel
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise _Skip(f"image not found or unreadable: {path}") from exc


def _language(document: Document, options: FixOptions) -> str:
    return normalise_tag(document.lang or "") or normalise_tag(options.language) or "en"


async def fix_document(
    document: Document,
    generator: Generator,
    options: FixOptions,
    summary: Summary,
    on_image: Callable[[], None] = lambda: None,
) -> FileResult:
    summary.files += 1
    summary.images += len(document.images)
    edits: list[Edit] = []
    for image in targets(document, options.overwrite):

        def skip(reason: str, image: Image = image) -> None:
            summary.skipped.append(
                Skipped(document.path, image.line, image.column, image.src, reason)
            )

        try:
            data = await _image_bytes(image, document, generator, options)
            request = AltRequest(
                context=image.context() or None,
                role=image.role,
                link_target=image.link_target or None,
                language=_language(document, options),
                max_length=options.max_length,
            )
            result = await generator.describe(data, request)
        except _Skip as exc:
            skip(str(exc))
        except GenerationFailed as exc:
            skip(f"generation failed: {exc}")
        else:
            summary.credits += result.credits
            edit = _edit(image, result.alt_text, document, skip)
            if edit is not None:
                edits.append(edit)
                summary.fixed += 1
        on_image()
    return FileResult(document.path, document.text, apply(document.text, edits), edits)


def _edit(image: Image, alt: str, document: Document, skip: Callable[[str], None]) -> Edit | None:
    alt = " ".join(alt.split())
    if not alt and (image.kind == "markdown" or image.alt is not None):
        skip("judged decorative: left as it is")
        return None
    candidate = Image(**{**image.__dict__, "alt": alt})
    if alt and suspicious(candidate, document.lang):
        skip("the generated text failed the audit; left for a person")
        return None
    return edit_for(image, alt)


def load_all(paths: list[Path], summary: Summary) -> list[Document]:
    documents = []
    for path in paths:
        try:
            documents.append(load(path))
        except OSError as exc:
            summary.errors.append(f"{path}: {exc.strerror or exc}")
    return documents


def write(result: FileResult) -> None:
    Path(result.path).write_bytes(encode(result.after))
