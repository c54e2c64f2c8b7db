"""One crawled HTML page: its text decoded, its images with what the model should know, and
the links a crawl may follow. Pure functions over bytes; nothing here raises on odd markup."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from alttext.describe.languages import normalise_tag
from alttext.describe.types import MAX_CONTEXT_CHARS
from alttext.generation.schemas import MAX_URL_CHARS
from alttext.sitetools.html_scan import scan_html_page
from alttext.sitetools.model import Image

Origin = tuple[str, str, int | None]  # scheme, host, port (None: the scheme's default)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# The HTML standard's prescan looks at the first 1024 bytes; some pages put a long comment or
# script first, so a little more is read.
_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(
    rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_OTHER_SCHEME = re.compile(r"(?!https?:)[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_URL_NOISE = re.compile(r"[\t\n\r]")  # the URL standard drops these anywhere in a URL
_LOOKS_HTML = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)
# Links to these are files, not pages: fetching one only to learn that costs a body and a delay.
_NOT_PAGES = frozenset(
    """
    7z avi avif bmp bz2 css csv dmg doc docx eot epub exe gif gz heic ico iso jar jpeg jpg js
    json m4a m4v mkv mov mp3 mp4 mpeg mpg odp ods odt ogg otf pdf png ppt pptx rar rss svg tar
    tgz tif tiff ttf txt wav webm webp wmv woff woff2 xls xlsx xml zip
    """.split()  # noqa: SIM905
)
_CONTEXT_PARAGRAPH = 1000  # longer "paragraphs" are whole sections: the nearby text says more


@dataclass(frozen=True)
class CrawledImage:
    image_url: str  # absolute http(s) URL, fragment removed
    page_url: str  # the page it was found on (the first, if on several)
    context: str | None  # for the model; never the alt itself
    role: str | None  # "functional" (only content of a link or button), else None (auto)
    link_target: str | None  # for functional: the link's absolute href, or the button's label
    language: str | None  # normalised <html lang>
    existing_alt: str | None  # None: no alt attribute; "" kept (decorative on purpose)


@dataclass(frozen=True)
class PageScan:
    images: list[CrawledImage]  # document order; several may share an image_url
    links: list[str]  # absolute http(s) URLs without fragment, document order, no repeats


def absolute(ref: str, base: str, *, keep_fragment: bool = False) -> str | None:
    """``ref`` resolved against ``base`` as a normalised http(s) URL; None if it is none."""
    ref = _URL_NOISE.sub("", ref).strip(" \f\v")
    if not ref or ref[:5].lower() == "data:":
        return None
    try:
        url = httpx.URL(urljoin(base, ref))
    except (ValueError, httpx.InvalidURL):
        return None
    if url.scheme not in ("http", "https") or not url.host or url.userinfo:
        return None
    if not keep_fragment:
        url = url.copy_with(fragment=None)
    if not url.path:
        url = url.copy_with(path="/")
    text = str(url)
    return text if len(text) <= MAX_URL_CHARS else None


def origin_of(url: str) -> Origin:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def looks_like_page(url: str) -> bool:
    """False for links whose path names a file type that is never an HTML page."""
    last = httpx.URL(url).path.rsplit("/", 1)[-1]
    return "." not in last or last.rsplit(".", 1)[1].lower() not in _NOT_PAGES


def is_html(content_type: str, body: bytes) -> bool:
    if content_type in HTML_TYPES:
        return True
    # Servers that send no type (or a generic one) for pages are common enough to sniff.
    generic = content_type in ("", "text/plain", "application/octet-stream")
    return generic and bool(_LOOKS_HTML.match(body[:_PRESCAN_BYTES]))


def decode_html(body: bytes, charset: str | None = None) -> str:
    """Text of a page: a BOM, else ``charset`` (from the Content-Type), else a ``<meta>``
    charset, else UTF-8; undecodable bytes become U+FFFD, never an error."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, "replace")
    for declared in (charset, _meta_charset(body)):
        usable = _usable_encoding(declared)
        if usable:
            return body.decode(usable, "replace")
    return body.decode("utf-8", "replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:_PRESCAN_BYTES])
    return match.group(1).decode("ascii") if match else None


def _usable_encoding(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    # A page that declares UTF-16 in ASCII-compatible bytes is not UTF-16 (HTML standard).
    return "utf-8" if name.startswith(("utf-16", "utf-32")) else name


def read_page(body: bytes, url: str, charset: str | None = None) -> PageScan:
    """The images and links of the HTML page ``body`` fetched from ``url``."""
    page = scan_html_page(decode_html(body, charset))
    base = url
    if page.base is not None:
        base = absolute(page.base, url) or url
    language = _language(page.lang)
    images = []
    for image in page.images:
        image_url = _image_url(image, base)
        if image_url is None:
            continue
        role, target = _role(image, base)
        images.append(
            CrawledImage(
                image_url=image_url,
                page_url=url,
                context=_context(image, page.title),
                role=role,
                link_target=target,
                language=language,
                existing_alt=image.alt,
            )
        )
    links = [absolute(link, base) for link in page.links]
    return PageScan(images, list(dict.fromkeys(link for link in links if link)))


def _image_url(image: Image, base: str) -> str | None:
    """``src``; without a usable one, the largest ``srcset`` candidate, then the picture's."""
    candidates = [image.src, largest_candidate(image.srcset or "")]
    candidates += [largest_candidate(srcset) for srcset in image.sources]
    for candidate in candidates:
        if candidate:
            url = absolute(candidate, base)
            if url:
                return url
    return None


def largest_candidate(srcset: str) -> str | None:
    """The URL of the widest (``w``) or densest (``x``) candidate of a ``srcset``."""
    best: tuple[float, str] | None = None
    for url, descriptor in _candidates(srcset):
        size = 1.0
        if descriptor[-1:] in ("w", "x"):
            try:
                size = float(descriptor[:-1])
            except ValueError:
                continue
        if best is None or size > best[0]:
            best = (size, url)
    return best[1] if best else None


def _candidates(srcset: str) -> list[tuple[str, str]]:
    """(url, descriptor) pairs, split as the HTML standard does: a URL runs to whitespace,
    and a comma ends a candidate only outside parentheses."""
    out = []
    i, n = 0, len(srcset)
    while i < n:
        while i < n and (srcset[i].isspace() or srcset[i] == ","):
            i += 1
        start = i
        while i < n and not srcset[i].isspace():
            i += 1
        url = srcset[start:i]
        descriptor = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start, depth = i, 0
            while i < n and (srcset[i] != "," or depth):
                depth += {"(": 1, ")": -1}.get(srcset[i], 0)
                i += 1
            descriptor = srcset[start:i].strip().lower()
        if url:
            out.append((url, descriptor.split()[0] if descriptor else ""))
    return out


def _role(image: Image, base: str) -> tuple[str | None, str | None]:
    if image.link_target is None or image.link_text.strip():
        return None, None
    label = image.link_label or None
    href = image.link_target.strip()
    # The scanner names a button's target "button": what it does is only in its label.
    if href in ("button", "", "#") or href[:11].lower() == "javascript:":
        return "functional", label
    target = absolute(href, base, keep_fragment=True)
    if target is None and _OTHER_SCHEME.match(href) and len(href) <= MAX_URL_CHARS:
        target = href  # mailto:, tel: and the like say what the link does as written
    return "functional", target or label


def _language(lang: str | None) -> str | None:
    if not lang:
        return None
    tag = lang.strip().replace("_", "-")
    return normalise_tag(tag) or normalise_tag(tag.split("-", 1)[0])


def _context(image: Image, page_title: str) -> str | None:
    paragraph = image.paragraph
    if len(paragraph) > _CONTEXT_PARAGRAPH:
        paragraph = " … ".join(_near(image.nearby))
    alt = " ".join((image.alt or "").split()).casefold()
    lines: list[str] = []
    seen: set[str] = set()
    for label, text in (
        ("Page title", page_title),
        ("Section", image.heading),
        ("Caption", image.caption),
        ("Image title", image.title),
        ("Text", paragraph),
    ):
        text = " ".join(text.split())
        key = text.casefold()
        # The alt is what is being written: handing it to the model invites a copy.
        if text and key != alt and key not in seen:
            seen.add(key)
            lines.append(f"{label}: {text}")
    return "\n".join(lines)[:MAX_CONTEXT_CHARS] or None


def _near(runs: list[str]) -> list[str]:
    """The text runs around an image, cut to the words closest to it."""
    half = _CONTEXT_PARAGRAPH // 2
    if len(runs) == 2:  # the run before the image, then the one after
        before, after = runs
        return [before[-half:].partition(" ")[2] if len(before) > half else before, after[:half]]
    return [run[:half] for run in runs[:1]]
