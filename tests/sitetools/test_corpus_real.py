"""The whole corpus end to end (issue 12): real-world pages from public documentation repositories
(corpus/real/, see its SOURCES.md), the package READMEs and the hand-written malformed files.

fix --write: every byte outside the changed alt spans stays, the alt a parser reads back is the
generated text, a second run changes nothing, HTML gives the same html.parser events apart from
img alt and Markdown renders (markdown-it) to the same HTML apart from img alt. audit: text, JSON
and SARIF agree, the SARIF log validates against the 2.1.0 schema, every finding points at its
image, and the exit codes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import unquote

import jsonschema
import jsonschema_rs
import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from alttext.cli import app
from alttext.sitetools.documents import decode, kind_of, load, parse
from alttext.sitetools.edits import Edit
from alttext.sitetools.findings import needs_alt
from alttext.sitetools.fixing import FixOptions, Summary, fix_document, write
from alttext.sitetools.model import line_starts
from tests.sitetools.helpers import (
    CORPUS,
    REAL,
    FakeGenerator,
    add_images,
    assert_only_alt_changed,
    corpus_copy,
    corpus_documents,
    parsed,
)

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
DOCS = corpus_documents()
HTML_DOCS = [d for d in DOCS if not d.endswith((".md", ".markdown", ".mdx"))]
MD_DOCS = [d for d in DOCS if d not in HTML_DOCS]
runner = CliRunner()
# Documents fix must change: images without alt whose files exist (real ones and hand-written).
MUST_CHANGE = {
    "real/mdn-accessible-image.html",
    "real/mdn-assessment-start.html",
    "real/mdn-html-a11y4.html",
    "real/wai-perspective-videos.cs.md",
    "mixed-eol.html",
    "mixed-eol.md",
    "malformed.html",
    "crlf-bom.html",
    "crlf-bom.md",
    "tricky.md",
    "template.njk",
    "page.htm",
    "notes.markdown",
}
# And with --overwrite: suspicious alts (too long, "An image showing…"), some over several lines.
MUST_CHANGE_OVERWRITE = {
    "real/rust-book-ch04-01-what-is-ownership.md",
    "real/wai-coop-paper100.html",
    "real/wai-coop-paper102.html",
}


def test_the_corpus_is_there() -> None:
    real = corpus_documents(REAL)
    assert 20 <= len(real) <= 40
    assert sum(p.stat().st_size for p in REAL.iterdir()) < 2_000_000
    # Every real file is listed in SOURCES.md with the Git blob id of its source: still the
    # same bytes as the file at that commit.
    listed = dict(
        re.findall(r"^\| `([^`]+)` \| [^|]+ \| `[^`]+` \| `([0-9a-f]{12})` \|", _sources(), re.M)
    )
    assert sorted(listed) == real
    for name, blob in listed.items():
        data = (REAL / name).read_bytes()
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()[:12] == blob, name
    raw = [(REAL / name).read_bytes() for name in real]
    assert any(b.startswith(b"\xef\xbb\xbf") for b in raw)  # a BOM
    assert any(b"\r\n" in b for b in raw)  # CRLF
    assert {"mixed-eol.html", "mixed-eol.md"} <= set(DOCS)


def _sources() -> str:
    return (REAL / "SOURCES.md").read_text(encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the corpus with a PNG for every local image (site-absolute ones in webroot/)."""
    root = corpus_copy(tmp_path)
    add_images(root, tmp_path / "webroot")
    return root


def options(site: Path, overwrite: bool = False) -> FixOptions:
    return FixOptions(write=True, overwrite=overwrite, root=site.parent / "webroot")


async def fix_corpus(site: Path, opts: FixOptions) -> tuple[Summary, dict[str, list[Edit]]]:
    summary = Summary()
    edits: dict[str, list[Edit]] = {}
    gen = FakeGenerator()
    for name in DOCS:
        result = await fix_document(load(site / name), gen, opts, summary)
        edits[name] = result.edits
        if result.changed:
            write(result)
    return summary, edits


def rendered(name: str, text: str) -> str:
    """What a browser gets: the page itself, or the Markdown rendered by markdown-it."""
    if name in MD_DOCS:
        return MarkdownIt("commonmark").render(text)
    return text


@pytest.mark.parametrize("overwrite", [False, True], ids=["fix", "fix-overwrite"])
async def test_fix_write_only_changes_alt_spans_and_is_idempotent(
    site: Path, overwrite: bool
) -> None:
    raw = {name: (site / name).read_bytes() for name in DOCS}
    before = {name: decode(data) for name, data in raw.items()}
    summary, edits = await fix_corpus(site, options(site, overwrite))
    assert summary.errors == []
    assert summary.files == len(DOCS)
    changed = {name for name in DOCS if (site / name).read_bytes() != raw[name]}
    assert {name for name in DOCS if edits[name]} == changed
    assert changed >= MUST_CHANGE | (MUST_CHANGE_OVERWRITE if overwrite else set())
    assert summary.fixed >= (55 if overwrite else 40)

    for name in DOCS:
        after_path = site / name
        assert_only_alt_changed(before[name], after_path)  # a diff allowing only alt spans
        after = load(after_path)
        # Edits neither add nor remove images; an edited image now has the generated alt as the
        # scanner reads it back, the others keep theirs.
        before_images = parse(name, before[name], kind_of(name) or "html").images
        assert len(after.images) == len(before_images)
        edited = {e.image.start: e.alt for e in edits[name]}
        for old_image, new_image in zip(before_images, after.images, strict=True):
            expected = edited.get(old_image.start, old_image.alt)
            assert new_image.alt == expected, (name, old_image.line, old_image.column)

    again, again_edits = await fix_corpus(site, options(site, overwrite))
    assert again.fixed == 0
    assert not any(again_edits.values())
    assert {n for n in DOCS if (site / n).read_bytes() != raw[n]} == changed


async def test_fixed_pages_parse_the_same_apart_from_img_alt(site: Path) -> None:
    """html.parser (and markdown-it for Markdown) see the same document before and after, except
    for the alt of images; every alt fix wrote is the alt the parser reads back."""
    before = {name: decode((site / name).read_bytes()) for name in DOCS}
    _, edits = await fix_corpus(site, options(site, overwrite=True))
    for name in DOCS:
        after = decode((site / name).read_bytes())
        old, new = parsed(rendered(name, before[name])), parsed(rendered(name, after))
        assert new.events == old.events, name
        for edit in edits[name]:
            assert edit.alt in new.alts, (name, edit.image.line, edit.alt)
        # Images html.parser sees with alt: never fewer than before, one more per new alt.
        added = sum(1 for e in edits[name] if e.image.alt is None)
        assert sum(a is not None for a in new.alts) >= sum(a is not None for a in old.alts)
        if name in HTML_DOCS:
            assert sum(a is not None for a in new.alts) == (
                sum(a is not None for a in old.alts) + added
            ), name


async def test_only_skipped_images_still_lack_alt_after_fix(site: Path) -> None:
    befores = {name: load(site / name) for name in DOCS}
    summary, _ = await fix_corpus(site, options(site))
    skipped = {(s.file, s.line, s.column) for s in summary.skipped}
    for name in DOCS:
        for old, new in zip(befores[name].images, load(site / name).images, strict=True):
            if needs_alt(new):
                assert (str(site / name), old.line, old.column) in skipped, (name, old.line)
    reasons = {s.reason.split(":")[0] for s in summary.skipped}
    assert "the image has no src" in reasons  # <img class="thumb" /> (mdn-object-fit-gallery)
    assert "a remote image" in reasons  # https:// badges and logos


@pytest.mark.parametrize("name", MD_DOCS)
def test_markdown_images_are_the_ones_markdown_it_renders(name: str) -> None:
    """The scanner and a CommonMark renderer agree on which images a Markdown file has."""
    doc = load(CORPUS / name)
    rendered_srcs = parsed(MarkdownIt("commonmark").render(doc.text)).srcs
    assert [unquote(i.src or "") for i in doc.images] == [unquote(s or "") for s in rendered_srcs]


def finding_at(text: str, line: int, column: int) -> str:
    starts = line_starts(text)
    return text[starts[line - 1] + column - 1 :][:4]


def test_cli_audit_on_the_corpus_text_json_sarif(site: Path) -> None:
    target = str(site)
    text = runner.invoke(app, ["audit", target])
    body = runner.invoke(app, ["audit", "--json", target])
    sarif = runner.invoke(app, ["audit", "--sarif", target])
    assert text.exit_code == body.exit_code == sarif.exit_code == 1
    report = json.loads(body.stdout)
    findings = report["findings"]
    assert report["files"] == len(DOCS)
    assert len(findings) > 60

    lines = text.stdout.splitlines()
    summary = lines.pop()
    errors = sum(f["severity"] == "error" for f in findings)
    assert summary == (
        f"{len(DOCS)} files, {report['images']} images: {errors} errors, "
        f"{len(findings) - errors} warnings"
    )
    pattern = re.compile(r"^(.+):(\d+):(\d+): (error|warning) \[([a-z-]+)\] (.+)$")
    assert len(lines) == len(findings)
    for line, f in zip(lines, findings, strict=True):
        m = pattern.match(line)
        assert m is not None, line
        assert m.groups()[:5] == (
            f["file"],
            str(f["line"]),
            str(f["column"]),
            f["severity"],
            f["rule"],
        )

    log = json.loads(sarif.stdout)
    assert [e.message for e in jsonschema_rs.validator_for(SCHEMA).iter_errors(log)] == []
    jsonschema.Draft7Validator(SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    assert len(results) == len(findings)
    rule_ids = [r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]]
    for result, f in zip(results, findings, strict=True):
        assert (result["ruleId"], result["level"]) == (f["rule"], f["severity"])
        assert rule_ids[result["ruleIndex"]] == f["rule"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (f["line"], f["column"])
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert Path(f["file"]).as_uri() == uri

    # Every finding points at its image: ``<img`` or ``![`` at that line and column.
    texts: dict[str, str] = {}
    for f in findings:
        doc = texts.setdefault(f["file"], decode(Path(f["file"]).read_bytes()))
        at = finding_at(doc, f["line"], f["column"])
        assert at.lower() == "<img" or at.startswith("!["), (f["file"], f["line"], at)

    found = {
        (Path(f["file"]).relative_to(site).as_posix(), f["line"], f["column"], f["rule"])
        for f in findings
    }
    assert {
        ("real/mdn-html-a11y4.html", 43, 9, "missing-alt"),
        ("real/mdn-html-a11y4.html", 44, 9, "missing-alt"),
        ("real/mdn-splash-page-start.html", 121, 11, "missing-alt"),
        ("real/mdn-accessible-image.html", 18, 5, "missing-alt"),
        ("real/mdn-object-fit-gallery-fetch.html", 38, 5, "missing-alt"),
        ("real/wai-coop-paper102.html", 65, 5, "alt-redundant-opening"),  # CRLF file
        ("real/wai-coop-paper102.html", 65, 5, "alt-too-long"),
        ("real/wai-perspective-videos.cs.md", 52, 6, "missing-alt"),
        ("real/hugo-host-on-netlify.md", 84, 3, "alt-repeated"),
        ("real/rust-book-ch04-01-what-is-ownership.md", 275, 1, "alt-too-long"),
        ("mixed-eol.html", 11, 1, "alt-file-name"),  # the first of two alt attributes
        ("mixed-eol.html", 21, 35, "missing-alt"),
        ("mixed-eol.md", 8, 1, "missing-alt"),
        ("template.njk", 8, 3, "missing-alt"),
        ("template.njk", 15, 20, "missing-alt"),
        ("page.htm", 10, 1, "missing-alt"),
        ("page.htm", 13, 1, "alt-file-name"),
        ("notes.markdown", 11, 1, "missing-alt"),
        ("notes.markdown", 14, 1, "alt-placeholder"),
    } <= found
    by_file: dict[str, set[int]] = {}
    for name, line, _, _ in found:
        by_file.setdefault(name, set()).add(line)
    # Not images: <img> in a <textarea>, a comment, fenced code, templates, code spans.
    assert not by_file.get("real/mdn-html-a11y4.html", set()) & set(range(70, 80))
    assert 102 not in by_file.get("real/mdn-splash-page-start.html", set())
    assert not by_file.get("real/wai-wcag-conformance-logos.md", set()) & set(range(60, 210))
    assert "real/jekyll-showcase.html" not in by_file  # {{ }} in the tag
    # Template syntax in the tag, or the tag in a template string ({{ "<img …>" | safe }}).
    assert not by_file["template.njk"] & {11, 18}
    assert not by_file["page.htm"] & {12}  # ALT="" on a spacer
    assert not by_file["notes.markdown"] & {18, 21}  # indented and fenced code
    assert not by_file.get("mixed-eol.html", set()) & {12, 19, 23, 24, 25, 26, 27, 28, 29}
    # Not images in Markdown: code spans, indented and tilde code, a comment, escaped "!", a
    # Markdown image inside an HTML block; and ``[link](<img/…>)`` is no <img> tag.
    assert not by_file.get("mixed-eol.md", set()) & {24, 26, 29, 33, 36, 39}
    assert {c for n, line, c, _ in found if (n, line) == ("mixed-eol.md", 14)} == {1}


def test_cli_audit_exit_codes_on_real_files(site: Path) -> None:
    real = site / "real"
    errors = str(real / "mdn-html-a11y4.html")  # missing-alt
    warnings = str(real / "hugo-host-on-netlify.md")  # only alt-repeated
    clean = str(real / "rust-book-ch14-02-publishing-to-crates-io.md")

    def code(*args: str) -> int:
        return runner.invoke(app, ["audit", *args]).exit_code

    assert code(errors) == 1
    assert code("--fail-on", "error", errors) == 1
    assert code("--fail-on", "never", errors) == 0
    assert code("--fail-on", "never", "--sarif", str(site)) == 0
    assert code(warnings) == 0
    assert code("--json", warnings) == 0
    assert code("--fail-on", "warning", warnings) == 1
    assert code("--fail-on", "warning", "--sarif", warnings) == 1
    assert code("--fail-on", "warning", clean) == 0
    assert code("--fail-on", "warning", clean, warnings) == 1
    # Usage errors and unreadable inputs: 2.
    assert code("--fail-on", "sometimes", clean) == 2
    assert code("--json", "--sarif", clean) == 2
    assert code(str(real / "no-such-page.html")) == 2
    assert code("--fail-on", "never", clean, str(real / "no-such-page.html")) == 2
    assert code() == 2


def test_cli_fix_write_on_the_corpus(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``alttext fix`` itself (the generator replaced by the fake one): a dry run changes nothing
    and prints a diff, --write rewrites, a second --write changes nothing."""

    @asynccontextmanager
    async def fake_generator(*_: object) -> AsyncIterator[FakeGenerator]:
        yield FakeGenerator()

    monkeypatch.setattr("alttext.sitetools.generate.open_generator", fake_generator)
    monkeypatch.setattr("alttext.cli.sitetools.settings", lambda: None)
    root = ["--root", str(site.parent / "webroot")]
    raw = {name: (site / name).read_bytes() for name in DOCS}
    dry = runner.invoke(app, ["fix", *root, str(site)])
    assert dry.exit_code == 0, dry.output
    assert {name: (site / name).read_bytes() for name in DOCS} == raw
    for name in MUST_CHANGE:
        assert f"\n+++ b/{site / name}\n" in dry.stdout, name
    wrote = runner.invoke(app, ["fix", "--write", *root, str(site)])
    assert wrote.exit_code == 0, wrote.output
    after = {name: (site / name).read_bytes() for name in DOCS}
    assert {n for n in DOCS if after[n] != raw[n]} >= MUST_CHANGE
    for name in DOCS:
        assert_only_alt_changed(decode(raw[name]), site / name)
    again = runner.invoke(app, ["fix", "--write", *root, str(site)])
    assert again.exit_code == 0
    assert " 0 fixed," in again.output
    assert {name: (site / name).read_bytes() for name in DOCS} == after
