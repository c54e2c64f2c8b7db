"""What a site asks of crawlers: robots.txt as RFC 9309 reads it, and a pace of requests.

robots.txt is read once per origin and applied with urllib.robotparser.

What the answer means: 2xx, the rules it holds; 4xx, "unavailable", so everything is allowed;
5xx or no answer at all, "unreachable", so nothing is (the site may be down and its rules
unknown, and a crawler must not take that as permission).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.robotparser import RobotFileParser

import httpx

from alttext.describe.errors import ImageFetchFailed, ImageTooLarge
from alttext.describe.fetch import Fetched, FetchLimits, fetch_url

Getter = Callable[[str], Awaitable[Fetched]]
Sleep = Callable[[float], Awaitable[None]]


MAX_CRAWL_DELAY_S = 60.0


@dataclass
class Robots:
    url: str  # where the rules were looked for
    rules: RobotFileParser
    closed: str | None = None  # why nothing may be fetched (5xx, unreachable), for people

    def allows(self, url: str, agent: str) -> bool:
        return self.closed is None and self.rules.can_fetch(agent, url)

    def crawl_delay(self, agent: str) -> float | None:
        if self.closed is not None:
            return None
        delay = self.rules.crawl_delay(agent)
        try:
            # Honoured up to a minute: a site asking for a day between pages would hold the job
            # for months; it gets the slowest crawl we do instead.
            return None if delay is None else min(MAX_CRAWL_DELAY_S, max(0.0, float(delay)))
        except ValueError:
            return None


def robots_url(page_url: str) -> str:
    return str(httpx.URL(page_url).copy_with(path="/robots.txt", query=None, fragment=None))


async def load_robots(page_url: str, get: Getter) -> Robots:
    """The rules of ``page_url``'s origin; ``get`` fetches (politely) and raises as fetch_url."""
    url = robots_url(page_url)
    rules = RobotFileParser(url)
    try:
        fetched = await get(url)
    except (ImageFetchFailed, ImageTooLarge) as exc:
        return Robots(url, rules, _closed(url, exc.detail))
    if 200 <= fetched.status < 300:
        text = fetched.body.decode("utf-8", "replace").removeprefix("\ufeff")
        rules.parse(text.splitlines())
        return Robots(url, rules)
    if 400 <= fetched.status < 500:
        rules.parse([])  # no rules: everything allowed
        return Robots(url, rules)
    return Robots(url, rules, _closed(url, f"it answered HTTP {fetched.status}"))


def _closed(url: str, why: str) -> str:
    why = why.rstrip(".")
    return (
        f"{url} could not be read ({why}); until it can, the site is treated as closed to "
        "crawlers (RFC 9309)."
    )


class PoliteFetcher:
    """fetch_url, keeping requests to one host ``delay`` apart (end of one to start of the
    next, so it holds whatever the requests' own duration)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: FetchLimits,
        delay_s: float,
        agent: str,
        sleep: Sleep,
    ) -> None:
        self.client, self.limits, self.sleep = client, limits, sleep
        self.delay_s = max(0.0, delay_s)
        self.headers = {"User-Agent": f"{agent} (+https://alttext.dev/bot)"}
        self.delays: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def slow_down(self, url: str, seconds: float) -> None:
        host = httpx.URL(url).host
        self.delays[host] = max(self.delays.get(host, self.delay_s), seconds)

    async def get(
        self,
        url: str,
        noun: str,
        accept: str,
        redirect_allowed: Callable[[str], bool] | None = None,
    ) -> Fetched:
        host = httpx.URL(url).host
        last = self.last.get(host)
        if last is not None:
            wait = last + self.delays.get(host, self.delay_s) - time.monotonic()
            if wait > 0:
                await self.sleep(wait)
        try:
            return await fetch_url(
                url,
                self.client,
                self.limits,
                noun=noun,
                accept=accept,
                headers=self.headers,
                redirect_allowed=redirect_allowed,
            )
        finally:
            self.last[host] = time.monotonic()
