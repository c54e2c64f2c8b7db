"""Finding images with exact offsets, and never where they are not markup."""

from __future__ import annotations

from pathlib import Path

from alttext.sitetools.documents import decode, load, parse
from alttext.sitetools.html_scan import scan_html
from tests.sitetools.helpers import CORPUS


def srcs(name: str) -> list[str | None]:
    return [i.src for i in load(CORPUS / name).images]


def test_html_skips_comments_scripts_raw_text_cdata_and_unclosed_tags() -> None:
    found = srcs("malformed.html")
    for hidden in (
        "in-title",
        "in-style",
        "in-script",
        "commented",
        "in-textarea",
        "cdata",
        "last",
    ):
        assert not any(hidden in (s or "") for s in found), hidden
    assert "img/shoe.png" in found  # uppercase, unquoted
    assert "img/multi&line.png" in found  # entity decoded, tag over three lines
    assert "img/unquoted.png" in found


def test_html_positions_attributes_and_context() -> None:
    doc = load(CORPUS / "malformed.html")
    by_src = {i.src: i for i in doc.images}
    shoe = by_src["img/shoe.png"]
    assert (shoe.line, shoe.column, shoe.alt) == (11, 1, None)
    assert doc.text[shoe.start : shoe.start + 4] == "<IMG"
    assert "trail shoe" in shoe.paragraph
    assert shoe.heading == "Trail shoes & boots"
    logo = by_src["img/logo.png"]
    assert (logo.link_target, logo.quote) == ("/catalogue", "'")
    assert by_src["img/chart.png"].caption == "Sales by quarter, 2025"
    assert by_src["img/home.png"].alt == ""
    assert by_src["img/bare.png"].alt == ""
    assert by_src["{{ url }}"].templated
    assert doc.lang == "en-GB"


def test_markdown_images_and_code_masking() -> None:
    doc = load(CORPUS / "tricky.md")
    found = [i.src for i in doc.images]
    assert found == [
        "img/screenshot.png",
        "img/badge.png",
        "img/chart.png",
        "img/chart.png",
        "img/short cut.png",
        "img/in-list.png",
        "img/html-in-md.png",
    ]
    badge = doc.images[1]
    assert badge.link_target == "https://ci.example.org/build"
    assert badge.alt is None
    assert doc.images[0].title == "Die neue Oberfläche"
    assert doc.images[6].kind == "html"
    assert doc.images[6].link_target == "https://example.org/"
    assert doc.lang == "de"


def test_crlf_and_bom_keep_offsets() -> None:
    data = (CORPUS / "crlf-bom.html").read_bytes()
    doc = parse("x.html", decode(data), "html")
    menu = doc.images[0]
    assert (menu.line, menu.column) == (6, 1)
    assert doc.text[menu.start :].startswith("<img  src = 'img/menu.png'")
    assert doc.images[1].alt == ""  # ALT="" in upper case is an alt
    md = load(CORPUS / "crlf-bom.md")
    assert [i.heading for i in md.images] == ["Title", "Title"]


def test_real_world_readmes_are_scanned(tmp_path: Path) -> None:
    httpx_md = load(CORPUS / "httpx-README.md")
    httpx_html = load(CORPUS / "httpx-README.html")
    assert [i.src for i in httpx_md.images] == [i.src for i in httpx_html.images]
    assert len(load(CORPUS / "fastapi-README.md").images) >= 20


def test_attribute_values_follow_the_standards_character_reference_rule() -> None:
    # In an attribute, a legacy reference without ";" stays as written when "=" or a letter or
    # digit follows (``&copy=2``, ``&section``): a query string is not turned into "©=2§ion".
    doc = parse(
        "x.html",
        '<img src="a.png?x=1&copy=2&section=3&amp;y=4&lt;5&#38;z&notit" alt="R&D &copy 2025 &not;ok'
        '&notin; &AMP; &#x26;">',
        "html",
    )
    image = doc.images[0]
    assert image.src == "a.png?x=1&copy=2&section=3&y=4<5&z&notit"
    assert image.alt == "R&D © 2025 ¬ok∉ & &"
    md = parse("x.md", '<img src="b.png?a=1&times=2" alt="&copy=">\n', "markdown")
    assert (md.images[0].src, md.images[0].alt) == ("b.png?a=1&times=2", "&copy=")
    found = srcs("mixed-eol.html")
    assert "img/query.png?maat=1&copy=2&section=3&kleur=rood" in found


def test_abruptly_closed_empty_comments_end_at_their_own_gt() -> None:
    # ``<!-->`` and ``<!--->`` are whole (empty) comments in HTML and CommonMark alike.
    for opener in ("<!-->", "<!--->"):
        html_doc = parse("x.html", f'{opener}<img src="a.png"><!-- <img src="b.png"> -->', "html")
        assert [i.src for i in html_doc.images] == ["a.png"], opener
        md = parse("x.md", f"Text {opener} ![](a.png)\n\n<!-- ![](b.png) -->\n", "markdown")
        assert [i.src for i in md.images] == ["a.png"], opener


def test_markdown_inside_html_blocks_is_text() -> None:
    # CommonMark: a line opening an HTML block makes the block raw HTML up to its end (a blank
    # line for <div>, the comment's end for <!--), so ``![](…)`` in it is text, not an image;
    # <img> in it is HTML and still found.
    doc = parse(
        "x.md",
        '<div align="center">\n![](a.png)\n<img src="b.png">\n</div>\n\n![](c.png)\n\n'
        "<!-- note --> ![](d.png)\n\n<custom-element>\n![](e.png)\n\n"
        "Paragraph\n<span>\n![](f.png)\n",
        "markdown",
    )
    assert [i.src for i in doc.images] == ["b.png", "c.png", "f.png"]


def test_markdown_angle_bracket_destinations_are_not_html_tags() -> None:
    doc = load(CORPUS / "mixed-eol.md")
    on_14 = [(i.column, i.kind, i.src) for i in doc.images if i.line == 14]
    assert on_14 == [(1, "markdown", "img/md angle.png")]  # [link](<img/md link.png>) is no image
    doc = parse("x.md", "[![](<img/a b.png>)](<img/c d.png>)\n", "markdown")
    assert [(i.kind, i.src, i.link_target) for i in doc.images] == [
        ("markdown", "img/a b.png", "img/c d.png")
    ]


def test_tags_inside_template_code_are_the_templates() -> None:
    """An ``<img>`` in a template string or block is no markup to edit (fix would break the
    string's quoting); the one after the closed code is."""
    images, _ = scan_html(
        '{{ "<img src=\\"a.png\\">" | safe }}\n{% set x = \'<img src="b.png">\' %}\n'
        '<?php echo "<img src=\'c.png\'>"; ?>\n<%= "<img src=d.png>" %>\n<img src="e.png">\n'
    )
    # (``<?php`` opens a bogus comment in HTML's own rules: no image on line 3 at all.)
    assert [(i.line, i.templated) for i in images] == [(1, True), (2, True), (4, True), (5, False)]
    doc = load(CORPUS / "template.njk")
    assert {i.line: i.templated for i in doc.images} == {
        8: False,
        11: True,
        15: False,
        16: False,
        17: False,
        18: True,
    }
