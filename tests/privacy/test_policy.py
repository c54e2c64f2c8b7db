"""The policy pages state exactly what is stored: checked against the real models both ways,
and against the cookies the code sets."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import alttext
from alttext.models_registry import metadata
from alttext.privacy.inventory import COOKIES, data_inventory
from alttext.privacy.policy_versions import PRIVACY_VERSION, TERMS_VERSION

SRC = Path(alttext.__file__).parent


def _stored() -> dict[str, set[str]]:
    return {name: {c.name for c in table.columns} for name, table in metadata().tables.items()}


def test_every_stored_column_is_documented_and_nothing_else() -> None:
    inventory = data_inventory(90)
    stored = _stored()
    assert set(inventory) == set(stored), "document new tables in privacy/inventory.py"
    for table, columns in stored.items():
        documented = set(inventory[table].columns)
        assert columns - documented == set(), f"undocumented columns of {table}"
        assert documented - columns == set(), f"documented columns {table} does not have"


def test_every_entry_says_what_why_and_how_long() -> None:
    for table, doc in data_inventory(90).items():
        assert doc.title.strip()
        assert doc.purpose.strip(), table
        assert doc.retention.strip(), table
        for column, description in doc.columns.items():
            assert len(description.strip()) > 3, f"{table}.{column}"


class _Outline(HTMLParser):
    """Headings, landmarks and the code names in each table row, as the page presents them."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[str]] = {}  # section id -> row-header code names
        self._section: list[str | None] = []
        self._in_row_header = False
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "section":
            self._section.append((a.get("aria-labelledby") or "") or None)
        if tag == "table" and a.get("id"):
            self._section.append(a["id"])
        if tag == "th" and a.get("scope") == "row":
            self._in_row_header = True
        if tag == "code":
            self._in_code = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" or (
            tag == "table" and self._section and self._section[-1] == "cookie-list"
        ):
            self._section.pop()
        if tag == "th":
            self._in_row_header = False
        if tag == "code":
            self._in_code = False

    def handle_data(self, data: str) -> None:
        if self._in_row_header and self._in_code and self._section:
            self.rows.setdefault(self._section[-1] or "", []).append(data)


def _outline(html: str) -> _Outline:
    outline = _Outline()
    outline.feed(html)
    return outline


async def test_privacy_page_lists_every_table_and_column(service: Any) -> None:
    page = await service.client.get("/privacy")
    assert page.status_code == 200
    rows = _outline(page.text).rows
    for table, columns in _stored().items():
        assert sorted(rows.get(f"table-{table}", [])) == sorted(columns), table


def _cookie_names_in_source() -> set[str]:
    """Every cookie name the package sets: ``set_cookie("name"`` or via a NAME = "..." constant,
    and Starlette's SessionMiddleware ``session_cookie=``."""
    sources = {p: p.read_text() for p in SRC.rglob("*.py")}
    constants: dict[str, str] = {}
    for text in sources.values():
        constants.update(
            re.findall(r"^([A-Z_][A-Z0-9_]*)\s*(?::[^=]+)?=\s*[\"']([^\"']+)[\"']", text, re.M)
        )
    return _cookie_names(sources.values(), constants)


def _cookie_names(texts: Any, constants: dict[str, str]) -> set[str]:
    names: set[str] = set()
    pattern = re.compile(r"(?:set_cookie\(\s*(?:key\s*=\s*)?|session_cookie\s*=\s*)([^,\s)]+)")
    for text in texts:
        for token in pattern.findall(text):
            literal = re.fullmatch(r"[\"']([^\"']+)[\"']", token)
            name = literal.group(1) if literal else constants.get(token.split(".")[-1])
            assert name, f"cookie name {token!r} not resolvable: name it in privacy/inventory.py"
            names.add(name)
    return names


def test_cookie_scanner_finds_literal_and_constant_names() -> None:
    # The scanner must be able to fail, or the cookie test below proves nothing.
    texts = [
        'response.set_cookie("alttext_x", value)',
        "response.set_cookie(key=CSRF_NAME, value=v)",
        "app.add_middleware(SessionMiddleware, session_cookie=cookies.SESSION, secret_key=k)",
    ]
    found = _cookie_names(texts, {"CSRF_NAME": "alttext_y", "SESSION": "alttext_z"})
    assert found == {"alttext_x", "alttext_y", "alttext_z"}


async def test_page_lists_exactly_the_cookies_the_code_sets(service: Any) -> None:
    documented = {c.name for c in COOKIES}
    assert documented == {"alttext_session", "alttext_csrf"}  # essential only
    assert _cookie_names_in_source() <= documented, "a cookie the policy does not list"
    page = (await service.client.get("/privacy")).text
    assert set(_outline(page).rows["cookie-list"]) == documented


@pytest.mark.parametrize("path", ["/privacy", "/terms"])
async def test_pages_are_accessible_html(service: Any, path: str) -> None:
    r = await service.client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in r.text
    outline = _outline(r.text)
    tags = outline.tags
    assert tags.count(("main", {"id": "main", "tabindex": "-1"})) == 1
    assert ("a", {"class": "skip-link", "href": "#main"}) in tags
    assert any(t == "nav" and a.get("aria-label") for t, a in tags)
    assert any(t == "header" for t, _ in tags)
    assert any(t == "footer" for t, _ in tags)
    assert outline.headings.count(1) == 1
    assert outline.headings[0] == 1
    # No skipped levels (h1 -> h3), which screen reader users navigate by.
    assert all(b - a <= 1 for a, b in zip(outline.headings, outline.headings[1:]))
    assert "under 18" in r.text
    css = await service.client.get("/static/site.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_privacy_page_states_processors_rights_retention_and_version(
    service_factory: Any,
) -> None:
    async with service_factory(retention_days=45, zero_data_retention=True) as svc:
        page = html.unescape((await svc.client.get("/privacy")).text)
        terms = (await svc.client.get("/terms")).text
    for processor in ("OpenRouter", "Stripe", "hosting provider"):
        assert processor in page
    assert 'data_collection: "deny"' in page
    assert "zdr: true" in page  # shown because ALTTEXT_ZERO_DATA_RETENTION is on
    for endpoint in (
        "GET /v1/account/export",
        "PATCH /v1/account",
        "DELETE /v1/account",
        "POST /v1/account/restrict",
        "DELETE /v1/account/restrict",
        '{"history": false}',
        '{"product_email": false}',
    ):
        assert endpoint in page, endpoint
    assert "45 days, then added to anonymous monthly totals" in page
    assert "30 days after the job finished (completed, failed or cancelled)" in page
    assert "30 days after the message was delivered or given up on" in page
    assert "EXIF" in page
    assert "GPS" in page
    assert "never used to train" in page
    assert PRIVACY_VERSION in page
    assert TERMS_VERSION in terms


async def test_zdr_is_not_claimed_when_it_is_off(service: Any) -> None:
    page = (await service.client.get("/privacy")).text
    assert "zdr: true" not in page


def test_docs_state_the_same_retention_periods_as_the_code() -> None:
    from alttext.idempotency import KEEP_FOR
    from alttext.privacy.retention import (
        AUDIT_KEEP,
        DEFAULT_JOB_RETENTION_DAYS,
        EMAIL_TOKEN_KEEP,
        RESERVATION_KEEP,
        STRIPE_INBOX_KEEP,
        UNVERIFIED_SIGNUP_TTL,
    )

    docs = (SRC.parents[1] / "docs" / "privacy.md").read_text()
    section = docs[docs.index("## Retention and the purge") :]
    for period in (
        f"| {UNVERIFIED_SIGNUP_TTL.total_seconds() / 3600:.0f} hours;",
        f"| {EMAIL_TOKEN_KEEP.days} days after they are used or expire |",
        f"| {RESERVATION_KEEP.days} days after they are settled or released",
        f"| {STRIPE_INBOX_KEEP.days} days after `processed` or `ignored`",
        f"| {KEEP_FOR.total_seconds() / 3600:.0f} hours |",
        f"| {AUDIT_KEEP.days // 365} years:",
        f"| `ALTTEXT_JOB_RETENTION_DAYS` (default {DEFAULT_JOB_RETENTION_DAYS}) days after the "
        "job finished (completed, failed or cancelled)",
        f"| `ALTTEXT_JOB_RETENTION_DAYS` (default {DEFAULT_JOB_RETENTION_DAYS}) days after the "
        "message was delivered or failed",
    ):
        assert period in section, period


async def test_privacy_page_names_the_operator_and_contact(service_factory: Any) -> None:
    async with service_factory(operator_name="Example Ltd", contact_email="dpo@example.com") as svc:
        page = (await svc.client.get("/privacy")).text
    assert "Example Ltd runs this service" in page
    assert 'href="mailto:dpo@example.com"' in page
