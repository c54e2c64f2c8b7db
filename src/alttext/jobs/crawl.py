"""The crawl of a bulk job's source (API.md "Crawling"): the images of one site, found politely.

The source is an HTML page, whose same-origin links are followed breadth-first, or a sitemap
(or sitemap index), whose pages are the crawl and whose links are not followed. robots.txt is
read once per origin and honoured for the user agent; requests to one host keep at least the
delay apart (or the site's Crawl-delay, if longer). Every request goes through the SSRF-safe
fetcher with its size and time caps. One page failing is a line in the report; only a source
that cannot be crawled at all raises :class:`CrawlFailed`.

A library with no database: the job runner stores what :func:`crawl` returns.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from alttext.describe.errors import ImageFetchFailed, ImageTooLarge
from alttext.describe.fetch import Fetched, FetchLimits, RedirectRefused
from alttext.jobs.pages import (
    CrawledImage,
    Origin,
    PageScan,
    absolute,
    is_html,
    looks_like_page,
    origin_of,
    read_page,
)
from alttext.jobs.robots import PoliteFetcher, Robots, Sleep, load_robots
from alttext.jobs.sitemaps import NotASitemap, Sitemap, might_be_sitemap, parse_sitemap

__all__ = ["CrawlFailed", "CrawlReport", "CrawledImage", "crawl"]

_SOURCE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.1"
_PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
_SITEMAP_ACCEPT = "application/xml,text/xml;q=0.9,*/*;q=0.1"
# Sitemap files read for one crawl: each costs a request and a delay, and an index may list
# thousands when a few hundred pages are wanted.
_MAX_SITEMAPS = 100


@dataclass
class CrawlReport:
    images: list[CrawledImage] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)  # fetched and parsed
    disallowed: list[str] = field(default_factory=list)  # skipped: robots.txt says no
    errors: list[str] = field(default_factory=list)  # "<url>: <why>", pages that failed


class CrawlFailed(Exception):
    """The source could not be crawled at all (fetched, parsed or allowed); says why, for people."""


async def crawl(
    source_url: str,
    *,
    client: httpx.AsyncClient,
    limits: FetchLimits,
    max_pages: int,
    delay_s: float,
    user_agent: str = "AltTextBot",
    max_images: int = 10_000,
    sleep: Sleep = asyncio.sleep,
) -> CrawlReport:
    """Crawl ``source_url`` (an HTML page or a sitemap) and report the images found, each
    image URL once, in document and crawl order; at most ``max_pages`` page requests."""
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    polite = PoliteFetcher(client, limits, delay_s, user_agent, sleep)
    return await _Crawler(polite, user_agent, max_pages, max_images, limits.max_bytes).run(
        source_url
    )


class _Crawler:
    def __init__(
        self, polite: PoliteFetcher, agent: str, max_pages: int, max_images: int, max_bytes: int
    ) -> None:
        self.http, self.agent = polite, agent
        self.max_pages, self.max_images, self.max_bytes = max_pages, max_images, max_bytes
        self.report = CrawlReport()
        self.robots: dict[Origin, Robots] = {}
        self.origin: Origin = ("", "", None)
        self.parsed: set[str] = set()
        self.image_urls: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.report.images) >= self.max_images

    async def run(self, source_url: str) -> CrawlReport:
        start = absolute(source_url, source_url)
        if start is None:
            raise CrawlFailed(
                f"The source {source_url[:200]!r} is not an absolute http(s) URL (without a user "
                "name or password)."
            )
        await self._check_source(start)
        try:
            fetched = await self.http.get(start, "page", _SOURCE_ACCEPT)
        except (ImageFetchFailed, ImageTooLarge) as exc:
            raise CrawlFailed(f"The source {start} could not be fetched: {exc.detail}") from None
        if not 200 <= fetched.status < 300:
            raise CrawlFailed(f"The source {start} answered HTTP {fetched.status}.")
        final = absolute(fetched.url, fetched.url) or start
        if origin_of(final) != origin_of(start):  # http -> https, example.org -> www.example.org
            await self._check_source(final)
        self.origin = origin_of(final)
        sitemap = await self._as_sitemap(final, fetched)
        if sitemap is not None:
            await self._from_sitemap(final, sitemap)
        elif is_html(fetched.content_type, fetched.body):
            await self._from_page(start, final, fetched)
        else:
            shown = fetched.content_type or "none"
            raise CrawlFailed(
                f"The source {final} is neither an HTML page nor a sitemap (Content-Type {shown})."
            )
        return self.report

    async def _check_source(self, url: str) -> None:
        robots = await self._robots(url)
        if robots.closed is not None:
            raise CrawlFailed(robots.closed)
        if not robots.allows(url, self.agent):
            raise CrawlFailed(f"{robots.url} does not allow {self.agent} to fetch {url}.")

    async def _robots(self, url: str) -> Robots:
        origin = origin_of(url)
        if origin not in self.robots:
            robots = await load_robots(url, self._get_robots)
            delay = robots.crawl_delay(self.agent)
            if delay is not None:
                self.http.slow_down(url, delay)
            self.robots[origin] = robots
        return self.robots[origin]

    async def _get_robots(self, url: str) -> Fetched:
        return await self.http.get(url, "robots.txt", "text/plain,*/*;q=0.1")

    async def _allowed(self, url: str) -> bool:
        if (await self._robots(url)).allows(url, self.agent):
            return True
        self.report.disallowed.append(url)
        return False

    async def _as_sitemap(self, url: str, fetched: Fetched) -> Sitemap | None:
        if not might_be_sitemap(fetched.content_type, fetched.body):
            return None
        try:
            return await asyncio.to_thread(parse_sitemap, fetched.body, self.max_bytes)
        except NotASitemap as exc:
            if is_html(fetched.content_type, fetched.body):
                return None
            raise CrawlFailed(f"The source {url} is not a sitemap: {exc}.") from None

    # -- an HTML source: breadth-first over same-origin links ------------------------------
    async def _from_page(self, start: str, final: str, fetched: Fetched) -> None:
        scan = await self._read(final, fetched)
        seen = {start, final}
        queue: deque[str] = deque()
        attempts = 1
        await self._enqueue(scan.links, seen, queue, attempts)
        while queue and attempts < self.max_pages and not self.full:
            url = queue.popleft()
            if url in self.parsed:  # reached earlier through a redirect
                continue
            attempts += 1
            found = await self._page(url)
            if found is not None:
                await self._enqueue(found.links, seen, queue, attempts)

    async def _enqueue(
        self, links: Iterable[str], seen: set[str], queue: deque[str], attempts: int
    ) -> None:
        for link in links:
            # Every queued URL becomes a request, so the queue never outgrows the page budget.
            if attempts + len(queue) >= self.max_pages:
                return
            if link in seen or origin_of(link) != self.origin or not looks_like_page(link):
                continue
            seen.add(link)
            if await self._allowed(link):
                queue.append(link)

    # -- a sitemap source: its pages, no links followed -------------------------------------
    async def _from_sitemap(self, url: str, sitemap: Sitemap) -> None:
        pages: list[str] = []
        listed: set[str] = set()
        maps: deque[tuple[str, Sitemap | None]] = deque([(url, sitemap)])
        visited = {url}
        while maps and len(pages) < self.max_pages:
            map_url, current = maps.popleft()
            current = current or await self._sitemap(map_url)
            for loc in current.locs if current else []:
                target = absolute(loc, map_url)
                if target is None or origin_of(target) != self.origin:
                    continue  # the protocol allows only the sitemap's own host
                if current is not None and current.kind == "sitemapindex":
                    if target not in visited and len(visited) <= _MAX_SITEMAPS:
                        visited.add(target)
                        if await self._allowed(target):
                            maps.append((target, None))
                elif len(pages) >= self.max_pages:
                    break
                elif target not in listed:
                    listed.add(target)
                    if await self._allowed(target):
                        pages.append(target)
        for page in pages:
            if self.full:
                return
            if page not in self.parsed:
                await self._page(page)

    async def _sitemap(self, url: str) -> Sitemap | None:
        fetched = await self._fetch(url, "sitemap", _SITEMAP_ACCEPT)
        if fetched is None:
            return None
        try:
            return await asyncio.to_thread(parse_sitemap, fetched.body, self.max_bytes)
        except NotASitemap as exc:
            self.report.errors.append(f"{url}: not a sitemap: {exc}")
            return None

    # -- one page ---------------------------------------------------------------------------
    async def _fetch(self, url: str, noun: str, accept: str) -> Fetched | None:
        """A 2xx answer from this crawl's origin and allowed there, or None (and why, noted)."""
        try:
            # Another host is outside the crawl: its redirect is noted, never followed.
            fetched = await self.http.get(url, noun, accept, self._on_origin)
        except RedirectRefused as refused:
            self.report.errors.append(f"{url}: redirected to another host ({refused.target})")
            return None
        except (ImageFetchFailed, ImageTooLarge) as exc:
            self.report.errors.append(f"{url}: {exc.detail}")
            return None
        if not 200 <= fetched.status < 300:
            self.report.errors.append(f"{url}: HTTP {fetched.status}")
            return None
        final = absolute(fetched.url, fetched.url) or url
        if final != url and not await self._allowed(final):
            return None
        return fetched

    def _on_origin(self, url: str) -> bool:
        return origin_of(url) == self.origin

    async def _page(self, url: str) -> PageScan | None:
        fetched = await self._fetch(url, "page", _PAGE_ACCEPT)
        if fetched is None or not is_html(fetched.content_type, fetched.body):
            return None  # a link to a file is no error
        final = absolute(fetched.url, fetched.url) or url
        if final in self.parsed:
            return None
        return await self._read(final, fetched)

    async def _read(self, url: str, fetched: Fetched) -> PageScan:
        # Tokenising megabytes of HTML is pure Python: off the event loop.
        scan = await asyncio.to_thread(read_page, fetched.body, url)
        self.parsed.add(url)
        self.report.pages.append(url)
        for image in scan.images:
            if self.full:
                break
            if image.image_url not in self.image_urls:
                self.image_urls.add(image.image_url)
                self.report.images.append(image)
        return scan
