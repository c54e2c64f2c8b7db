"""The MCP tools: describe an image, audit and fix alt text, inside one folder only.

An assistant names files; every name is resolved (symbolic links followed) and refused unless it
lies under the root, and so is every local image a document refers to. Alt text comes from the
sitetools generator: a running service (``--api-url``) or the local engine, opened on first use.
Audit and fix are sitetools' own functions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from mcp.server.mcpserver.exceptions import ToolError

from alttext.describe.types import ROLES
from alttext.sitetools.documents import collect
from alttext.sitetools.fixing import (
    FixOptions,
    Skipped,
    Summary,
    fix_document,
    load_all,
    targets,
)
from alttext.sitetools.fixing import write as write_file
from alttext.sitetools.generate import (
    AltRequest,
    GenerationFailed,
    Generator,
    open_generator,
)
from alttext.sitetools.report import audit_files

if TYPE_CHECKING:
    from alttext.config import Settings
    from alttext.sitetools.model import Document

MAX_BASE64_CHARS = 28_000_000  # about 20 MB of image


@dataclass
class Workspace:
    """One server's root folder and its generator (opened on first use, closed with it)."""

    root: Path
    settings: Settings
    api_url: str | None = None
    api_key: str | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _generator: Generator | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def __aenter__(self) -> Workspace:
        self.root = self.root.resolve()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def inside(self, name: str) -> Path:
        """``name`` (relative to the root, or absolute) resolved; a ToolError if outside."""
        path = Path(name).expanduser()
        resolved = (path if path.is_absolute() else self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ToolError(
                f"{name} is outside the folder this server may use ({self.root}); "
                "name a file under it (the server is started with --root to choose another)."
            )
        return resolved

    def is_inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    async def generator(self) -> Generator:
        async with self._lock:
            if self._generator is None:
                try:
                    self._generator = await self._stack.enter_async_context(
                        open_generator(self.settings, self.api_url, self.api_key)
                    )
                except GenerationFailed as exc:
                    raise ToolError(str(exc)) from exc
            return self._generator

    def files(self, paths: list[str]) -> list[Path]:
        """Documents named by ``paths`` (folders searched), all under the root."""
        if not paths:
            raise ToolError("Name at least one file or folder.")
        named = [str(self.inside(p)) for p in paths]
        for name in named:
            if not Path(name).exists():
                raise ToolError(f"{name} does not exist.")
        files, _ = collect(named)
        return [f for f in files if self.is_inside(f)]  # a link out of the root is left out


async def describe_image(
    ws: Workspace,
    *,
    path: str | None = None,
    url: str | None = None,
    image_base64: str | None = None,
    context: str | None = None,
    role: str = "auto",
    language: str = "en",
    max_length: int = 125,
) -> dict[str, Any]:
    sources = [s for s in (path, url, image_base64) if s]
    if len(sources) != 1:
        raise ToolError("Give exactly one of path, url and image_base64.")
    if role not in ROLES:
        raise ToolError(f"role must be one of {', '.join(ROLES)}.")
    if not 20 <= max_length <= 1000:
        raise ToolError("max_length must be between 20 and 1000.")
    if context and len(context) > 2000:
        raise ToolError("context is limited to 2000 characters.")
    generator = await ws.generator()
    if path:
        target = ws.inside(path)
        try:
            data = await asyncio.to_thread(target.read_bytes)
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror or exc}") from exc
    elif url:
        if not url.startswith(("http://", "https://")):
            raise ToolError("url must be an http(s) URL.")
        try:
            data = await generator.fetch(url)
        except GenerationFailed as exc:
            raise ToolError(f"{url}: {exc}") from exc
    else:
        data = _decode(image_base64 or "")
    request = AltRequest(
        context=context or None,
        role=role,
        link_target=None,
        language=language.strip() or "en",
        max_length=max_length,
    )
    try:
        result = await generator.describe(data, request)
    except GenerationFailed as exc:
        raise ToolError(f"The image could not be described: {exc}") from exc
    alt = result.alt_text
    return {
        "alt_text": alt,
        "decorative": alt == "",
        "html_alt": 'alt=""' if not alt else f'alt="{_attr(alt)}"',
        "needs_review": result.needs_review,
        "review_reasons": list(result.review_reasons),
        "role": result.role,
        "language": request.language,
        "credits": result.credits,
    }


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _decode(value: str) -> bytes:
    value = value.strip()
    if len(value) > MAX_BASE64_CHARS:
        raise ToolError("image_base64 is too large (about 20 MB at most).")
    if value.startswith("data:"):
        head, _, value = value.partition(",")
        if not head.endswith(";base64"):
            raise ToolError("a data: URI must be base64 encoded.")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolError("image_base64 is not valid base64.") from exc


async def audit(ws: Workspace, paths: list[str], max_length: int = 150) -> dict[str, Any]:
    if not 20 <= max_length <= 1000:
        raise ToolError("max_length must be between 20 and 1000.")
    report = audit_files(ws.files(paths), max_length=max_length)
    out = report.as_dict()
    errors = sum(1 for f in report.findings if f.severity == "error")
    out["errors"] = errors
    out["warnings"] = len(report.findings) - errors
    out["problems"] = report.errors
    return out


def _local_image(document: Document, src: str | None, root: Path) -> Path | None:
    """The file fix would read for ``src`` (as sitetools.fixing does), or None if not a file."""
    src = (src or "").strip()
    if not src or src.startswith(("data:", "//")):
        return None
    parts = urlsplit(src)
    if parts.scheme not in ("", "file"):
        return None
    rel = unquote(parts.path)
    if rel.startswith("/"):
        return root / rel.lstrip("/")
    return Path(document.path).parent / rel


async def fix(
    ws: Workspace,
    paths: list[str],
    *,
    write: bool = False,
    overwrite: bool = False,
    fetch_remote: bool = False,
    language: str = "en",
    max_length: int = 125,
) -> dict[str, Any]:
    if not 20 <= max_length <= 1000:
        raise ToolError("max_length must be between 20 and 1000.")
    options = FixOptions(
        write=write,
        overwrite=overwrite,
        fetch_remote=fetch_remote,
        root=ws.root,
        language=language,
        max_length=max_length,
    )
    summary = Summary()
    documents = load_all(ws.files(paths), summary)
    outside = 0
    for document in documents:
        wanted = {id(image) for image in targets(document, overwrite)}
        kept = []
        for image in document.images:
            file = _local_image(document, image.src, ws.root)
            if id(image) in wanted and file is not None and not ws.is_inside(file):
                outside += 1
                summary.skipped.append(
                    Skipped(
                        document.path,
                        image.line,
                        image.column,
                        image.src,
                        "the image is outside the folder this server may read",
                    )
                )
            else:
                kept.append(image)
        document.images = kept
    summary.images += outside
    diffs: list[str] = []
    changed: list[str] = []
    if any(targets(d, overwrite) for d in documents):
        generator = await ws.generator()
        for document in documents:
            result = await fix_document(document, generator, options, summary)
            if not result.changed:
                continue
            changed.append(result.path)
            if write:
                try:
                    await asyncio.to_thread(write_file, result)
                except OSError as exc:
                    summary.errors.append(f"{result.path}: {exc.strerror or exc}")
            else:
                diffs.append(result.diff())
    else:
        summary.files += len(documents)
        summary.images += sum(len(d.images) for d in documents)
    return {
        "write": write,
        "summary": summary.as_dict(),
        "changed_files": changed,
        "diff": "".join(diffs),
        "skipped": [s.__dict__ for s in summary.skipped],
        "problems": summary.errors,
        "note": "" if write else "A dry run: no file was changed; call again with write: true.",
    }
