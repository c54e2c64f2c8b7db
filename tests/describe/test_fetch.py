"""Safe URL fetching: address policy, URL checks, pinning, redirects, size and time caps."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from alttext.describe.errors import ImageFetchFailed, ImageTooLarge
from alttext.describe.fetch import (
    USER_AGENT,
    FetchLimits,
    IPAddress,
    RedirectRefused,
    fetch_image,
    fetch_url,
    is_forbidden_address,
    parse_ip_host,
)
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.tls import tls_material

LOCAL = FetchLimits(allow_private=True, total_timeout_s=10)
PNGISH = b"\x89PNG\r\n\x1a\n" + os.urandom(50_000)


@pytest.fixture
def host() -> Iterator[FakeImageHost]:
    with running_image_host() as h:
        yield h


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def loopback_only(ip: IPAddress) -> bool:
    """The policy for tests that reach the fake host but must see everything else refused."""
    return ip == ipaddress.IPv4Address("127.0.0.1")


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


class _Body(httpx.AsyncByteStream):
    """An unread body, as a real transport returns (content= would arrive already read)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def no_network_client() -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose transport records requests instead of connecting anywhere."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=_Body(b"image bytes"))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


# --- address policy -------------------------------------------------------------------------

FORBIDDEN = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.255",
    "169.254.169.254",
    "169.254.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.10",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible is deprecated: refused whatever it embeds
    "64:ff9b::127.0.0.1",  # NAT64
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "fec0::1",  # site-local
    "ff02::1",
    "100::1",
]
ALLOWED = [
    "8.8.8.8",
    "93.184.216.34",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "223.255.255.255",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2606:4700:4700::1111",
    "2a00:1450:4001:82a::200e",
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address)
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_allowed(address: str) -> None:
    assert not is_forbidden_address(address)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("0x7f.1", "127.0.0.1"),  # hex, short
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.0x10.0377.1", "10.16.255.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("017700000001", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[0:0:0:0:0:ffff:7f00:1]", "::ffff:7f00:1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
    ],
)
def test_parse_ip_host_notations(host: str, expected: str) -> None:
    ip = parse_ip_host(host)
    assert ip == ipaddress.ip_address(expected)
    assert ip is not None
    assert is_forbidden_address(ip)


@pytest.mark.parametrize("host", ["example.com", "images.test", "1.2.3.example", "0x7g.1", "a1"])
def test_parse_ip_host_leaves_names_to_dns(host: str) -> None:
    assert parse_ip_host(host) is None


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.1.1.1", "1.2.65536", "4294967296", "09.1.1.1", "[::zz]"]
)
def test_parse_ip_host_rejects_bad_numbers(host: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_host(host)


# --- URL checks (no network) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("file:///etc/passwd", "http"),
        ("ftp://example.com/a.png", "http"),
        ("gopher://example.com/", "http"),
        ("data:image/png;base64,iVBORw0KGgo=", "http"),
        ("javascript:alert(1)", "http"),
        ("example.com/a.png", "http"),
        ("http://user:secret@example.com/a.png", "password"),
        ("http://user@example.com/a.png", "password"),
        ("http:///a.png", "host"),
        ("http://" + "a" * 9000 + ".com/", "longer"),
        ("http://[::1/", "valid"),
    ],
)
async def test_refused_urls(url: str, detail: str) -> None:
    resolver = FakeResolver({"example.com": ["93.184.216.34"]})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed) as caught:
            await fetch_image(url, client, resolve=resolver)
    assert caught.value.http_status == 400
    assert detail in caught.value.detail
    assert "secret" not in caught.value.detail
    assert seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://[fd00::1]:8080/",
        "http://0.0.0.0:8000/",
        "https://10.0.0.1/",
        "http://1.2.3.4.5/",
    ],
)
async def test_forbidden_literal_hosts_refused_without_dns(url: str) -> None:
    resolver = FakeResolver({})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed):
            await fetch_image(url, client, resolve=resolver)
    assert resolver.calls == []
    assert seen == []


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.1"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["93.184.216.34", "10.0.0.1"],  # one bad answer among good ones is enough
        ["::1", "93.184.216.34"],
        ["fe80::1%eth0"],
    ],
)
async def test_names_resolving_to_forbidden_addresses_refused(answers: list[str]) -> None:
    resolver = FakeResolver({"evil.example": answers})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed) as caught:
            await fetch_image("http://evil.example/cat.png", client, resolve=resolver)
    assert "private" in caught.value.detail
    assert resolver.calls == [("evil.example", 80)]
    assert seen == []


async def test_default_resolver_refuses_localhost(host: FakeImageHost) -> None:
    host.image("/cat.png", PNGISH)
    async with httpx.AsyncClient(trust_env=False) as real_client:
        with pytest.raises(ImageFetchFailed, match="private"):
            await fetch_image(host.url("/cat.png", host="localhost"), real_client)
    assert host.requests == []


async def test_unresolvable_host_fails_cleanly() -> None:
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed, match="resolve"):
            await fetch_image("https://nx.example/a.png", client, resolve=FakeResolver({}))
    assert seen == []


async def test_request_is_pinned_to_checked_address_with_sni() -> None:
    resolver = FakeResolver({"images.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    client, seen = no_network_client()
    async with client:
        body = await fetch_image(
            "https://images.example/a/b.png?x=1#frag", client, resolve=resolver
        )
    assert body == b"image bytes"
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34/a/b.png?x=1"
    assert request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept"] == "image/*"
    assert resolver.calls == [("images.example", 443)]


async def test_ipv6_answer_is_bracketed_and_port_kept() -> None:
    resolver = FakeResolver({"images.example": ["2606:2800:220:1::1"]})
    client, seen = no_network_client()
    async with client:
        await fetch_image("http://images.example:8080/a.png", client, resolve=resolver)
    (request,) = seen
    assert str(request.url) == "http://[2606:2800:220:1::1]:8080/a.png"
    assert request.headers["host"] == "images.example:8080"
    assert "sni_hostname" not in request.extensions
    assert resolver.calls == [("images.example", 8080)]


async def test_public_literal_is_not_resolved() -> None:
    resolver = FakeResolver({})
    client, seen = no_network_client()
    async with client:
        await fetch_image("https://93.184.216.34/a.png", client, resolve=resolver)
    assert resolver.calls == []
    assert seen[0].url.host == "93.184.216.34"
    assert "sni_hostname" not in seen[0].extensions


# --- against the fake image host ------------------------------------------------------------


async def test_success_returns_exact_bytes(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.image("/cat.png", PNGISH)
    assert await fetch_image(host.url("/cat.png"), client, LOCAL) == PNGISH
    (request,) = host.requests_to("/cat.png")
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept"] == "image/*"


async def test_content_type_is_not_trusted(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.image("/page", PNGISH, content_type="text/html")
    assert await fetch_image(host.url("/page"), client, LOCAL) == PNGISH


async def test_private_address_refused_by_default(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.image("/cat.png", PNGISH)
    with pytest.raises(ImageFetchFailed, match="private"):
        await fetch_image(host.url("/cat.png"), client)
    assert host.requests == []


async def test_dns_rebinding_connects_to_checked_address(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    """The request goes to the address that was checked, with the name only in Host."""
    host.image("/cat.png", PNGISH)
    resolver = FakeResolver({"images.test": ["127.0.0.1"]})
    body = await fetch_image(
        host.url("/cat.png", host="images.test"), client, LOCAL, resolve=resolver
    )
    assert body == PNGISH
    # Resolved once; the transport never looked the name up (it could not: images.test is fake).
    assert resolver.calls == [("images.test", host.port)]
    (request,) = host.requests_to("/cat.png")
    assert request.headers["host"] == f"images.test:{host.port}"


async def test_client_defaults_and_jar_are_left_alone(host: FakeImageHost) -> None:
    host.image("/cat.png", PNGISH, headers={"Set-Cookie": "track=1; Path=/"})
    async with httpx.AsyncClient(
        trust_env=False, headers={"Authorization": "Bearer provider-key"}
    ) as shared:
        assert await fetch_image(host.url("/cat.png"), shared, LOCAL) == PNGISH
        assert len(shared.cookies.jar) == 0
    assert "authorization" not in host.requests_to("/cat.png")[0].headers


@pytest.mark.parametrize("status", [404, 500, 403])
async def test_error_status_fails(
    host: FakeImageHost, client: httpx.AsyncClient, status: int
) -> None:
    host.error("/missing.png", status)
    with pytest.raises(ImageFetchFailed) as caught:
        await fetch_image(host.url("/missing.png"), client, LOCAL)
    assert str(status) in caught.value.detail
    assert caught.value.http_status == 400


async def test_empty_body_fails(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.image("/empty.png", b"")
    with pytest.raises(ImageFetchFailed, match="empty"):
        await fetch_image(host.url("/empty.png"), client, LOCAL)


async def test_compressed_body_refused(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.image("/bomb.png", b"\x1f\x8b" + bytes(100), headers={"Content-Encoding": "gzip"})
    with pytest.raises(ImageFetchFailed, match="gzip"):
        await fetch_image(host.url("/bomb.png"), client, LOCAL)


async def test_connection_refused_fails(client: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ImageFetchFailed, match="Could not fetch"):
        await fetch_image(f"http://127.0.0.1:{port}/a.png", client, LOCAL)


async def test_next_address_is_tried_when_the_first_refuses(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    """A name whose first address is unreachable still works, as in a browser (a host with an
    IPv6 address on an IPv4-only network); nothing reached the refused address."""
    host.image("/cat.png", PNGISH)
    resolver = FakeResolver({"images.test": ["127.0.0.2", "127.0.0.1"]})  # only .1 listens
    body = await fetch_image(
        host.url("/cat.png", host="images.test"), client, LOCAL, resolve=resolver
    )
    assert body == PNGISH
    assert len(host.requests_to("/cat.png")) == 1


async def test_every_address_refusing_fails(client: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resolver = FakeResolver({"images.test": ["127.0.0.2", "127.0.0.1"]})
    with pytest.raises(ImageFetchFailed, match=r"Could not fetch the image from 'images\.test'"):
        await fetch_image(f"http://images.test:{port}/a.png", client, LOCAL, resolve=resolver)


# --- redirects ------------------------------------------------------------------------------


async def test_redirects_followed_up_to_the_limit(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.redirect("/r1", host.url("/r2"), status=301)
    host.redirect("/r2", "/r3?x=1", status=307)  # relative Location
    host.redirect("/r3", "final.png", status=308)  # relative to /r3
    host.image("/final.png", PNGISH)
    assert await fetch_image(host.url("/r1"), client, LOCAL) == PNGISH
    assert [r.path for r in host.requests] == ["/r1", "/r2", "/r3?x=1", "/final.png"]


async def test_too_many_redirects_refused(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    for i in range(4):
        host.redirect(f"/r{i}", f"/r{i + 1}", status=302)
    host.image("/r4", PNGISH)
    with pytest.raises(ImageFetchFailed, match="more than 3"):
        await fetch_image(host.url("/r0"), client, LOCAL)
    assert host.requests_to("/r4") == []


async def test_redirect_loop_refused(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.redirect("/loop", "/loop", status=303)
    with pytest.raises(ImageFetchFailed, match="redirected more than"):
        await fetch_image(host.url("/loop"), client, LOCAL)
    assert len(host.requests) == 4


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/",
        "http://2852039166/",  # 169.254.169.254 in decimal
        "http://metadata.internal/",
    ],
)
async def test_redirect_to_forbidden_address_refused(
    host: FakeImageHost, client: httpx.AsyncClient, location: str
) -> None:
    host.redirect("/go", location)
    resolver = FakeResolver({"metadata.internal": ["169.254.169.254"]})
    with pytest.raises(ImageFetchFailed, match="private"):
        await fetch_image(host.url("/go"), client, resolve=resolver, address_allowed=loopback_only)
    assert [r.path for r in host.requests] == ["/go"]


async def test_a_refused_redirect_target_is_never_resolved_or_fetched(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.redirect("/go", "http://elsewhere.test/page.html")
    resolver = FakeResolver({"elsewhere.test": ["127.0.0.1"]})
    with pytest.raises(RedirectRefused) as refused:
        await fetch_url(
            host.url("/go"),
            client,
            LOCAL,
            noun="page",
            redirect_allowed=lambda url: "elsewhere" not in url,
            resolve=resolver,
        )
    assert refused.value.target == "http://elsewhere.test/page.html"
    assert "The page URL redirected to http://elsewhere.test/page.html" in refused.value.detail
    assert resolver.calls == []
    assert [r.path for r in host.requests] == ["/go"]


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/a"]
)
async def test_redirect_to_other_scheme_refused(
    host: FakeImageHost, client: httpx.AsyncClient, location: str
) -> None:
    host.redirect("/go", location)
    with pytest.raises(ImageFetchFailed, match="Only http"):
        await fetch_image(host.url("/go"), client, LOCAL)


async def test_redirect_to_credentials_refused(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.redirect("/go", host.url("/cat.png").replace("://", "://admin:pw@"))
    with pytest.raises(ImageFetchFailed, match="password"):
        await fetch_image(host.url("/go"), client, LOCAL)


async def test_redirect_without_location_fails(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.image("/go", b"", status=302)
    with pytest.raises(ImageFetchFailed, match="Location"):
        await fetch_image(host.url("/go"), client, LOCAL)


# --- size and time caps ---------------------------------------------------------------------


async def test_declared_length_over_cap_refused_before_reading(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    # The body never comes: reading it would end in the timeout, not ImageTooLarge.
    host.stall("/big.png", headers={"Content-Length": str(10**12)})
    limits = FetchLimits(allow_private=True, max_bytes=1000, total_timeout_s=30)
    with pytest.raises(ImageTooLarge) as caught:
        await fetch_image(host.url("/big.png"), client, limits)
    assert caught.value.http_status == 413


async def test_streamed_body_over_cap_refused(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.huge("/big.png", 50_000_000, declare_length=False)
    limits = FetchLimits(allow_private=True, max_bytes=1_000_000, total_timeout_s=30)
    with pytest.raises(ImageTooLarge):
        await fetch_image(host.url("/big.png"), client, limits)


async def test_body_exactly_at_cap_accepted(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.huge("/edge.png", 300_000, declare_length=False)
    limits = FetchLimits(allow_private=True, max_bytes=300_000)
    assert await fetch_image(host.url("/edge.png"), client, limits) == bytes(300_000)


async def test_slow_drip_cut_by_total_timeout(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.drip("/drip.png")
    limits = FetchLimits(allow_private=True, total_timeout_s=1)
    with pytest.raises(ImageFetchFailed, match="timed out"):
        await fetch_image(host.url("/drip.png"), client, limits)


async def test_response_that_never_starts_cut(
    host: FakeImageHost, client: httpx.AsyncClient
) -> None:
    host.stall("/stall.png")
    limits = FetchLimits(allow_private=True, total_timeout_s=1)
    with pytest.raises(ImageFetchFailed, match="timed out"):
        await fetch_image(host.url("/stall.png"), client, limits)


async def test_deadline_spans_redirects(host: FakeImageHost, client: httpx.AsyncClient) -> None:
    host.redirect("/go", "/stall.png")
    host.stall("/stall.png")
    limits = FetchLimits(allow_private=True, total_timeout_s=1)
    with pytest.raises(ImageFetchFailed, match="timed out"):
        await fetch_image(host.url("/go"), client, limits)


# --- TLS: SNI and certificate checks use the name, the socket uses the checked IP ------------


async def test_https_verifies_certificate_against_hostname(tmp_path: Path) -> None:
    tls = tls_material(tmp_path, "images.test")
    server_ctx, client_ctx = tls.server, tls.client
    resolver = FakeResolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with running_image_host(server_ctx) as tls_host:
        tls_host.image("/cat.png", PNGISH)
        async with httpx.AsyncClient(verify=client_ctx, trust_env=False) as tls_client:
            body = await fetch_image(
                tls_host.url("/cat.png", host="images.test"), tls_client, LOCAL, resolve=resolver
            )
            assert body == PNGISH
            # Same socket address, but the certificate does not cover this name.
            with pytest.raises(ImageFetchFailed, match="ConnectError"):
                await fetch_image(
                    tls_host.url("/cat.png", host="other.test"),
                    tls_client,
                    LOCAL,
                    resolve=resolver,
                )
    assert [r.headers["host"] for r in tls_host.requests] == [f"images.test:{tls_host.port}"]
