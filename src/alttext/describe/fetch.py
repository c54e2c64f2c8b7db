"""Safe URL fetching for ``image_url``: the service fetches a URL a stranger gave it.

The threat is server-side request forgery, so every hop is checked the same way:

* only ``http`` and ``https``; no credentials in the URL;
* the host is resolved once, and *every* resolved address must be public (see
  :func:`is_forbidden_address`); IP literals in any notation inet_aton accepts (``2130706433``,
  ``0x7f.1``, ``0177.0.0.1``, ``127.1``) and IPv6 literals are parsed here, not by DNS;
* the request then goes to the address that was checked (URL host replaced by the IP, the real
  name in ``Host`` and, for https, in TLS SNI and certificate verification via httpcore's
  ``sni_hostname`` extension), so a DNS answer that changes between check and connect
  (rebinding) cannot redirect the connection;
* an https connection carries one request (``Connection: close``): the pool keys connections
  by scheme, IP and port, so a kept-alive one would serve the next request for *another* name
  at that address on the strength of the first name's certificate;
* redirects are followed by hand (at most ``max_redirects``), each target re-checked;
* the body is streamed with a byte cap, and one deadline covers DNS, every hop and the body.

Any port is allowed for public addresses: images legitimately live on :8080, :8443 and odd CDN
ports, and the address check (not the port) is what keeps internal services out of reach.

``Content-Type`` is ignored: the image module detects the format from the bytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from alttext.describe.errors import ImageFetchFailed, ImageTooLarge

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
AddressPolicy = Callable[[IPAddress], bool]

USER_AGENT = "AltTextAPI/0.1 (+https://alttext.dev/bot)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_URL_CHARS = 8192
# A host with more addresses than this is tried on its first few only: each refused connection
# costs a round trip inside the fetch's one overall timeout.
_MAX_ADDRESSES_TRIED = 4

# Ranges that are never a public web server, listed explicitly so the policy does not shift with
# the Python version's idea of ``is_global``.
_FORBIDDEN_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", incl. unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, incl. cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast
    )
)
_FORBIDDEN_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # unspecified, loopback and deprecated IPv4-compatible
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, incl. Teredo 2001::/32
        "2001:db8::/32",
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20_000_000
    total_timeout_s: float = 15.0
    max_redirects: int = 3
    allow_private: bool = False


def is_forbidden_address(address: IPAddress | str) -> bool:
    """True if ``address`` is not a public unicast address (loopback, private, link-local, ...).

    IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by that address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_forbidden_address(embedded)
        listed = any(ip in net for net in _FORBIDDEN_V6)
    else:
        listed = any(ip in net for net in _FORBIDDEN_V4)
    # The flags are a second net for anything the lists above miss.
    return (
        listed
        or not ip.is_global
        or ip.is_multicast
        or ip.is_private
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP address a URL host denotes, or None if it is a name to resolve.

    Accepts everything a C resolver would take as an address (so it cannot slip past as a
    "name"): bracketed or bare IPv6, and IPv4 in 1-4 parts, each decimal, octal (leading 0) or
    hex (0x), the last part filling the remaining bytes. Raises ValueError for numeric hosts
    that are not a valid address (``1.2.3.4.5``, ``256.1.1.1``, ``09.1.1.1``).
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return ipaddress.IPv6Address(unquote(text))
    text = text.removesuffix(".")
    labels = text.split(".")
    if not all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        return None
    if len(labels) > 4:
        raise ValueError(f"not an IPv4 address: {host!r}")
    *head, last = [_parse_ipv4_part(label) for label in labels]
    if any(part > 0xFF for part in head) or last >= 1 << (8 * (4 - len(head))):
        raise ValueError(f"not an IPv4 address: {host!r}")
    value = 0
    for part in head:
        value = value << 8 | part
    return ipaddress.IPv4Address(value << (8 * (4 - len(head))) | last)


def _parse_ipv4_part(label: str) -> int:
    if label.startswith("0x"):
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)  # ValueError for 8 and 9, as inet_aton refuses them
    return int(label)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class RedirectRefused(ImageFetchFailed):
    """A redirect the caller does not follow (see ``fetch_url``'s ``redirect_allowed``)."""

    def __init__(self, target: httpx.URL, noun: str) -> None:
        super().__init__(f"The {noun} URL redirected to {target}, which is not followed.")
        self.target = str(target)


@dataclass(frozen=True)
class Fetched:
    """What a request through the checks returned: where it ended up, and what it said."""

    url: str  # after redirects
    status: int
    content_type: str  # lower case, without parameters; "" if absent
    body: bytes


def _default_policy(limits: FetchLimits) -> AddressPolicy:
    if limits.allow_private:
        return lambda _ip: True
    return lambda ip: not is_forbidden_address(ip)


async def fetch_image(
    url: str,
    client: httpx.AsyncClient,
    limits: FetchLimits = FetchLimits(),
    *,
    resolve: Resolver | None = None,
    address_allowed: AddressPolicy | None = None,
) -> bytes:
    """GET ``url`` safely and return the body; raise ImageFetchFailed / ImageTooLarge.

    ``resolve`` (host, port) -> addresses replaces DNS and ``address_allowed`` replaces the
    address policy (which ``limits.allow_private`` otherwise switches off); both exist for tests.
    The shared ``client`` is used only for its transport (pool, TLS and proxy settings) and
    timeouts: its default headers, auth and cookie jar are neither sent nor changed. A client
    that sends https through an HTTP proxy fails closed (httpcore then checks the certificate
    against the IP), so build the fetching client without proxies.
    """
    fetched = await fetch_url(url, client, limits, resolve=resolve, address_allowed=address_allowed)
    if not 200 <= fetched.status < 300:
        raise ImageFetchFailed(f"The image URL returned HTTP {fetched.status} instead of an image.")
    if not fetched.body:
        raise ImageFetchFailed("The image URL returned an empty body.")
    return fetched.body


async def fetch_url(
    url: str,
    client: httpx.AsyncClient,
    limits: FetchLimits = FetchLimits(),
    *,
    noun: str = "image",
    method: str = "GET",
    accept: str = "image/*",
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = True,
    redirect_allowed: Callable[[str], bool] | None = None,
    resolve: Resolver | None = None,
    address_allowed: AddressPolicy | None = None,
) -> Fetched:
    """One request through every check above, for any caller: an image, a page to crawl
    (``noun="page"``), a webhook POST (``method="POST"``, no redirects followed). Any status is
    returned; failures to reach the URL raise ImageFetchFailed, a body over the cap
    ImageTooLarge, with ``noun`` naming what was fetched. A redirect to a URL that
    ``redirect_allowed`` refuses raises RedirectRefused before anything is sent there (a crawl
    stays on its own host)."""
    policy = address_allowed or _default_policy(limits)
    try:
        async with asyncio.timeout(limits.total_timeout_s):
            return await _fetch(
                url,
                client,
                limits,
                resolve or _getaddrinfo,
                policy,
                _Call(
                    noun, method, accept, content, headers or {}, follow_redirects, redirect_allowed
                ),
            )
    except TimeoutError:
        raise ImageFetchFailed(
            f"Fetching the {noun} timed out after {limits.total_timeout_s:g} s."
        ) from None


@dataclass(frozen=True)
class _Call:
    noun: str
    method: str
    accept: str
    content: bytes | None
    headers: dict[str, str]
    follow_redirects: bool
    redirect_allowed: Callable[[str], bool] | None


async def _fetch(
    url: str,
    client: httpx.AsyncClient,
    limits: FetchLimits,
    resolve: Resolver,
    address_allowed: AddressPolicy,
    call: _Call,
) -> Fetched:
    noun = call.noun
    current = _checked_url(url, noun)
    for _hop in range(limits.max_redirects + 1):
        addresses = await _checked_addresses(current, resolve, address_allowed, noun)
        response = await _send(client, addresses, current, call)
        try:
            if response.status_code in _REDIRECTS and call.follow_redirects:
                location = response.headers.get("location")
                if not location:
                    raise ImageFetchFailed(
                        f"The {noun} URL redirected (HTTP {response.status_code}) without a "
                        "Location."
                    )
                try:
                    current = _checked_url(current.join(location.strip()), noun)
                except httpx.InvalidURL:
                    raise ImageFetchFailed(
                        f"The {noun} URL redirected to an invalid URL."
                    ) from None
                if call.redirect_allowed is not None and not call.redirect_allowed(str(current)):
                    raise RedirectRefused(current, noun)
                continue
            success = 200 <= response.status_code < 300
            # Only a success's body is read: an error page is not what was asked for.
            body = await _read_capped(response, limits.max_bytes, current, noun) if success else b""
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return Fetched(str(current), response.status_code, content_type, body)
        finally:
            await response.aclose()
    raise ImageFetchFailed(
        f"The {noun} URL redirected more than {limits.max_redirects} times; refused."
    )


def _checked_url(url: str | httpx.URL, noun: str = "image") -> httpx.URL:
    if isinstance(url, str):
        if len(url) > _MAX_URL_CHARS:
            raise ImageFetchFailed(f"The {noun} URL is longer than {_MAX_URL_CHARS} characters.")
        try:
            url = httpx.URL(url.strip())
        except httpx.InvalidURL:
            raise ImageFetchFailed(f"The {noun} URL is not a valid URL.") from None
    if url.scheme not in ("http", "https"):
        shown = f" ('{url.scheme[:20]}:' was given)" if url.scheme else ""
        raise ImageFetchFailed(f"Only http:// and https:// {noun} URLs are allowed{shown}.")
    if url.userinfo:
        raise ImageFetchFailed(
            f"{noun.capitalize()} URLs must not contain a user name or password."
        )
    if not url.raw_host:
        raise ImageFetchFailed(f"The {noun} URL has no host.")
    return url


def check_url(url: str, noun: str = "image") -> str:
    """The checks a URL must pass before anything resolves it (scheme, no credentials, a
    host); raises ImageFetchFailed. For fields stored now and fetched later (webhook_url)."""
    return str(_checked_url(url, noun))


async def _checked_addresses(
    url: httpx.URL, resolve: Resolver, address_allowed: AddressPolicy, noun: str
) -> list[IPAddress]:
    """Every address the host names, each one allowed by the policy (else ImageFetchFailed)."""
    host = url.raw_host.decode("ascii")
    try:
        literal = parse_ip_host(host)
    except ValueError:
        raise ImageFetchFailed(f"The {noun} URL host {host!r} is not a valid address.") from None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(a) for a in await resolve(host, port)]
        except (OSError, UnicodeError, ValueError):
            raise ImageFetchFailed(f"Could not resolve the {noun} host {host!r}.") from None
        if not addresses:
            raise ImageFetchFailed(f"Could not resolve the {noun} host {host!r}.")
    # One bad answer is enough: a name that mixes public and internal addresses is hostile.
    if not all(address_allowed(ip) for ip in addresses):
        raise ImageFetchFailed(
            f"The {noun} host {host!r} is a private, local or reserved address; refused."
        )
    return addresses[:_MAX_ADDRESSES_TRIED]


def _pinned_request(
    url: httpx.URL, address: IPAddress, client: httpx.AsyncClient, call: _Call
) -> httpx.Request:
    """A request aimed at one checked address of the URL's host."""
    host = url.raw_host.decode("ascii")
    extensions: dict[str, object] = {"timeout": client.timeout.as_dict()}
    headers = {
        "User-Agent": USER_AGENT,
        **call.headers,
        "Host": url.netloc.decode("ascii"),
        "Accept": call.accept,
        # Raw bytes are counted against the cap; a compressed body could hide a bomb.
        "Accept-Encoding": "identity",
    }
    if url.scheme == "https":
        if parse_ip_host(host) is None:
            extensions["sni_hostname"] = host.removesuffix(".")
        # The certificate is checked against this name when the connection is opened, and
        # the pool would hand the open connection to the next request for the same IP and
        # port, whatever its name: closed after one request, it never carries another name.
        headers["Connection"] = "close"
    return httpx.Request(
        call.method,
        url.copy_with(host=str(address), fragment=None),
        headers=headers,
        content=call.content,
        extensions=extensions,
    )


async def _send(
    client: httpx.AsyncClient, addresses: list[IPAddress], url: httpx.URL, call: _Call
) -> httpx.Response:
    """Send to the first address that accepts a connection, as browsers do: a name whose first
    address is unreachable (an IPv6 address on an IPv4-only network, say) still works."""
    # The transport, not client.send(): send() would store the stranger's Set-Cookie headers in
    # the process-wide client's jar (unbounded, shared) and apply the client's auth.
    failure = ""
    for address in addresses:
        request = _pinned_request(url, address, client, call)
        transport = client._transport_for_url(request.url)
        try:
            return await transport.handle_async_request(request)
        except httpx.ConnectError as exc:
            failure = type(exc).__name__  # nothing was sent: the next address is safe to try
        except httpx.TimeoutException:
            raise ImageFetchFailed(f"Connecting to {url.host!r} timed out.") from None
        except httpx.HTTPError as exc:
            failure = type(exc).__name__
            break
    raise ImageFetchFailed(f"Could not fetch the {call.noun} from {url.host!r} ({failure}).")


async def _read_capped(
    response: httpx.Response, max_bytes: int, url: httpx.URL, noun: str
) -> bytes:
    too_large = f"The {noun} at the URL is larger than the {max_bytes} byte limit."
    declared = response.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ImageFetchFailed(f"The {noun} URL sent an invalid Content-Length.")
        if int(declared) > max_bytes:
            raise ImageTooLarge(too_large)
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ImageFetchFailed(
            f"The {noun} URL sent a {encoding[:20]!r}-encoded body; it must be sent unencoded."
        )
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            if len(body) + len(chunk) > max_bytes:
                raise ImageTooLarge(too_large)
            body += chunk
    except httpx.TimeoutException:
        raise ImageFetchFailed(f"Reading the {noun} from {url.host!r} timed out.") from None
    except httpx.HTTPError as exc:
        failure = type(exc).__name__
        raise ImageFetchFailed(
            f"The connection to {url.host!r} failed while reading the {noun} ({failure})."
        ) from None
    return bytes(body)
