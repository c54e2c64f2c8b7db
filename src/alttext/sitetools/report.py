"""Running an audit over paths and URLs, and printing it as text or JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from alttext.sitetools.documents import decode, kind_of, load, parse
from alttext.sitetools.findings import DEFAULT_MAX_LENGTH, AuditFinding, audit
from alttext.sitetools.model import Document


@dataclass
class AuditReport:
    files: int = 0
    images: int = 0
    findings: list[AuditFinding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, document: Document, max_length: int) -> None:
        self.files += 1
        self.images += len(document.images)
        self.findings.extend(audit(document, max_length))

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "images": self.images,
            "findings": [f.as_dict() for f in self.findings],
        }

    def text(self) -> str:
        lines = [
            f"{f.file}:{f.line}:{f.column}: {f.severity} [{f.rule}] {f.message}"
            + (f" (src: {f.src})" if f.src else "")
            for f in self.findings
        ]
        errors = sum(1 for f in self.findings if f.severity == "error")
        lines.append(
            f"{self.files} files, {self.images} images: {errors} errors, "
            f"{len(self.findings) - errors} warnings"
        )
        return "\n".join(lines) + "\n"


def audit_files(files: list[Path], max_length: int = DEFAULT_MAX_LENGTH) -> AuditReport:
    """The audit of local files: no event loop and no HTTP client, so a pre-commit hook that
    runs ``alttext audit`` pays for neither."""
    report = AuditReport()
    for path in files:
        try:
            document = load(path)
        except OSError as exc:
            report.errors.append(f"{path}: {exc.strerror or exc}")
            continue
        report.add(document, max_length)
    return report


async def run_audit(
    files: list[Path],
    urls: list[str],
    fetch: Callable[[str], Awaitable[bytes]] | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> AuditReport:
    """Files first, then the pages behind ``urls`` as ``fetch`` returns them."""
    report = audit_files(files, max_length)
    for url in urls:
        if fetch is None:
            report.errors.append(f"{url}: fetching pages is not available here")
            continue
        try:
            data = await fetch(url)
        except Exception as exc:
            report.errors.append(f"{url}: {getattr(exc, 'detail', None) or exc}")
            continue
        kind = kind_of(url.split("?")[0].split("#")[0]) or "html"
        report.add(parse(url, decode(data), kind), max_length)
    return report
