"""``alttext mcp`` driven by the official SDK's client over stdio, as an assistant would."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from PIL import Image, ImageDraw, ImageFont

from alttext.sitetools.documents import decode
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.sdk.conftest import photo
from tests.sitetools.helpers import assert_only_alt_changed, png

PAGE = (
    '<!doctype html>\n<html lang="en">\n<body>\n<h2>Opening hours</h2>\n<p>Come and see us.\n'
    '<img src="img/tile.png">\n<img src="img/tile.png" alt="">\n</body>\n</html>\n'
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "img").mkdir(parents=True)
    (root / "img" / "tile.png").write_bytes(png())
    sign = Image.new("RGB", (700, 200), "white")
    ImageDraw.Draw(sign).text(
        (30, 60), "Open Daily", fill="black", font=ImageFont.load_default(size=64)
    )
    sign.save(root / "img" / "sign.png")
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    (tmp_path / "secret.html").write_text('<img src="x.png">', encoding="utf-8")
    return root


@asynccontextmanager
async def connect(
    root: Path, *, cwd: Path | None = None, extra_env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    args = ["-m", "alttext", "mcp"] + ([] if cwd else ["--root", str(root)])
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_PROVIDER": "local",
        "ALTTEXT_DATABASE_URL": f"sqlite+aiosqlite:///{root.parent}/mcp.db",
        "PYTHONPATH": os.pathsep.join(sys.path),
        **(extra_env or {}),
    }
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=cwd or root)
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


async def call(session: ClientSession, name: str, arguments: dict[str, Any]) -> Any:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result.content
    return result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]


async def test_lists_the_three_tools_with_their_inputs(project: Path) -> None:
    async with connect(project) as session:
        listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"describe_image", "audit", "fix"}
    describe = tools["describe_image"].input_schema["properties"]
    assert {"path", "url", "image_base64", "context", "role", "language", "max_length"} <= set(
        describe
    )
    assert tools["audit"].input_schema["required"] == ["paths"]
    fix = tools["fix"].input_schema["properties"]
    assert {"paths", "write", "overwrite", "fetch_remote"} <= set(fix)
    assert fix["write"]["default"] is False


async def test_describe_a_file_and_base64(project: Path) -> None:
    async with connect(project) as session:
        by_path = await call(session, "describe_image", {"path": "img/sign.png", "role": "text"})
        raw = base64.b64encode((project / "img" / "sign.png").read_bytes()).decode()
        by_b64 = await call(
            session, "describe_image", {"image_base64": f"data:image/png;base64,{raw}"}
        )
        both = await session.call_tool("describe_image", {"path": "img/sign.png", "url": "x"})
    assert "Open Daily" in by_path["alt_text"]
    assert by_path["decorative"] is False
    assert by_path["html_alt"].startswith('alt="')
    assert by_b64["alt_text"]
    assert both.is_error


@pytest.fixture
def photo_host() -> Iterator[FakeImageHost]:
    """A real HTTP server on 127.0.0.1 with a photo-like PNG and JPEG (no words in them)."""
    with running_image_host() as host:
        host.image("/photo.png", photo(seed=7))
        host.image("/photo.jpg", photo(fmt="JPEG", seed=8), content_type="image/jpeg")
        yield host


PRIVATE_OK = {"ALTTEXT_ALLOW_PRIVATE_URLS": "true"}  # the image host is on 127.0.0.1
NO_CONTEXT = "the supplied context was not used"  # the local engine's review reason


async def test_describe_a_url(project: Path, photo_host: FakeImageHost) -> None:
    png_url, jpg_url = photo_host.url("/photo.png"), photo_host.url("/photo.jpg")
    async with connect(project, extra_env=PRIVATE_OK) as session:
        plain = await call(session, "describe_image", {"url": png_url})
        jpeg = await call(session, "describe_image", {"url": jpg_url, "role": "informative"})
    assert [r.path for r in photo_host.requests] == ["/photo.png", "/photo.jpg"]
    for result in (plain, jpeg):
        assert result["alt_text"]
        assert not result["decorative"]
        assert result["role"] == "informative"
        assert result["language"] == "en"
        assert result["credits"] == 0  # the local engine
    assert len(plain["alt_text"]) > 20


async def test_describe_a_url_on_a_private_address_is_refused(
    project: Path, photo_host: FakeImageHost
) -> None:
    async with connect(project) as session:
        result = await session.call_tool("describe_image", {"url": photo_host.url("/photo.png")})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "private, local or reserved address" in text
    assert photo_host.requests == []


async def test_describe_options_take_effect(project: Path, photo_host: FakeImageHost) -> None:
    url = photo_host.url("/photo.png")
    async with connect(project, extra_env=PRIVATE_OK) as session:
        plain = await call(session, "describe_image", {"url": url})
        with_context = await call(
            session, "describe_image", {"url": url, "context": "Our shop front in spring"}
        )
        german = await call(session, "describe_image", {"url": url, "language": "de"})
        short = await call(session, "describe_image", {"url": url, "max_length": 20})
        by_path = await call(
            session, "describe_image", {"path": "img/sign.png", "language": "fr", "max_length": 20}
        )
    # context reaches the engine (which says it could not relate it: no vision model).
    assert not any(NO_CONTEXT in r for r in plain["review_reasons"])
    assert any(NO_CONTEXT in r for r in with_context["review_reasons"])
    # language: the answer is for German (and the offline engine says its words are English).
    assert german["language"] == "de"
    assert any("requested language de" in r for r in german["review_reasons"])
    assert german["needs_review"] is True
    # max_length caps the text.
    assert len(plain["alt_text"]) > 20
    assert 0 < len(short["alt_text"]) <= 20
    assert by_path["language"] == "fr"
    assert by_path["alt_text"] == "Open Daily"


async def test_audit_reports_findings(project: Path) -> None:
    async with connect(project) as session:
        report = await call(session, "audit", {"paths": ["."]})
    assert report["files"] == 1
    assert report["images"] == 2
    [finding] = report["findings"]
    assert finding["rule"] == "missing-alt"
    assert finding["line"] == 6
    assert finding["file"].endswith("index.html")
    assert report["errors"] == 1


async def test_fix_dry_run_then_write(project: Path) -> None:
    page = project / "index.html"
    before = page.read_bytes()
    async with connect(project) as session:
        dry = await call(session, "fix", {"paths": ["index.html"]})
        assert page.read_bytes() == before  # a dry run changes nothing
        assert '+<img alt="' in dry["diff"]
        assert dry["summary"]["fixed"] == 1
        assert dry["changed_files"] == [str(page)]
        written = await call(session, "fix", {"paths": ["index.html"], "write": True})
    assert written["diff"] == ""
    assert written["summary"]["fixed"] == 1
    assert page.read_bytes() != before
    assert_only_alt_changed(decode(before), page)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("describe_image", {"path": "../secret.html"}),
        ("describe_image", {"path": "/etc/hostname"}),
        ("audit", {"paths": ["../secret.html"]}),
        ("fix", {"paths": [".."], "write": True}),
    ],
)
async def test_paths_outside_the_root_are_refused(
    project: Path, tool: str, arguments: dict[str, Any]
) -> None:
    secret = project.parent / "secret.html"
    before = secret.read_bytes()
    async with connect(project, cwd=project) as session:  # the root defaults to the cwd
        result = await session.call_tool(tool, arguments)
    assert result.is_error
    assert "outside the folder" in result.content[0].text  # type: ignore[union-attr]
    assert secret.read_bytes() == before


async def test_fix_does_not_read_images_outside_the_root(project: Path) -> None:
    (project.parent / "outside.png").write_bytes(png())
    (project / "leak.html").write_text('<p>x</p><img src="../outside.png">\n', encoding="utf-8")
    async with connect(project) as session:
        result = await call(session, "fix", {"paths": ["leak.html"]})
    assert result["summary"]["fixed"] == 0
    assert result["summary"]["images"] == 1
    assert "outside the folder" in result["skipped"][0]["reason"]
