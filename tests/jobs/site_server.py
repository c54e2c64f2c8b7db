"""The hand-written site in site/, served by a fake host (its own request log on the wire)."""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.fakes.image_host import FakeImageHost

SITE = Path(__file__).parent / "site"
TYPES = {".html": "text/html", ".xml": "application/xml", ".txt": "text/plain"}


class Site:
    """The fake host serving site/, with ``{{ORIGIN}}`` and ``{{PORT}}`` filled in."""

    def __init__(self, host: FakeImageHost) -> None:
        self.host = host
        self.origin = host.url("")
        for path in SITE.rglob("*"):
            if path.is_file():
                self.serve(
                    f"/{path.relative_to(SITE).as_posix()}", path.read_bytes(), TYPES[path.suffix]
                )
        blog = (SITE / "sitemap-blog.xml").read_bytes()
        self.serve(
            "/sitemap-blog.xml.gz", gzip.compress(self.fill(blog)), "application/gzip", fill=False
        )
        host.redirect("/old-about", "/about.html", status=301)
        host.redirect("/elsewhere", self.url("/about.html").replace("127.0.0.1", "localhost"))
        host.image(
            "/big.html", b"<html><body>" + b"<p>crumbs</p>" * 10_000, content_type="text/html"
        )

    def fill(self, body: bytes) -> bytes:
        return body.replace(b"{{ORIGIN}}", self.origin.encode()).replace(
            b"{{PORT}}", str(self.host.port).encode()
        )

    def serve(self, path: str, body: bytes, content_type: str, *, fill: bool = True) -> None:
        self.host.image(path, self.fill(body) if fill else body, content_type=content_type)

    def url(self, path: str) -> str:
        return self.origin + path

    def fetched(self, path: str) -> int:
        return len(self.host.requests_to(path))
