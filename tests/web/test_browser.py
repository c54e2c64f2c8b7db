"""The whole customer journey in a real browser (Debian's Chromium through Playwright), twice:
once as most people use it, once with the keyboard alone. Every page is checked by axe-core
(no serious or critical violation), watched for CSP violations, script errors and requests to
any other origin, and saved as a screenshot (tests/artifacts/ or $ALTTEXT_ARTIFACTS).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.stripe import FakeStripe, run_fake_stripe
from tests.web.browser_support import (
    AXE,
    CHROMIUM,
    CHROMIUM_ARGS,
    AxeReport,
    LiveService,
    PageWatch,
    artifacts_dir,
    axe_violations,
    live_service,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium; "
        ".ci/run installs it)",
    ),
]

PASSWORD = "a long and memorable passphrase"
NEW_PASSWORD = "another long passphrase, changed"
CHECKOUT_PAGE = (
    "<!doctype html><html lang='en'><head><title>Stripe Checkout (test double)</title></head>"
    "<body><main><h1>Stripe Checkout</h1></main></body></html>"
)


def png(color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 120), color).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Stack:
    svc: LiveService
    stripe: FakeStripe
    images: FakeImageHost
    report: AxeReport
    shots: Path


@pytest.fixture(scope="module")
def stack(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert AXE.exists(), f"axe-core is missing at {AXE}: run tools/install_axe.sh (needs npm)"
    shots = artifacts_dir()
    report = AxeReport()
    with run_fake_stripe() as stripe, running_image_host() as images:
        images.image("/photo.png", png("orange"))
        settings = {
            "stripe_secret_key": stripe.api_key,
            "stripe_api_base": stripe.base_url,
            "stripe_webhook_secret": stripe.webhook_secret,
            "allow_private_urls": True,  # the image host is on 127.0.0.1
        }
        with live_service(sqlite_template, tmp_path_factory.mktemp("browser"), **settings) as svc:
            yield Stack(svc, stripe, images, report, shots)
    report.write(shots / "axe-report.json")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Journey:
    """One customer's browser, checking every page it lands on."""

    def __init__(self, stack: Stack, browser: Any, label: str) -> None:
        self.stack = stack
        self.base = stack.svc.url
        self.label = label
        self.context = browser.new_context(
            accept_downloads=True, viewport={"width": 1100, "height": 900}
        )
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=self.base)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.watch = PageWatch(self.base)
        self.watch.attach(self.page)
        # The buy form is answered with a 303 to Stripe Checkout. The test takes that answer
        # from the real server and shows a stand-in page on our origin instead of following it
        # (this machine cannot reach Stripe, and the customer's payment is faked below).
        self.page.route(self.base + "/dashboard/credits/checkout", self._checkout)
        self.checkouts: list[str] = []
        self.count = 0

    def _checkout(self, route: Any) -> None:
        answer = route.fetch(max_redirects=0)
        assert answer.status == 303, answer.text()
        location = answer.headers["location"]
        assert location.startswith("https://checkout.stripe.com/c/pay/cs_test_")
        self.checkouts.append(location)
        route.fulfill(status=200, content_type="text/html", body=CHECKOUT_PAGE)

    def check(self, name: str) -> None:
        """axe, a screenshot, and nothing the page should not do."""
        self.page.wait_for_load_state("load")
        self.count += 1
        label = f"{self.label}-{self.count:02d}-{name}"
        self.stack.report.check(self.page, label)
        self.page.screenshot(path=str(self.stack.shots / f"{label}.png"), full_page=True)
        assert self.watch.problems == [], self.watch.problems
        assert self.watch.foreign == [], self.watch.foreign

    def goto(self, path: str, name: str) -> None:
        self.page.goto(path if path.startswith("http") else self.base + path)
        self.check(name)

    def heading(self, text: str) -> None:
        from playwright.sync_api import expect

        expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    def close(self) -> None:
        self.context.close()


def _api(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.svc.url, headers={"Authorization": f"Bearer {key}"})


def _pay(stack: Stack, account_id: str) -> None:
    """The customer pays on Stripe; Stripe tells the service (signed webhooks)."""
    stripe = stack.stripe
    session_id = next(
        sid
        for sid, s in reversed(stripe.sessions.items())
        if s["client_reference_id"] == account_id
    )
    paid = stripe.pay(session_id)
    for event in (
        stripe.event("checkout.session.completed", paid),
        stripe.event("charge.succeeded", stripe.charge_for(session_id)),
    ):
        body, header = stripe.signed(event)
        r = httpx.post(
            stack.svc.url + "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text


def _assert_no_serious(stack: Stack) -> None:
    assert stack.report.serious == [], "\n".join(stack.report.serious)


def test_journey(stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    email = "ada@example.com"
    j = Journey(stack, browser, "mouse")
    page = j.page
    j.goto("/", "landing")
    expect(page.get_by_text("$0.03 an image.")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign up").click()
    j.check("signup")
    # A form error names the field and says how to fix it.
    page.get_by_role("button", name="Sign up").click()
    j.check("signup-errors")
    expect(page.get_by_role("alert")).to_contain_text("Email: Enter an e-mail address")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label(re.compile("18")).check()
    page.get_by_label(re.compile("terms")).check()
    page.get_by_label(re.compile("privacy")).check()
    page.get_by_role("button", name="Sign up").click()
    j.heading("Check your inbox")
    j.check("signup-sent")

    link = stack.svc.mail.link(email, "/signup/verify")
    assert link.startswith(stack.svc.url + "/signup/verify?token=")  # this server's host and port
    j.goto(link, "verify")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Confirm and log in").click()
    j.heading("Overview")
    expect(page.get_by_role("status").first).to_contain_text("Welcome")
    j.check("overview-new")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    j.heading("API keys")
    page.get_by_label("Key name").fill("website")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("at_live_")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    j.check("keys-created")

    with _api(stack, secret) as api:
        me = api.get("/v1/account")
        assert me.status_code == 200, me.text
        assert me.json()["credits_remaining"] == 10  # the trial credits
        account_id = me.json()["id"]
        made = api.post("/v1/alt-text", files={"image": ("a.png", png())})
        assert made.status_code == 200, made.text
        assert made.json()["credits_remaining"] == 9

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Try it").click()
    j.heading("Try it")
    j.check("try")
    page.get_by_label("Image file").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png("purple")}]
    )
    page.get_by_label("Context").fill("Our team's summer outing")
    page.get_by_label("Role").select_option("informative")
    page.get_by_label("Language").fill("en")
    page.get_by_label("Maximum length").fill("120")
    page.get_by_role("button", name="Generate alt text").click()
    expect(page.get_by_role("heading", name="The alt text")).to_be_visible()
    expect(page.locator("#snippet")).to_contain_text('<img src="photo.png" alt="')
    expect(page.get_by_text("(8 left)")).to_be_visible()
    j.check("try-result")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Credits").click()
    j.heading("Credits")
    expect(page.locator("#balance")).to_have_text("8")
    page.get_by_label("Amount (USD)").fill("5")
    page.get_by_role("button", name="Buy credits").click()
    expect(page.get_by_role("heading", name="Stripe Checkout")).to_be_visible()
    assert len(j.checkouts) == 1
    _pay(stack, account_id)
    j.goto("/dashboard/credits?checkout=success", "credits-success")
    expect(page.get_by_role("status").first).to_contain_text("Thank you")
    expect(page.locator("#balance")).to_have_text(str(8 + 166))
    expect(page.get_by_role("link", name=re.compile("^Receipt"))).to_have_count(1)
    j.goto("/dashboard/credits?checkout=cancel", "credits-cancel")
    expect(page.get_by_role("status").first).to_contain_text("nothing was charged")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    j.heading("Overview")
    expect(page.get_by_role("table", name="Recent requests, newest first")).to_be_visible()
    j.check("overview-used")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    j.heading("Account")
    j.check("account")
    password = page.get_by_role("region", name="Password")
    password.get_by_label("Current password").fill(PASSWORD)
    password.get_by_label("New password").fill(NEW_PASSWORD)
    password.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status").first).to_contain_text("new password is set")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["account"]["email"] == email
    assert download.value.suggested_filename == f"alttext-export-{account_id}.json"

    page.get_by_label("Type your email to confirm").fill(email)
    page.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("status").first).to_contain_text("Your account is deleted")
    j.check("deleted")

    j.goto("/login", "login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("password is wrong")
    j.check("login-failed")
    with _api(stack, secret) as api:
        assert api.get("/v1/account").status_code == 401  # the key died with the account

    for path, name in (
        ("/docs", "docs"),
        ("/privacy", "privacy"),
        ("/terms", "terms"),
        ("/password/forgot", "forgot"),
        ("/no-such-page", "not-found"),
    ):
        j.goto(path, name)
    j.close()
    _assert_no_serious(stack)


# -- the keyboard alone ------------------------------------------------------------------------

_FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const labels = e.labels && e.labels.length ? e.labels[0].textContent : null;
  const raw = labels || e.getAttribute('aria-label') || e.textContent || '';
  const text = raw.replace(/\\s+/g, ' ').trim();
  const style = getComputedStyle(e);
  return {tag: e.tagName.toLowerCase(), type: e.type || null, name: text,
          outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
}"""


class Keys:
    """Tab until the element with this accessible name has focus; type and press keys."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def to(
        self, name: str, tags: tuple[str, ...] = ("a", "button", "input", "textarea", "select")
    ) -> None:
        from playwright.sync_api import Error

        self.page.wait_for_load_state("load")
        for _ in range(120):
            self.page.keyboard.press("Tab")
            try:
                focused = self.page.evaluate(_FOCUSED)
            except Error:  # a navigation started by the last key is still under way
                self.page.wait_for_load_state("load")
                continue
            if focused and focused["tag"] in tags and focused["name"] == name:
                assert focused["outline"], f"no visible focus indicator on {name!r}"
                return
        raise AssertionError(f"Tab never reached {name!r}")

    def type(self, name: str, text: str) -> None:
        self.to(name, ("input", "textarea"))
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(text)

    def press(self, name: str, key: str = "Enter", tags: tuple[str, ...] = ("a", "button")) -> None:
        self.to(name, tags)
        self.page.keyboard.press(key)

    def tick(self, name: str) -> None:
        self.to(name, ("input",))
        self.page.keyboard.press("Space")


def test_journey_with_the_keyboard_alone(stack: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    email = "grace@example.com"
    j = Journey(stack, browser, "keyboard")
    page, keys = j.page, Keys(j.page)
    j.goto("/", "landing")
    page.keyboard.press("Tab")
    assert page.evaluate(_FOCUSED)["name"] == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    keys.press("Sign up")
    j.heading("Sign up")
    keys.type("Email", email)
    keys.type("Password", PASSWORD)
    keys.tick("I am 18 or older")
    keys.tick("I accept the terms of service")
    keys.tick("I accept the privacy policy")
    keys.press("Sign up")
    j.heading("Check your inbox")

    j.goto(stack.svc.mail.link(email, "/signup/verify"), "verify")
    keys.type("Password", PASSWORD)
    keys.press("Confirm and log in")
    j.heading("Overview")

    keys.press("API keys")
    j.heading("API keys")
    keys.type("Key name", "keyboard")
    keys.press("Create key")
    expect(page.locator("#new-key-secret")).to_be_visible()
    secret = page.locator("#new-key-secret").inner_text().strip()
    keys.press("Copy")
    expect(page.locator(".copy-status")).to_have_text("Copied to the clipboard.")
    with _api(stack, secret) as api:
        me = api.get("/v1/account").json()
    assert me["credits_remaining"] == 10
    account_id = me["id"]

    keys.press("Try it")
    j.heading("Try it")
    keys.type("Image URL", stack.images.url("/photo.png"))
    keys.type("Context", "Product photo on the shop's front page")
    keys.press("Generate alt text")
    expect(page.get_by_role("heading", name="The alt text")).to_be_visible()
    keys.press("Copy")
    expect(page.locator(".copy-status")).to_have_text("Copied to the clipboard.")
    j.check("try-result")

    keys.press("Credits")
    j.heading("Credits")
    keys.type("Amount (USD)", "5")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Stripe Checkout")).to_be_visible()
    _pay(stack, account_id)
    j.goto("/dashboard/credits?checkout=success", "credits-success")
    expect(page.locator("#balance")).to_have_text(str(9 + 166))

    keys.press("Account")
    j.heading("Account")
    keys.type("Current password", PASSWORD)
    keys.type("New password", NEW_PASSWORD)
    keys.press("Set password")
    expect(page.get_by_role("status").first).to_contain_text("new password is set")
    keys.press("Restrict processing")
    expect(page.get_by_role("status").first).to_contain_text("Processing is restricted")
    keys.press("Lift restriction")
    expect(page.get_by_role("status").first).to_contain_text("restriction is lifted")
    with page.expect_download() as download:
        keys.press("Download my data")
    assert json.loads(Path(download.value.path()).read_text())["account"]["id"] == account_id
    keys.type("Type your email to confirm", email)
    keys.press("Delete account")
    expect(page.get_by_role("status").first).to_contain_text("Your account is deleted")

    keys.press("Log in")
    j.heading("Log in")
    keys.type("Email", email)
    keys.type("Password", NEW_PASSWORD)
    keys.press("Log in")
    expect(page.get_by_role("alert")).to_contain_text("password is wrong")
    j.check("login-failed")
    with _api(stack, secret) as api:
        assert api.get("/v1/account").status_code == 401
    j.close()
    _assert_no_serious(stack)


def test_jobs_with_the_keyboard_alone(stack: Stack, browser: Any) -> None:
    """Jobs from the nav, a job started from a list of image URLs on the image host, followed
    in the table until done, its results downloaded as CSV, and the webhook signing secret
    revealed and copied; the jobs page has no axe violation at all."""
    from playwright.sync_api import expect

    email = "hedy@example.com"
    j = Journey(stack, browser, "jobs")
    page, keys = j.page, Keys(j.page)
    for name, colour in (("/jobs/mug.png", "navy"), ("/jobs/lamp.png", "olive")):
        stack.images.image(name, png(colour))

    def check_jobs(name: str) -> None:
        j.check(name)
        assert axe_violations(page) == [], f"axe on the jobs page ({name})"

    j.goto("/signup", "signup")
    keys.type("Email", email)
    keys.type("Password", PASSWORD)
    keys.tick("I am 18 or older")
    keys.tick("I accept the terms of service")
    keys.tick("I accept the privacy policy")
    keys.press("Sign up")
    j.heading("Check your inbox")
    j.goto(stack.svc.mail.link(email, "/signup/verify"), "verify")
    keys.type("Password", PASSWORD)
    keys.press("Confirm and log in")
    j.heading("Overview")

    keys.press("Jobs")
    j.heading("Jobs")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Jobs")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("No jobs yet")).to_be_visible()
    check_jobs("jobs-empty")

    # A mistake first: the error is announced, names the field, and the input stays.
    keys.type("Image URLs", "ftp://nope.example/a.png")
    keys.press("Start job")
    expect(page.get_by_role("alert")).to_contain_text("Image URLs: Fix these image URLs")
    expect(page.get_by_label("Image URLs")).to_have_value("ftp://nope.example/a.png")
    check_jobs("jobs-error")

    urls = "\n".join(stack.images.url(p) for p in ("/jobs/mug.png", "/jobs/lamp.png"))
    keys.type("Image URLs", urls)
    keys.press("Start job")
    expect(page.get_by_role("status").first).to_contain_text("started with 2 images")
    table = page.get_by_role("table", name="Jobs, newest first")
    expect(table).to_be_visible()
    deadline = time.monotonic() + 60
    while "2 of 2 done" not in table.inner_text():
        assert time.monotonic() < deadline, table.inner_text()
        page.wait_for_timeout(300)
        page.reload()
    expect(table.get_by_role("rowheader")).to_contain_text("2 image URLs")
    expect(table.get_by_role("progressbar")).to_have_attribute("value", "2")
    expect(table).to_contain_text("Completed")
    check_jobs("jobs-done")

    with page.expect_download() as download:
        keys.press("Results (CSV)")
    assert download.value.suggested_filename.endswith("-results.csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [row["status"] for row in rows] == ["succeeded", "succeeded"]
    assert all(row["alt_text"] or row["decorative"] == "true" for row in rows), rows
    assert rows[0]["image_url"] == stack.images.url("/jobs/mug.png")

    keys.press("Reveal signing secret")
    secret = page.locator("#webhook-secret")
    expect(secret).to_be_visible()
    assert secret.inner_text().startswith("whsec_")
    keys.press("Copy")
    expect(page.locator(".copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret.inner_text()
    check_jobs("jobs-secret")
    assert secret.inner_text() not in page.url

    keys.press("Rotate signing secret")
    expect(page.get_by_role("region", name="Rotate the signing secret?")).to_be_focused()
    check_jobs("jobs-rotate")
    keys.press("Confirm rotate")
    expect(page.get_by_role("status").first).to_contain_text("signing secret is rotated")
    j.close()
    _assert_no_serious(stack)
