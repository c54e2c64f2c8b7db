"""The crawler against a real HTTP server on 127.0.0.1 serving the hand-written site in site/.

The server records every request, so "never fetched" is checked where it happens: on the wire.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alttext.describe.fetch import FetchLimits
from alttext.jobs.crawl import CrawledImage, CrawlFailed, CrawlReport, crawl
from alttext.jobs.pages import decode_html, largest_candidate, read_page
from alttext.jobs.sitemaps import NotASitemap, parse_sitemap
from alttext.sitetools.html_scan import scan_html_page
from tests.fakes.fixtures import running_image_host
from tests.jobs.site_server import SITE, Site

LIMITS = FetchLimits(max_bytes=100_000, total_timeout_s=10, allow_private=True)


@pytest.fixture
def site() -> Iterator[Site]:
    with running_image_host() as host:
        yield Site(host)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(
    site: Site,
    client: httpx.AsyncClient,
    path: str = "/index.html",
    *,
    max_pages: int = 50,
    delay_s: float = 0.0,
    sleep: FakeSleep | None = None,
    **kwargs: object,
) -> CrawlReport:
    return await crawl(
        site.url(path),
        client=client,
        limits=LIMITS,
        max_pages=max_pages,
        delay_s=delay_s,
        sleep=sleep or FakeSleep(),
        **kwargs,  # type: ignore[arg-type]
    )


def by_url(report: CrawlReport) -> dict[str, CrawledImage]:
    return {i.image_url: i for i in report.images}


# -- an HTML source ------------------------------------------------------------------------


async def test_crawl_follows_same_host_links_breadth_first(
    site: Site, client: httpx.AsyncClient
) -> None:
    report = await run(site, client)
    u = site.url
    assert report.pages == [
        u("/index.html"),
        u("/about.html"),
        u("/de/index.html"),
        u("/blog/post.html"),
    ]
    assert report.disallowed == [u("/private/secret.html")]
    assert site.fetched("/private/secret.html") == 0
    assert u("/missing.html") + ": HTTP 404" in report.errors
    big = [e for e in report.errors if e.startswith(u("/big.html") + ": ")]
    assert len(big) == 1
    assert "larger than the 100000 byte limit" in big[0]
    assert (
        f"{u('/elsewhere')}: redirected to another host (http://localhost:{site.host.port}/about.html)"
        in report.errors
    )
    assert len(report.errors) == 3
    # Files, other hosts and the same server under another name are not requested.
    assert site.fetched("/files/menu.pdf") == 0
    # Not even the page another host was redirected to (fetching it first, as before, failed
    # where localhost resolves to ::1 first, and asked a host outside the crawl).
    hosts = {r.headers["host"] for r in site.host.requests}
    assert hosts == {f"127.0.0.1:{site.host.port}"}
    # robots.txt once, each page once (the redirect to about.html is not parsed again).
    assert site.fetched("/robots.txt") == 1
    assert site.fetched("/index.html") == 1
    assert site.fetched("/old-about") == 1
    assert not [r for r in site.host.requests if r.path.startswith("/img/")]
    assert all("AltTextBot" in r.headers["user-agent"] for r in site.host.requests)


async def test_images_carry_context_role_language_and_existing_alt(
    site: Site, client: httpx.AsyncClient
) -> None:
    report = await run(site, client)
    u = site.url
    images = by_url(report)
    assert list(images)[:6] == [
        u("/img/logo.png"),
        u("/img/sourdough.jpg"),
        u("/img/divider.png"),
        "https://cdn.example.org/maps/quay.png",  # absolute; the fragment is dropped
        "http://cdn.example.org/img/ferry.jpg",  # protocol-relative: the page's scheme
        u("/img/team-1600.webp"),  # <picture>: the img's src is a data: URI
    ]
    assert len(images) == len(report.images)  # each image URL once

    logo = images[u("/img/logo.png")]
    # On index.html (first) and about.html (with an alt): described once, as first seen.
    assert (logo.page_url, logo.role, logo.link_target) == (
        u("/index.html"),
        "functional",
        u("/index.html"),
    )
    assert logo.existing_alt is None
    assert logo.language == "en-GB"

    loaf = images[u("/img/sourdough.jpg")]
    assert loaf.existing_alt == "A round sourdough loaf with a floured crust"
    assert loaf.role is None
    assert loaf.link_target is None
    assert loaf.context is not None
    assert "Caption: Our sourdough, baked at five every morning" in loaf.context
    assert "Section: Fresh bread, every morning" in loaf.context
    assert "Page title: Harbour Bakery" in loaf.context
    assert "floured crust" not in loaf.context

    assert images[u("/img/divider.png")].existing_alt == ""
    quay = images["https://cdn.example.org/maps/quay.png"]
    assert quay.context is not None
    assert "Section: Where to find us" in quay.context
    assert "next to the ferry" in quay.context

    team = images[u("/img/team-1600.webp")]
    assert team.page_url == u("/about.html")
    assert team.language == "en"
    assert team.context is not None
    assert "Section: The team" in team.context
    assert "Page title: About — Harbour Bakery" in team.context
    assert u("/img/shop-2x.jpg") in images
    assert u("/img/shop-1x.jpg") not in images
    search = images[u("/img/search.svg")]
    assert (search.role, search.link_target) == ("functional", "Search the site")

    german = images[u("/img/brezel.jpg")]
    assert (german.language, german.existing_alt) == ("de", "Brezel")
    assert german.context is not None
    assert "Bäckerei am Hafen" in german.context
    linked = images[u("/img/about-de.png")]
    assert (linked.role, linked.link_target, linked.existing_alt) == (
        "functional",
        u("/about.html"),
        "Über uns",
    )
    assert u("/img/commented.jpg") not in images
    assert u("/img/cut-off.png") not in images

    # windows-1252 from <meta>, and <base href="/assets/"> for the relative src.
    photo = images[u("/assets/photo.jpg")]
    assert photo.page_url == u("/blog/post.html")
    assert photo.language is None
    assert photo.context is not None
    assert "Section: Our new café" in photo.context
    assert u("/img/secret.png") not in images
    assert not any(i.image_url.startswith("data:") for i in report.images)


async def test_max_pages_bounds_the_requests_for_pages(
    site: Site, client: httpx.AsyncClient
) -> None:
    report = await run(site, client, max_pages=2)
    assert report.pages == [site.url("/index.html"), site.url("/about.html")]
    page_requests = [r.path for r in site.host.requests if r.path != "/robots.txt"]
    assert page_requests == ["/index.html", "/about.html"]
    assert site.url("/img/team-1600.webp") in by_url(report)


async def test_max_images_stops_the_crawl(site: Site, client: httpx.AsyncClient) -> None:
    report = await run(site, client, max_images=3)
    assert [i.image_url for i in report.images] == [
        site.url("/img/logo.png"),
        site.url("/img/sourdough.jpg"),
        site.url("/img/divider.png"),
    ]
    assert report.pages == [site.url("/index.html")]


async def test_requests_to_one_host_wait_the_delay(site: Site, client: httpx.AsyncClient) -> None:
    sleep = FakeSleep()
    report = await run(site, client, max_pages=3, delay_s=30.0, sleep=sleep)
    requests = len(site.host.requests)
    assert requests == 4  # robots.txt and three pages
    assert len(report.pages) == 3
    # The first request waits for nothing; each later one for the delay, less the (real, short)
    # time since the previous request ended.
    assert len(sleep.waits) == requests - 1
    assert all(29.0 < w <= 30.0 for w in sleep.waits), sleep.waits


async def test_a_longer_crawl_delay_in_robots_txt_wins(
    site: Site, client: httpx.AsyncClient
) -> None:
    robots = (SITE / "robots.txt").read_bytes() + b"Crawl-delay: 45\n"
    site.serve("/robots.txt", robots, "text/plain")
    sleep = FakeSleep()
    await run(site, client, max_pages=2, delay_s=1.0, sleep=sleep)
    assert len(sleep.waits) == 2
    assert all(44.0 < w <= 45.0 for w in sleep.waits), sleep.waits


async def test_a_crawl_delay_is_honoured_up_to_a_minute(
    site: Site, client: httpx.AsyncClient
) -> None:
    robots = (SITE / "robots.txt").read_bytes() + b"Crawl-delay: 86400\n"
    site.serve("/robots.txt", robots, "text/plain")
    sleep = FakeSleep()
    await run(site, client, max_pages=2, delay_s=1.0, sleep=sleep)
    assert sleep.waits
    assert all(59.0 < w <= 60.0 for w in sleep.waits), sleep.waits


async def test_robots_txt_missing_allows_everything(site: Site, client: httpx.AsyncClient) -> None:
    site.host.error("/robots.txt", 404)
    report = await run(site, client, "/index.html")
    assert report.disallowed == []
    assert site.url("/private/secret.html") in report.pages
    assert site.fetched("/private/secret.html") == 1


# -- a sitemap source ----------------------------------------------------------------------


async def test_sitemap_index_lists_the_pages_and_no_links_are_followed(
    site: Site, client: httpx.AsyncClient
) -> None:
    report = await run(site, client, "/sitemap_index.xml")
    u = site.url
    assert report.pages == [u("/index.html"), u("/about.html"), u("/blog/post.html")]
    assert report.disallowed == [u("/private/secret.html")]
    assert report.errors == [u("/missing.html") + ": HTTP 404"]
    for path in ("/sitemap-pages.xml", "/sitemap-blog.xml.gz", "/missing.html"):
        assert site.fetched(path) == 1, path
    # Linked from index.html, but a sitemap's crawl does not follow links.
    for path in ("/de/index.html", "/private/secret.html", "/big.html", "/old-about"):
        assert site.fetched(path) == 0, path
    assert u("/assets/photo.jpg") in by_url(report)


async def test_sitemap_max_pages(site: Site, client: httpx.AsyncClient) -> None:
    report = await run(site, client, "/sitemap-pages.xml", max_pages=1)
    assert report.pages == [site.url("/index.html")]
    assert site.fetched("/about.html") == 0


async def test_a_sitemap_sent_as_text_is_recognised_by_its_root(
    site: Site, client: httpx.AsyncClient
) -> None:
    site.serve("/sitemap.txt", (SITE / "sitemap-pages.xml").read_bytes(), "text/plain")
    report = await run(site, client, "/sitemap.txt")
    assert report.pages == [site.url("/index.html"), site.url("/about.html")]


# -- a source that cannot be crawled -------------------------------------------------------


async def test_a_source_that_answers_404_fails(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlFailed, match="answered HTTP 404"):
        await run(site, client, "/nowhere.html")


async def test_a_source_disallowed_by_robots_fails_unfetched(
    site: Site, client: httpx.AsyncClient
) -> None:
    with pytest.raises(CrawlFailed, match="does not allow AltTextBot"):
        await run(site, client, "/private/secret.html")
    assert site.fetched("/private/secret.html") == 0


async def test_another_user_agent_is_held_to_its_own_rules(
    site: Site, client: httpx.AsyncClient
) -> None:
    with pytest.raises(CrawlFailed, match="does not allow OtherBot"):
        await run(site, client, user_agent="OtherBot")
    assert site.fetched("/index.html") == 0


async def test_robots_txt_answering_5xx_disallows_everything(
    site: Site, client: httpx.AsyncClient
) -> None:
    site.host.error("/robots.txt", 503)
    with pytest.raises(CrawlFailed, match=r"HTTP 503.*RFC 9309"):
        await run(site, client)
    assert [r.path for r in site.host.requests] == ["/robots.txt"]


async def test_a_source_over_the_size_cap_fails(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlFailed, match="larger than the 100000 byte limit"):
        await run(site, client, "/big.html")


async def test_a_source_that_is_neither_page_nor_sitemap_fails(
    site: Site, client: httpx.AsyncClient
) -> None:
    site.host.image(
        "/feed.xml", b"<?xml version='1.0'?><rss><channel/></rss>", content_type="text/xml"
    )
    with pytest.raises(CrawlFailed, match=r"not a sitemap: its root element is <rss>"):
        await run(site, client, "/feed.xml")
    site.host.image("/logo.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    with pytest.raises(
        CrawlFailed, match=r"neither an HTML page nor a sitemap \(Content-Type image/png\)"
    ):
        await run(site, client, "/logo.png")


async def test_a_source_that_is_no_http_url_fails(client: httpx.AsyncClient) -> None:
    for source in ("ftp://example.org/", "example.org/index.html", "http://user:pw@example.org/"):
        with pytest.raises(CrawlFailed, match="not an absolute http"):
            await crawl(source, client=client, limits=LIMITS, max_pages=5, delay_s=0)


# -- the parts -----------------------------------------------------------------------------


def test_srcset_largest_candidate() -> None:
    assert largest_candidate("a.jpg 480w, b.jpg 1200w, c.jpg 800w") == "b.jpg"
    assert largest_candidate("a.jpg, b.jpg 2x, c.jpg 1.5x") == "b.jpg"
    assert largest_candidate("img/a,b.jpg 2x, c.jpg") == "img/a,b.jpg"
    assert largest_candidate("x.jpg 100w (junk, more), y.jpg 50w") == "x.jpg"
    assert largest_candidate("") is None
    assert largest_candidate(" , ,") is None


def test_decoding_follows_bom_then_declared_then_meta_then_utf8() -> None:
    cafe = "<p>café</p>"
    meta = b'<meta charset="iso-8859-1">' + cafe.encode("latin-1")
    assert decode_html(meta).endswith(cafe)
    assert decode_html(cafe.encode("cp1252"), "windows-1252") == cafe
    assert decode_html(b"\xef\xbb\xbf" + cafe.encode(), "latin-1") == cafe
    assert decode_html(cafe.encode("latin-1")) == "<p>caf\ufffd</p>"
    assert decode_html(b'<meta charset="no-such-thing">\xff').endswith("\ufffd")
    # An ASCII page that claims UTF-16 is read as UTF-8 (HTML standard).
    assert decode_html(b'<meta charset="utf-16"><p>ok</p>').endswith("<p>ok</p>")


def test_page_scan_keeps_the_title_base_links_and_picture_sources() -> None:
    page = scan_html_page(
        "<title>A &amp; B</title><base href='/x/'><base href='/y/'>"
        "<a href=one.html>1</a><map><area href='two.html'></map>"
        "<picture><source srcset='s.webp 2x'><source srcset='t.avif'><img src=i.png></picture>"
        "<img src=j.png srcset='j2.png 2x'><svg><title>not the page's</title></svg>"
    )
    assert (page.title, page.base, page.links) == ("A & B", "/x/", ["one.html", "two.html"])
    assert page.images[0].sources == ["s.webp 2x", "t.avif"]
    assert (page.images[1].sources, page.images[1].srcset) == ([], "j2.png 2x")


def test_context_is_capped_and_never_the_alt() -> None:
    long = "word " * 2000
    body = f"<title>T</title><h2>Hello</h2><p>{long}<img src=a.png alt='Hello'> after</p>"
    (image,) = read_page(body.encode(), "https://example.org/").images
    assert image.context is not None
    assert len(image.context) <= 2000
    assert "Section" not in image.context  # the heading is the alt, word for word
    assert "after" in image.context  # a long block gives way to the text next to the image


def test_link_targets_for_functional_images() -> None:
    body = (
        "<a href='mailto:hi@example.org'><img src=m.png></a>"
        "<a href='javascript:go()' aria-label='Go'><img src=j.png></a>"
        "<a href='#'><img src=h.png></a>"
        "<a href='/shop'><img src=s.png> Shop</a>"
        "<button><img src=b.png></button>"
    )
    images = read_page(body.encode(), "https://example.org/x/").images
    assert [(i.role, i.link_target) for i in images] == [
        ("functional", "mailto:hi@example.org"),
        ("functional", "Go"),
        ("functional", None),
        (None, None),  # the link has text of its own: the image is not its only content
        ("functional", None),
    ]


def test_sitemap_parsing_refuses_doctypes_and_bombs() -> None:
    entities = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>'
        b"<urlset><url><loc>&a;</loc></url></urlset>"
    )
    with pytest.raises(NotASitemap, match="DOCTYPE"):
        parse_sitemap(entities, 1_000_000)
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    with pytest.raises(NotASitemap, match="larger than the 1000000 byte limit once unpacked"):
        parse_sitemap(bomb, 1_000_000)
    with pytest.raises(NotASitemap, match="not well-formed"):
        parse_sitemap(b"<urlset><url>", 1_000)
    plain = parse_sitemap(
        b"<urlset><url><loc> https://a/ </loc></url><loc>stray</loc>"
        b"<url><x><loc>nested</loc></x></url><url><loc/></url></urlset>",
        1_000,
    )
    assert (plain.kind, plain.locs) == ("urlset", ["https://a/"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "<img",
                    " src=",
                    "srcset='",
                    "a.png 2x,",
                    "<a href=",
                    "<button>",
                    "<picture>",
                    "<source srcset=",
                    "</a>",
                    "<figure>",
                    "<figcaption>",
                    "</figure>",
                    "<h1>",
                    "<title>",
                    "</title>",
                    "<base href=",
                    "<html lang=",
                    '"',
                    "'",
                    ">",
                    "<!--",
                    "<script>",
                    "alt=",
                    "//x",
                    "data:",
                    "javascript:",
                    "#",
                    "&amp;",
                    "&#0;",
                    "<meta charset=",
                    "utf-16",
                    "\x00",
                    "\ud800",
                    "http://[::1",
                    "%zz",
                ]
            ),
            st.text(max_size=8),
        ),
        max_size=60,
    )
)
def test_malformed_html_never_raises(parts: list[str]) -> None:
    body = "".join(parts).encode("utf-8", "surrogatepass")
    scan = read_page(body, "https://example.org/dir/page.html")
    for image in scan.images:
        assert image.image_url.startswith(("http://", "https://"))
        assert "#" not in image.image_url
        assert image.context is None or len(image.context) <= 2000
    assert all(link.startswith(("http://", "https://")) for link in scan.links)
