"""Server-side request forgery, beyond tests/describe/test_fetch.py: every forbidden address
class in every notation a URL can carry it in, resolvers that mix or change their answers (DNS
rebinding: the connection must go to the address that was checked), redirects into private
space, servers that drip or never end, and the same checks on webhook URLs (at job creation,
``alttext.jobs.service.checked_url``, and at delivery, ``webhook_delivery.send_attempt``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import uvicorn

from alttext.describe import fetch
from alttext.describe.errors import ImageFetchFailed, ImageTooLarge
from alttext.describe.fetch import (
    FetchLimits,
    IPAddress,
    fetch_image,
    fetch_url,
    is_forbidden_address,
    parse_ip_host,
)
from alttext.errors import InvalidRequest
from alttext.jobs.service import checked_url
from alttext.jobs.webhook_delivery import Claimed, send_attempt
from alttext.process import Services
from tests.conftest import make_settings
from tests.describe.test_fetch import (
    PNGISH,
    FakeResolver,
    loopback_only,
    no_network_client,
)
from tests.fakes.fixtures import running_image_host
from tests.fakes.tls import tls_material
from tests.processes import free_port

# -- every forbidden class, every notation ---------------------------------------------------

# One address per forbidden IPv4 range (docs: alttext.describe.fetch._FORBIDDEN_V4), edges too.
FORBIDDEN_V4 = [
    "0.0.0.0",
    "0.255.255.255",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.0",
    "100.127.255.255",
    "127.0.0.1",
    "127.255.255.255",
    "169.254.0.0",
    "169.254.169.254",
    "172.16.0.0",
    "172.31.255.255",
    "192.0.0.0",
    "192.0.0.255",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.1",
    "192.168.255.255",
    "198.18.0.0",
    "198.19.255.255",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "239.255.255.255",
    "240.0.0.1",
    "255.255.255.255",
]
# IPv6 ranges, and IPv6 forms that carry a forbidden IPv4 address.
FORBIDDEN_V6 = [
    "::",
    "::1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254, in hex
    "::ffff:0:7f00:1",  # SIIT IPv4-translated (::ffff:0:0:0/96)
    "64:ff9b::7f00:1",  # NAT64 well-known prefix, 127.0.0.1
    "64:ff9b::a00:1",  # NAT64, 10.0.0.1
    "64:ff9b::169.254.169.254",  # NAT64, dotted tail
    "64:ff9b:1::1",  # local-use NAT64
    "100::1",  # discard
    "2001::1",  # Teredo
    "2001:db8::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fdff:ffff::1",
    "fe80::1",
    "febf:ffff::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
]


def v4_notations(address: str) -> list[str]:
    """The IPv4 address as a URL host, every way inet_aton (and so a C resolver) reads it."""
    a, b, c, d = (int(p) for p in address.split("."))
    n = int(ipaddress.IPv4Address(address))
    return sorted(
        {
            address,
            f"{address}.",  # trailing dot
            str(n),  # one decimal number
            hex(n),  # one hex number
            hex(n).upper().replace("X", "x"),  # upper-case digits
            "0X" + format(n, "X"),  # upper-case prefix
            "0" + format(n, "o"),  # one octal number
            f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",  # octal parts
            f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",  # hex parts
            f"{a}.{b}.{c << 8 | d}",  # a.b.c (the last part fills 16 bits)
            f"{a}.{b << 16 | c << 8 | d}",  # a.b (24 bits)
            f"{a:#x}.0{b:o}.{c << 8 | d}",  # mixed
        }
    )


def v6_notations(address: str) -> list[str]:
    ip = ipaddress.IPv6Address(address)
    forms = {address, ip.compressed, ip.exploded, ip.exploded.upper(), ip.compressed.upper()}
    if ip.ipv4_mapped is not None:
        forms.add(f"::ffff:{ip.ipv4_mapped}")
        forms.add(f"0:0:0:0:0:ffff:{ip.ipv4_mapped}")
    if ip in ipaddress.IPv6Network("fe80::/10"):
        forms.update({f"{ip.compressed}%25eth0", f"{ip.compressed}%25lo", f"{ip.compressed}%251"})
    return sorted(forms)


LITERAL_HOSTS = sorted(
    {host for a in FORBIDDEN_V4 for host in v4_notations(a)}
    | {f"[{host}]" for a in FORBIDDEN_V6 for host in v6_notations(a)}
)


@pytest.mark.parametrize("address", FORBIDDEN_V4 + FORBIDDEN_V6)
def test_every_forbidden_class_is_forbidden(address: str) -> None:
    assert is_forbidden_address(address)


@pytest.mark.parametrize("host", LITERAL_HOSTS)
def test_every_notation_parses_to_the_address_it_means(host: str) -> None:
    """The parser agrees with inet_aton (IPv4) and the address module (IPv6): a notation it
    misread would slip past as a name."""
    parsed = parse_ip_host(host)
    assert parsed is not None
    if ":" not in host:
        expected = ipaddress.IPv4Address(socket.inet_aton(host.removesuffix(".")))
        assert parsed == expected
    assert is_forbidden_address(parsed)


@pytest.mark.parametrize("scheme", ["http", "HtTpS"])
@pytest.mark.parametrize("host", LITERAL_HOSTS)
async def test_every_forbidden_literal_url_is_refused_before_any_connection(
    host: str, scheme: str
) -> None:
    resolver = FakeResolver({})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed) as caught:
            await fetch_image(f"{scheme}://{host}:8080/a.png", client, resolve=resolver)
    assert caught.value.http_status == 400
    assert resolver.calls == []  # a literal is never looked up
    assert seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127。0。0。1/",  # ideographic full stops: IDNA maps them to dots
        "http://127．0．0．1/",  # fullwidth full stops
        "http://[::ffff:127.0.0.1]./",
        "http://[fe80::1%25eth0]:80/",
        "http://[FE80::1%25ETH0]/",
        "http://[::]:80/",
        "http://0:8000/",
        "http://0x0/",
        "http://[0:0:0:0:0:0:0:1]/",
    ],
)
async def test_unicode_and_odd_literal_forms_are_refused(url: str) -> None:
    resolver = FakeResolver({})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed):
            await fetch_image(url, client, resolve=resolver)
    assert seen == []


@pytest.mark.parametrize("name", ["Evil.Example", "EVIL.EXAMPLE.", "evil.example.", "eViL.eXaMpLe"])
async def test_names_are_resolved_case_folded_and_their_answers_checked(name: str) -> None:
    """Upper case and a trailing dot change nothing: the answer is what is checked."""
    resolver = FakeResolver({"evil.example": ["169.254.169.254"], "evil.example.": ["10.0.0.1"]})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed, match="private"):
            await fetch_image(f"http://{name}/a.png", client, resolve=resolver)
    assert [host for host, _ in resolver.calls] == [name.lower()]
    assert seen == []


# -- resolvers that mix answers or change them -----------------------------------------------

PUBLIC = "93.184.216.34"
PUBLIC_2 = "93.184.216.35"


@pytest.mark.parametrize(
    "answers",
    [
        [PUBLIC, "10.0.0.1"],
        [PUBLIC, PUBLIC_2, "127.0.0.1"],
        [PUBLIC, "2606:2800:220:1::1", "::1"],
        [PUBLIC, "::ffff:169.254.169.254"],
        [PUBLIC, "64:ff9b::a9fe:a9fe"],
        [PUBLIC, "2002:a9fe:a9fe::1"],
        [PUBLIC, "fe80::1%eth0"],
        ["2606:2800:220:1::1", "fd00::1"],
        [PUBLIC] * 20 + ["192.168.1.1"],
    ],
)
async def test_any_private_answer_refuses_even_after_public_ones(answers: list[str]) -> None:
    resolver = FakeResolver({"mixed.example": answers})
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed, match="private"):
            await fetch_image("http://mixed.example/a.png", client, resolve=resolver)
    assert seen == []


@pytest.mark.parametrize("answers", [["not an address"], ["127.1"], ["1.2.3.4/8"], [""]])
async def test_answers_that_are_not_addresses_refuse(answers: list[str]) -> None:
    client, seen = no_network_client()
    async with client:
        with pytest.raises(ImageFetchFailed, match="resolve"):
            await fetch_image(
                "http://odd.example/a.png", client, resolve=FakeResolver({"odd.example": answers})
            )
    assert seen == []


class RebindingResolver:
    """Answers ``answers[i]`` on the i-th lookup (the last one from then on): a DNS server
    with a zero TTL that tells each asker something else."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


class RecordingPolicy:
    """The default policy, recording every address it was asked about."""

    def __init__(self, allowed: Callable[[IPAddress], bool] | None = None) -> None:
        self.checked: list[IPAddress] = []
        self._allowed = allowed or (lambda ip: not is_forbidden_address(ip))

    def __call__(self, ip: IPAddress) -> bool:
        self.checked.append(ip)
        return self._allowed(ip)


async def test_rebinding_resolver_the_connection_goes_to_the_checked_address() -> None:
    """Public on the check, private on any later lookup: there is no later lookup, and the
    request is aimed at the IP that was checked, the name only in Host (and SNI)."""
    resolver = RebindingResolver([PUBLIC], ["169.254.169.254"], ["127.0.0.1"])
    policy = RecordingPolicy()
    client, seen = no_network_client()
    async with client:
        body = await fetch_image(
            "https://rebind.example/a.png", client, resolve=resolver, address_allowed=policy
        )
    assert body == b"image bytes"
    assert resolver.calls == [("rebind.example", 443)]
    (request,) = seen
    assert policy.checked == [ipaddress.ip_address(PUBLIC)]
    assert request.url.host == str(policy.checked[0])  # the pinned IP is the checked one
    assert request.headers["host"] == "rebind.example"
    assert request.extensions["sni_hostname"] == "rebind.example"


async def test_rebinding_between_public_addresses_still_pins_the_checked_one() -> None:
    resolver = RebindingResolver([PUBLIC_2, PUBLIC], [PUBLIC])
    policy = RecordingPolicy()
    client, seen = no_network_client()
    async with client:
        await fetch_image(
            "http://rebind.example/a.png", client, resolve=resolver, address_allowed=policy
        )
    (request,) = seen
    assert request.url.host == PUBLIC_2 == str(policy.checked[0])
    assert len(resolver.calls) == 1


async def test_rebinding_after_a_redirect_to_the_same_name_is_refused() -> None:
    """Each hop is resolved and checked again: the second lookup's private answer refuses it,
    and the first hop went to the address checked for it."""
    resolver = RebindingResolver([PUBLIC], ["10.0.0.1"])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://rebind.example/next.png"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ImageFetchFailed, match="private"):
            await fetch_image("http://rebind.example/a.png", client, resolve=resolver)
    assert [r.url.host for r in seen] == [PUBLIC]
    assert len(resolver.calls) == 2


async def test_rebinding_against_a_real_socket(client: httpx.AsyncClient) -> None:
    """The fake image host on 127.0.0.1 (the only address the policy allows) answers; the
    resolver would say 10.0.0.1 on any second lookup, and nothing ever connects there."""
    with running_image_host() as host:
        host.image("/cat.png", PNGISH)
        resolver = RebindingResolver(["127.0.0.1"], ["10.0.0.1"])
        policy = RecordingPolicy(loopback_only)
        body = await fetch_image(
            host.url("/cat.png", host="images.test"),
            client,
            FetchLimits(total_timeout_s=5),
            resolve=resolver,
            address_allowed=policy,
        )
        assert body == PNGISH
        assert resolver.calls == [("images.test", host.port)]
        assert policy.checked == [ipaddress.ip_address("127.0.0.1")]
        assert [r.headers["host"] for r in host.requests] == [f"images.test:{host.port}"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


# -- TLS: a kept-alive connection must not carry another name -----------------------------


@contextmanager
def keep_alive_tls_host(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTP/1.1 server with keep-alive (unlike the fake image host's HTTP/1.0) whose
    certificate covers images.test only; yields its port and a client context trusting it."""
    client_ctx = tls_material(tmp_path, "images.test").client

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"image/png"), (b"content-length", b"5")],
            }
        )
        await send({"type": "http.response.body", "body": b"image"})

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(tmp_path / "leaf.pem"),
        ssl_keyfile=str(tmp_path / "leaf.key"),
        log_level="warning",
        lifespan="off",
        loop="asyncio",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "TLS host did not start"
        assert time.monotonic() < deadline, "TLS host did not start"
        time.sleep(0.02)
    try:
        yield port, client_ctx
    finally:
        server.should_exit = True
        thread.join(timeout=5)


async def test_a_tls_connection_opened_for_one_name_never_carries_another(
    tmp_path: Path,
) -> None:
    """Both names resolve to the same IP and port; the certificate covers only images.test.
    Were the first connection kept alive, the pool (keyed by IP and port) would hand it to
    other.test's request, whose name no certificate check would then ever have seen."""
    resolver = FakeResolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    limits = FetchLimits(allow_private=True, total_timeout_s=10)
    with keep_alive_tls_host(tmp_path) as (port, client_ctx):
        async with httpx.AsyncClient(verify=client_ctx, trust_env=False) as shared:
            url = f"https://images.test:{port}/a.png"
            assert await fetch_image(url, shared, limits, resolve=resolver) == b"image"
            with pytest.raises(ImageFetchFailed, match="ConnectError"):
                await fetch_image(
                    f"https://other.test:{port}/a.png", shared, limits, resolve=resolver
                )
            assert await fetch_image(url, shared, limits, resolve=resolver) == b"image"


# -- redirects into private space ------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "http://0x7f.1/",
        "http://0177.0.0.1:6379/",
        "http://127.1/",
        "http://127.0.0.1./",
        "HTTP://LOCALHOST/",
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[fd00:ec2::254]/",  # the IPv6 metadata endpoint of some clouds
        "http://0/",
        "//169.254.169.254/latest/meta-data/",  # scheme-relative
        "/../../169.254.169.254/",  # a path, on the same (public) host: followed, not refused
        "http://rebinder.example/",  # a name whose answer mixes public and private
        "http://100.100.100.200/",  # CGNAT-range metadata (some clouds)
        "https://192.168.0.1:8443/",
    ],
)
async def test_redirects_into_private_space_are_refused(location: str) -> None:
    """With the default policy: the first hop is public, its redirect is not."""
    resolver = FakeResolver(
        {
            "start.example": [PUBLIC],
            "localhost": ["127.0.0.1"],
            "rebinder.example": [PUBLIC, "10.1.1.1"],
        }
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) > 1:
            return httpx.Response(404)
        return httpx.Response(307, headers={"Location": location})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as redirecting:
        if location.startswith("/.."):
            with pytest.raises(ImageFetchFailed, match="HTTP 404"):
                await fetch_image("http://start.example/go", redirecting, resolve=resolver)
            assert [r.url.host for r in seen] == [PUBLIC, PUBLIC]
            return
        # Refused as private, or (httpx's stricter parse of a joined URL) as invalid.
        with pytest.raises(ImageFetchFailed, match=r"private|invalid"):
            await fetch_image("http://start.example/go", redirecting, resolve=resolver)
    assert [r.url.host for r in seen] == [PUBLIC]


# -- servers that drip, stall or never end -----------------------------------------------------


@asynccontextmanager
async def raw_server(
    respond: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers each connection with ``respond``."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await respond(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()


async def _drip_head(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Slow-loris from the server side: the status line and headers, one byte at a time."""
    w.write(b"HTTP/1.1 200 OK\r\n")
    while True:
        w.write(b"X")
        await w.drain()
        await asyncio.sleep(0.05)


async def _drip_chunks(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        w.write(b"1\r\n\x89\r\n")
        await w.drain()
        await asyncio.sleep(0.05)


async def _endless_chunks(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"%x\r\n%s\r\n" % (65536, bytes(65536))
    while True:
        w.write(block)
        await w.drain()


async def _endless_headers(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Headers that never end, at full speed (memory, not time, is the attack)."""
    w.write(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    while True:
        w.write(line * 64)
        await w.drain()


async def _lying_length(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Declares a small body, then sends an endless one (the rest is never read)."""
    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    while True:
        w.write(bytes(65536))
        await w.drain()


async def _silent(_r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


@pytest.mark.parametrize(
    ("respond", "error"),
    [
        (_drip_head, ImageFetchFailed),
        (_drip_chunks, ImageFetchFailed),
        (_endless_chunks, ImageTooLarge),
        (_endless_headers, ImageFetchFailed),
        (_silent, ImageFetchFailed),
    ],
)
async def test_slow_and_endless_servers_are_cut_by_the_deadline_or_the_cap(
    client: httpx.AsyncClient,
    respond: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    error: type[Exception],
) -> None:
    limits = FetchLimits(allow_private=True, total_timeout_s=1.5, max_bytes=2_000_000)
    async with raw_server(respond) as port:
        started = time.monotonic()
        with pytest.raises(error):
            await fetch_image(f"http://127.0.0.1:{port}/a.png", client, limits)
        # Cut by the fetcher's own limits, not by a client default minutes later.
        assert time.monotonic() - started < limits.total_timeout_s + 3


async def test_a_body_longer_than_its_length_is_read_to_the_length_only(
    client: httpx.AsyncClient,
) -> None:
    limits = FetchLimits(allow_private=True, total_timeout_s=3)
    async with raw_server(_lying_length) as port:
        assert await fetch_image(f"http://127.0.0.1:{port}/a.png", client, limits) == bytes(10)


async def test_the_deadline_covers_a_hanging_resolver() -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    client, seen = no_network_client()
    async with client:
        started = time.monotonic()
        with pytest.raises(ImageFetchFailed, match="timed out"):
            await fetch_image(
                "http://slow-dns.example/", client, FetchLimits(total_timeout_s=0.5), resolve=hang
            )
    assert time.monotonic() - started < 3
    assert seen == []


# -- webhooks: at job creation and at delivery -------------------------------------------------

WEBHOOK_LITERALS = [
    "http://127.0.0.1/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "http://0177.0.0.1/hook",
    "http://127.1:8080/hook",
    "http://127.0.0.1./hook",
    "HTTP://0X7F.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[2002:a00:1::1]/hook",
    "http://[fe80::1%25eth0]/hook",
    "http://[fd00::1]/hook",
    "http://127。0。0。1/hook",
    "https://10.0.0.1/hook",
    "http://0/hook",
]


@pytest.mark.parametrize("url", WEBHOOK_LITERALS)
def test_job_creation_refuses_private_literal_webhook_urls(url: str) -> None:
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    with pytest.raises(InvalidRequest) as caught:
        checked_url(url, "webhook_url", settings, "webhook")
    assert caught.value.errors
    assert caught.value.errors[0]["field"] == "webhook_url"


@pytest.mark.parametrize("url", ["http://hooks.example/in", "https://hooks.example:8443/a?b=c"])
def test_job_creation_leaves_names_to_the_delivery_check(url: str) -> None:
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    assert checked_url(url, "webhook_url", settings, "webhook") == url


def _services(client: httpx.AsyncClient, **settings: Any) -> Services:
    """The two parts of Services send_attempt uses."""
    values = {"webhook_timeout_s": 2.0, **settings}
    built = SimpleNamespace(
        settings=make_settings("sqlite+aiosqlite:///:memory:", **values),
        runtime=SimpleNamespace(http=client),
    )
    return cast(Services, built)


def _message(url: str) -> Claimed:
    return Claimed(
        id="msg_ssrf",
        account_id="acct_ssrf",
        event="job.completed",
        url=url,
        payload='{"type": "job.completed"}',
        attempt=1,
        created_at=datetime.now(UTC),
        secrets=("whsec_" + "A" * 43,),
    )


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> RebindingResolver:
    """Replaces DNS for send_attempt, which takes no resolver: public first, then private."""
    answers = RebindingResolver([PUBLIC], ["169.254.169.254"])
    mixed = FakeResolver(
        {"mixed.example": [PUBLIC, "10.0.0.1"], "metadata.example": ["169.254.169.254"]}
    )

    async def resolve(host: str, port: int) -> list[str]:
        if host == "rebind.example":
            return await answers(host, port)
        return await mixed(host, port)

    monkeypatch.setattr(fetch, "_getaddrinfo", resolve)
    return answers


@pytest.mark.parametrize(
    "url",
    [
        *WEBHOOK_LITERALS,
        "http://mixed.example/hook",
        "http://metadata.example/hook",
        "http://unknown.example/hook",  # does not resolve: a network error, not a send
    ],
)
async def test_webhook_delivery_never_sends_to_private_space(
    resolver: RebindingResolver, url: str
) -> None:
    client, seen = no_network_client()
    async with client:
        result = await send_attempt(_services(client), _message(url))
    assert result.outcome in ("refused", "network_error")
    if "unknown" not in url:
        assert result.outcome == "refused"
    assert seen == []


async def test_webhook_delivery_is_pinned_to_the_checked_address(
    resolver: RebindingResolver,
) -> None:
    client, seen = no_network_client()
    async with client:
        result = await send_attempt(_services(client), _message("https://rebind.example/hook"))
    assert result.outcome == "delivered"
    (request,) = seen
    assert request.method == "POST"
    assert request.url.host == PUBLIC
    assert request.headers["host"] == "rebind.example"
    assert request.extensions["sni_hostname"] == "rebind.example"
    assert len(resolver.calls) == 1


async def test_webhook_redirects_are_not_followed(resolver: RebindingResolver) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"Location": "http://169.254.169.254/"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await send_attempt(_services(client), _message("http://rebind.example/hook"))
    assert (result.outcome, result.status_code) == ("http_error", 307)
    assert [r.url.host for r in seen] == [PUBLIC]


async def test_fetch_url_post_checks_like_get() -> None:
    """The webhook's path in the fetcher (POST, no redirects) refuses like an image fetch."""
    client, seen = no_network_client()
    async with client:
        for url in ("http://0x7f.1/", "http://[::ffff:10.0.0.1]/", "http://mixed.example/"):
            with pytest.raises(ImageFetchFailed, match="private"):
                await fetch_url(
                    url,
                    client,
                    method="POST",
                    content=b"{}",
                    follow_redirects=False,
                    noun="webhook",
                    resolve=FakeResolver({"mixed.example": [PUBLIC, "10.0.0.1"]}),
                )
    assert seen == []
