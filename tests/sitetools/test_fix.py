"""fix: only alt values change, every other byte stays; idempotent; skips never crash."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path

import pytest

from alttext.sitetools.documents import decode, load
from alttext.sitetools.edits import edit_for, html_escape, markdown_escape
from alttext.sitetools.fixing import FixOptions, Summary, fix_document, write
from tests.sitetools.helpers import FakeGenerator, assert_only_alt_changed, events

DOCS = [
    "malformed.html",
    "crlf-bom.html",
    "valid.html",
    "httpx-README.html",
    "tricky.md",
    "crlf-bom.md",
    "httpx-README.md",
    "fastapi-README.md",
    "pillow-README.md",
]


async def fix_all(site: Path, options: FixOptions, gen: FakeGenerator) -> Summary:
    summary = Summary()
    for name in DOCS:
        result = await fix_document(load(site / name), gen, options, summary)
        if result.changed and options.write:
            write(result)
    return summary


@pytest.mark.parametrize("overwrite", [False, True])
async def test_fix_write_changes_only_alt_values_and_is_idempotent(
    site: Path, overwrite: bool
) -> None:
    before = {name: decode((site / name).read_bytes()) for name in DOCS}
    raw = {name: (site / name).read_bytes() for name in DOCS}
    summary = await fix_all(site, FixOptions(write=True, overwrite=overwrite), FakeGenerator())
    assert summary.fixed > 10
    for name in DOCS:
        assert_only_alt_changed(before[name], site / name)
    crlf = (site / "crlf-bom.html").read_bytes()
    assert crlf.startswith(b"\xef\xbb\xbf")
    assert crlf.count(b"\r\n") == raw["crlf-bom.html"].count(b"\r\n")
    assert b"<img alt='Red &quot;tile&quot; &lt;" not in crlf
    assert b'<img alt=\'Red "tile" &lt;' in crlf  # the tag's own quote; < > & escaped
    after = {name: (site / name).read_bytes() for name in DOCS}
    again = await fix_all(site, FixOptions(write=True, overwrite=overwrite), FakeGenerator())
    assert again.fixed == 0
    assert {name: (site / name).read_bytes() for name in DOCS} == after


async def test_fix_without_write_changes_nothing_and_diffs(site: Path) -> None:
    raw = (site / "valid.html").read_bytes()
    summary = Summary()
    result = await fix_document(load(site / "valid.html"), FakeGenerator(), FixOptions(), summary)
    assert (site / "valid.html").read_bytes() == raw
    diff = result.diff()
    assert diff.startswith(f"--- a/{site / 'valid.html'}")
    assert '+<header><a href="/"><img alt="Go to / &amp; more 1" src="img/logo.png"' in diff
    assert summary.as_dict() == {"files": 1, "images": 4, "fixed": 3, "skipped": 0, "credits": 3}


@pytest.mark.parametrize("name", ["valid.html", "crlf-bom.html"])
async def test_valid_html_parses_the_same_apart_from_alt(site: Path, name: str) -> None:
    before = decode((site / name).read_bytes())
    await fix_all(site, FixOptions(write=True), FakeGenerator())
    after = decode((site / name).read_bytes())
    assert after != before
    assert events(after) == events(before)
    parser_alts: list[str | None] = []

    class Alts(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                parser_alts.append(dict(attrs).get("alt"))

    Alts().feed(after)
    assert None not in parser_alts  # every image now has an alt html.parser reads back


async def test_context_role_and_language_reach_the_generator(site: Path) -> None:
    gen = FakeGenerator()
    await fix_document(load(site / "malformed.html"), gen, FixOptions(), Summary())
    by_context = {r.context: r for r in gen.requests}
    shoe = next(r for c, r in by_context.items() if c and "trail shoe" in c)
    assert shoe.role == "auto"
    assert shoe.language == "en-GB"
    assert any(r.role == "functional" and r.link_target == "/catalogue" for r in gen.requests)
    assert any((r.context or "").startswith("Sales by quarter, 2025") for r in gen.requests)
    gen = FakeGenerator()
    await fix_document(load(site / "tricky.md"), gen, FixOptions(), Summary())
    assert {r.language for r in gen.requests} == {"de"}


async def test_missing_and_remote_images_are_skipped_with_reasons(site: Path) -> None:
    summary = Summary()
    await fix_document(load(site / "malformed.html"), FakeGenerator(), FixOptions(), summary)
    reasons = {s.src: s.reason for s in summary.skipped}
    assert reasons["img/missing-file.png"].startswith("image not found")
    assert "--fetch-remote" in reasons["https://example.com/remote.png"]
    summary = Summary()
    opts = FixOptions(fetch_remote=True)
    await fix_document(load(site / "malformed.html"), FakeGenerator(), opts, summary)
    assert (
        "no network" in {s.src: s.reason for s in summary.skipped}["https://example.com/remote.png"]
    )


@pytest.mark.parametrize(
    ("value", "quote", "expected"),
    [
        ('a "b" & <c>', '"', "a &quot;b&quot; &amp; &lt;c&gt;"),
        ('it\'s & "x"', "'", 'it&#39;s &amp; "x"'),
    ],
)
def test_html_escaping(value: str, quote: str, expected: str) -> None:
    assert html_escape(value, quote) == expected
    assert html.unescape(expected) == value


def test_markdown_escaping_round_trips_through_markdown_it() -> None:
    from markdown_it import MarkdownIt

    alt = "a [b] *c* _d_ `e` <f> & g \\ h!"
    rendered = MarkdownIt("commonmark").render(f"![{markdown_escape(alt)}](x.png)")
    assert f'alt="{html.escape(alt, quote=True)}"' in rendered.replace("&#x27;", "'")


def test_existing_unquoted_alt_is_replaced_with_a_quoted_value() -> None:
    from alttext.sitetools.documents import parse

    doc = parse("x.html", "<img alt=photo src=a.png>", "html")
    edit = edit_for(doc.images[0], 'A "red" tile')
    assert (edit.start, edit.end, edit.text) == (9, 14, '"A &quot;red&quot; tile"')
