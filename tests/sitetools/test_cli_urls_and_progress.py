"""``alttext audit URL`` against a real HTTP server on 127.0.0.1, and ``alttext fix``'s
progress bar reaching 100 %."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
import rich.progress
from typer.testing import CliRunner

from alttext.cli import app
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.sitetools.helpers import FakeGenerator

runner = CliRunner()
PAGE = (
    '<!doctype html>\n<html lang="en">\n<body>\n<h1>Our team</h1>\n'
    '<img src="/team.jpg">\n<img src="/logo.png" alt="logo.png">\n<img src="/x.png" alt="">\n'
    "</body>\n</html>\n"
)


@pytest.fixture
def site_host() -> Iterator[FakeImageHost]:
    with running_image_host() as host:
        host.image("/about.html", PAGE.encode(), content_type="text/html; charset=utf-8")
        host.image("/notes.md", b"# Notes\n\n![](a.png)\n", content_type="text/markdown")
        yield host


def test_audit_a_url(site_host: FakeImageHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTTEXT_ALLOW_PRIVATE_URLS", "true")  # the server is on 127.0.0.1
    page, notes = site_host.url("/about.html"), site_host.url("/notes.md")
    result = runner.invoke(app, ["audit", "--json", page, notes])
    assert result.exit_code == 1, result.output  # a missing alt is an error
    report = json.loads(result.stdout)
    assert (report["files"], report["images"]) == (2, 4)
    found = {(f["file"], f["line"], f["column"], f["rule"]) for f in report["findings"]}
    assert found == {
        (page, 5, 1, "missing-alt"),
        (page, 6, 1, "alt-file-name"),
        (notes, 3, 1, "missing-alt"),  # .md in the URL: read as Markdown
    }
    text = runner.invoke(app, ["audit", page])
    assert f"{page}:5:1: error [missing-alt]" in text.stdout
    sent = [r for r in site_host.requests if r.path == "/about.html"]
    assert sent
    assert "text/html" in sent[-1].headers.get("accept", "")


def test_audit_url_problems_talk_about_the_page(
    site_host: FakeImageHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALTTEXT_ALLOW_PRIVATE_URLS", raising=False)
    page = site_host.url("/about.html")
    refused = runner.invoke(app, ["audit", page])
    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert "The page host '127.0.0.1' is a private, local or reserved address; refused." in message
    assert "image" not in message
    assert not [r for r in site_host.requests if r.path == "/about.html"]  # nothing was sent

    monkeypatch.setenv("ALTTEXT_ALLOW_PRIVATE_URLS", "true")
    missing = runner.invoke(app, ["audit", site_host.url("/gone.html")])
    assert missing.exit_code == 2
    assert "The page URL returned HTTP 404." in " ".join(missing.stderr.split())


class RecordingProgress(rich.progress.Progress):
    """rich's Progress, recording each task's total and how far it got when it stopped."""

    recorded: ClassVar[list[tuple[float | None, float]]] = []

    def stop(self) -> None:
        RecordingProgress.recorded.extend((t.total, t.completed) for t in self.tasks)
        super().stop()


@pytest.mark.parametrize("overwrite", [False, True])
def test_fix_progress_reaches_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    """Images that need nothing (a good alt, alt="", a template tag) are not work: the bar's
    total is the images fix works on, and it ends full."""
    (tmp_path / "img").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "img" / f"{name}.png").write_bytes(b"not read by the fake generator")
    (tmp_path / "page.html").write_text(
        '<html lang="en"><p>Shop</p><img src="img/a.png">'
        '<img src="img/b.png" alt="A blue door in a brick wall">'
        '<img src="img/c.png" alt=""><img src="img/b.png" alt="image">'
        '<img src="{{ photo }}"></html>\n',
        encoding="utf-8",
    )
    (tmp_path / "notes.md").write_text("![](img/c.png)\n![A red tile](img/a.png)\n")

    @asynccontextmanager
    async def fake_generator(*_: object) -> AsyncIterator[Any]:
        yield FakeGenerator()

    monkeypatch.setattr("alttext.sitetools.generate.open_generator", fake_generator)
    monkeypatch.setattr("alttext.cli.sitetools.settings", lambda: None)
    monkeypatch.setattr(rich.progress, "Progress", RecordingProgress)
    RecordingProgress.recorded = []
    args = ["fix", str(tmp_path)] + (["--overwrite"] if overwrite else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    worked_on = 3 if overwrite else 2  # missing alt twice (+ alt="image" with --overwrite)
    assert RecordingProgress.recorded == [(worked_on, worked_on)]
