"""The dashboard's pages without a browser: keys, credits, Try it, the account's rights, trial
credits once per address, and every mailed link leading to a page that exists."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from alttext.accounts.models import Account, ApiKey
from alttext.billing.models import CreditEntry
from alttext.privacy.trial import canonical_address
from tests.fakes.stripe import FakeStripe
from tests.web.support import PASSWORD, Web, csrf_of, hidden, web_service


def png(color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


async def _balance(web: Web, email: str) -> int:
    async with web.sessions() as session:
        account = (
            await session.execute(select(Account).where(Account.email == email))
        ).scalar_one()
    return int(account.credits_balance)


async def test_keys_are_made_shown_once_and_revoked_after_a_confirmation(web: Web) -> None:
    await web.open_account("keys@example.com")
    page = await web.get("/dashboard/keys")
    assert "No keys yet" in page.text
    made = await web.form("/dashboard/keys", "/dashboard/keys", {"name": "website"})
    assert made.status_code == 200
    secret = re.search(r'id="new-key-secret">(at_live_\w+)<', made.text).group(1)  # type: ignore[union-attr]
    assert "not shown again" in made.text
    listed = await web.get("/dashboard/keys")
    assert secret not in listed.text
    assert secret[:12] in listed.text
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await web.client.get("/v1/account", headers=headers)).status_code == 200

    async with web.sessions() as session:
        key = (await session.execute(select(ApiKey))).scalar_one()
    confirm = await web.get(f"/dashboard/keys?revoke={key.id}")
    assert "Confirm revoke" in confirm.text
    assert (await web.client.get("/v1/account", headers=headers)).status_code == 200  # not yet
    r = await web.client.post(
        f"/dashboard/keys/{key.id}/revoke", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert r.status_code == 303
    assert (await web.client.get("/v1/account", headers=headers)).status_code == 401
    # The last key went, and a new one is one form away: never a lock-out.
    again = await web.form("/dashboard/keys", "/dashboard/keys", {"name": "new"})
    assert "new-key-secret" in again.text


async def test_another_accounts_key_cannot_be_revoked(web: Web) -> None:
    await web.open_account("mine@example.com")
    other = web.browser()
    await other.open_account("theirs@example.com")
    await other.form("/dashboard/keys", "/dashboard/keys", {"name": "theirs"})
    async with web.sessions() as session:
        key = (await session.execute(select(ApiKey))).scalar_one()
    page = await web.get("/dashboard/keys")
    r = await web.client.post(
        f"/dashboard/keys/{key.id}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 404
    async with web.sessions() as session:
        assert (await session.get(ApiKey, key.id)).revoked_at is None  # type: ignore[union-attr]


async def test_credits_page_says_plainly_when_billing_is_not_configured(web: Web) -> None:
    await web.open_account("nobilling@example.com")
    page = await web.get("/dashboard/credits")
    assert "Buying credits is not set up on this deployment" in page.text
    assert "Buy credits</button>" not in page.text
    assert "Credits given" in page.text  # the trial grant in the ledger
    assert '<span class="big" id="balance">10</span>' in page.text


async def test_buying_credits_goes_to_stripe_checkout_and_comes_back(
    service_factory: Any, stripe_server: FakeStripe
) -> None:
    stripe_server.reset()
    settings = {
        "stripe_secret_key": stripe_server.api_key,
        "stripe_api_base": stripe_server.base_url,
        "stripe_webhook_secret": stripe_server.webhook_secret,
    }
    async with web_service(service_factory, **settings) as web:
        account_id = await web.open_account("buyer@example.com")
        too_little = await web.form(
            "/dashboard/credits", "/dashboard/credits/checkout", {"amount_usd": "2"}
        )
        assert too_little.status_code == 422
        assert "Amount (USD): The smallest purchase is $5.00." in too_little.text
        assert stripe_server.sessions == {}
        page = await web.get("/dashboard/credits")
        token = hidden(page.text, "idempotency_key")
        body = {"csrf_token": csrf_of(page.text), "amount_usd": "5", "idempotency_key": token}
        first = await web.client.post("/dashboard/credits/checkout", data=body)
        twice = await web.client.post("/dashboard/credits/checkout", data=body)
        assert first.status_code == twice.status_code == 303
        assert first.headers["location"] == twice.headers["location"]  # a double submit: one
        assert first.headers["location"].startswith("https://checkout.stripe.com/c/pay/")
        (session,) = stripe_server.sessions.values()
        base = web.svc.settings.public_url
        assert session["success_url"].startswith(f"{base}/dashboard/credits?checkout=success")
        assert session["cancel_url"] == f"{base}/dashboard/credits?checkout=cancel"
        paid = stripe_server.pay(session["id"])
        for event in (
            stripe_server.event("checkout.session.completed", paid),
            stripe_server.event("charge.succeeded", stripe_server.charge_for(session["id"])),
        ):
            payload, signature = stripe_server.signed(event)
            r = await web.client.post(
                "/webhooks/stripe",
                content=payload,
                headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            )
            assert r.status_code == 200
        back = await web.get("/dashboard/credits?checkout=success")
        assert "Thank you" in back.text
        assert '<span class="big" id="balance">176</span>' in back.text
        async with web.sessions() as s:
            entry = (
                await s.execute(select(CreditEntry).where(CreditEntry.kind == "purchase"))
            ).scalar_one()
        assert f'href="/dashboard/credits/receipts/{entry.id}"' in back.text
        receipt = await web.get(f"/dashboard/credits/receipts/{entry.id}")
        assert receipt.status_code == 303
        assert receipt.headers["location"].startswith("https://pay.stripe.com/receipts/")
        cancelled = await web.get("/dashboard/credits?checkout=cancel")
        assert "nothing was charged" in cancelled.text
        stranger = web.browser()
        await stranger.open_account("stranger@example.com")
        assert (await stranger.get(f"/dashboard/credits/receipts/{entry.id}")).status_code == 404
        assert account_id


async def _try(web: Web, **fields: Any) -> Any:
    page = await web.get("/dashboard/try")
    data = {
        "csrf_token": csrf_of(page.text),
        "form_token": hidden(page.text, "form_token"),
        "role": "auto",
        "language": "en",
        "max_length": "125",
        **fields,
    }
    return page, data


async def test_try_it_is_charged_like_the_api_and_a_double_submit_runs_once(web: Web) -> None:
    await web.open_account("try@example.com")
    _, data = await _try(web, context="A shop's front page")
    files = {"image": ("photo.png", png(), "image/png")}
    first = await web.client.post("/dashboard/try", data=data, files=files)
    assert first.status_code == 200, first.text
    assert "The alt text" in first.text
    assert "&lt;img src=&#34;photo.png&#34; alt=&#34;" in first.text or "&lt;img src=" in first.text
    assert await _balance(web, "try@example.com") == 9
    again = await web.client.post("/dashboard/try", data=data, files=files)
    assert again.status_code == 200
    assert await _balance(web, "try@example.com") == 9  # replayed, not charged twice
    text = re.search(r'<p class="alt-text"[^>]*>(.*?)</p>', first.text, re.S).group(1)  # type: ignore[union-attr]
    assert text in again.text
    overview = await web.get("/dashboard")
    assert ">Try it</td>" in overview.text  # metered, with the dashboard as its "key"


async def test_try_it_names_the_field_to_fix_and_charges_nothing(web: Web) -> None:
    await web.open_account("tryerr@example.com")
    _, data = await _try(web, max_length="5")
    r = await web.client.post("/dashboard/try", data=data)
    assert r.status_code == 422
    assert "Image: Choose an image file or enter an image URL." in r.text
    _, data = await _try(web, max_length="5")
    r = await web.client.post(
        "/dashboard/try", data=data, files={"image": ("a.png", png(), "image/png")}
    )
    assert "Maximum length: Enter a whole number from 20 to 1000." in r.text
    _, data = await _try(web)
    r = await web.client.post(
        "/dashboard/try", data=data, files={"image": ("a.png", b"not an image", "image/png")}
    )
    assert r.status_code in (400, 415)
    assert 'aria-invalid="true"' in r.text
    assert await _balance(web, "tryerr@example.com") == 10


async def test_try_it_without_credits_says_how_to_get_some(service_factory: Any) -> None:
    async with web_service(service_factory, free_credits=0) as web:
        await web.open_account("broke@example.com")
        _, data = await _try(web)
        r = await web.client.post(
            "/dashboard/try", data=data, files={"image": ("a.png", png(), "image/png")}
        )
        assert r.status_code == 402
        assert 'href="/dashboard/credits">Buy credits' in r.text
        assert "Nothing was charged." in r.text


async def test_download_my_data_is_the_api_export_as_a_file(web: Web) -> None:
    account_id = await web.open_account("export@example.com")
    r = await web.form("/dashboard/account", "/dashboard/account/export", {})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == (
        f'attachment; filename="alttext-export-{account_id}.json"'
    )
    web_doc = r.json()
    made = await web.form("/dashboard/keys", "/dashboard/keys", {"name": "api"})
    secret = re.search(r'id="new-key-secret">(at_live_\w+)<', made.text).group(1)  # type: ignore[union-attr]
    api = await web.client.get("/v1/account/export", headers={"Authorization": f"Bearer {secret}"})
    api_doc = api.json()
    assert set(web_doc) == set(api_doc)
    assert web_doc["account"] == api_doc["account"]
    assert "password_hash" not in web_doc["account"]
    assert web_doc["web_sessions"]
    assert all("token_hash" not in s for s in web_doc["web_sessions"])


async def test_rights_as_forms(web: Web) -> None:
    account_id = await web.open_account("rights@example.com")
    r = await web.form(
        "/dashboard/account",
        "/dashboard/account/profile",
        {"name": "Ada Lovelace", "email": "rights@example.com"},
    )
    assert r.headers["location"] == "/dashboard/account?status=saved"
    r = await web.form(
        "/dashboard/account", "/dashboard/account/choices", {"history": "on", "product_email": "on"}
    )
    r = await web.form("/dashboard/account", "/dashboard/account/restrict", {"restrict": "on"})
    page = await web.get("/dashboard/account?status=restricted")
    assert "Lift restriction" in page.text
    _, data = await _try(web)
    refused = await web.client.post(
        "/dashboard/try", data=data, files={"image": ("a.png", png(), "image/png")}
    )
    assert refused.status_code == 403
    await web.form("/dashboard/account", "/dashboard/account/restrict", {"restrict": "off"})
    async with web.sessions() as session:
        account = await session.get(Account, account_id)
    assert account is not None
    assert (account.name, account.history_opt_in, account.product_email_opt_in) == (
        "Ada Lovelace",
        True,
        True,
    )
    assert account.restricted_at is None

    r = await web.form(
        "/dashboard/account",
        "/dashboard/account/profile",
        {"name": "Ada Lovelace", "email": "Ada@Example.org"},
    )
    assert r.headers["location"] == "/dashboard/account?status=email_pending"
    link = web.link("ada@example.org", "/account/email/confirm")
    confirm = await web.get(link)
    assert confirm.status_code == 200
    done = await web.client.post(
        "/account/email/confirm",
        data={"csrf_token": csrf_of(confirm.text), "token": hidden(confirm.text, "token")},
    )
    assert done.headers["location"] == "/dashboard/account?status=email_changed"
    assert "ada@example.org" in (await web.get("/dashboard/account")).text


async def test_delete_account_needs_the_typed_address_then_ends_everything(web: Web) -> None:
    account_id = await web.open_account("bye@example.com")
    made = await web.form("/dashboard/keys", "/dashboard/keys", {"name": "k"})
    secret = re.search(r'id="new-key-secret">(at_live_\w+)<', made.text).group(1)  # type: ignore[union-attr]
    wrong = await web.form(
        "/dashboard/account", "/dashboard/account/delete", {"confirm": "nope@example.com"}
    )
    assert wrong.status_code == 422
    assert "Type your email to confirm: Type your e-mail address exactly" in wrong.text
    r = await web.form(
        "/dashboard/account", "/dashboard/account/delete", {"confirm": "BYE@example.com"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/?status=erased"
    assert "deleted" in (await web.get("/?status=erased")).text
    async with web.sessions() as session:
        assert await session.get(Account, account_id) is None
    assert (await web.get("/dashboard")).status_code == 303
    assert (
        await web.client.get("/v1/account", headers={"Authorization": f"Bearer {secret}"})
    ).status_code == 401
    assert (await web.browser().log_in("bye@example.com")).status_code == 400


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Ada+promo@Example.com", "ada@example.com"),
        ("a.d.a+x@googlemail.com", "ada@gmail.com"),
        ("a.da@example.com", "a.da@example.com"),
    ],
)
def test_canonical_address(raw: str, canonical: str) -> None:
    assert canonical_address(raw) == canonical


async def test_trial_credits_go_once_per_address(web: Web) -> None:
    await web.open_account("trial@example.com")
    assert await _balance(web, "trial@example.com") == 10
    await web.form(
        "/dashboard/account", "/dashboard/account/delete", {"confirm": "trial@example.com"}
    )
    again = web.browser()
    await again.open_account("trial@example.com")
    assert await _balance(web, "trial@example.com") == 0
    tagged = web.browser()
    await tagged.open_account("trial+second@example.com")
    assert await _balance(web, "trial+second@example.com") == 0
    fresh = web.browser()
    await fresh.open_account("someone.else@example.com")
    assert await _balance(web, "someone.else@example.com") == 10


async def test_every_mailed_link_leads_to_a_page_that_exists(service_factory: Any) -> None:
    async with web_service(service_factory, public_url="https://alttext.example:8443") as web:
        await web.open_account("links@example.com")
        await web.browser().sign_up("links@example.com")  # the notice to an existing account
        await web.browser().form(
            "/password/forgot", "/password/forgot", {"email": "links@example.com"}
        )
        other = web.browser()
        await other.open_account("other@example.com")
        await web.form(
            "/dashboard/account",
            "/dashboard/account/profile",
            {"name": "", "email": "new@example.com"},
        )
        await web.form(
            "/dashboard/account",
            "/dashboard/account/profile",
            {"name": "", "email": "other@example.com"},
        )  # in use: a notice
        await web.form(
            "/dashboard/account",
            "/dashboard/account/password",
            {"current_password": PASSWORD, "new_password": "yet another passphrase"},
        )
        subjects = {m.subject for m in web.mail.sent}
        assert len(subjects) >= 7, subjects
        urls = [u for m in web.mail.sent for u in re.findall(r"https?://[^\s)]+", m.body)]
        assert urls
        for url in urls:
            assert url.startswith("https://alttext.example:8443/"), url
            path = url.removeprefix("https://alttext.example:8443").rstrip(".,")
            if path.startswith("/v1/"):
                continue  # the API alternative, named with its method in the mail
            r = await web.browser().get(path)
            assert r.status_code in (200, 303, 400), (path, r.status_code)
            if r.status_code == 303:
                assert r.headers["location"].startswith("/login?next="), path
            assert r.status_code != 404


def test_development_links_follow_host_and_port() -> None:
    from alttext.config import Settings

    settings = Settings(_env_file=None, host="127.0.0.1", port=9123)  # type: ignore[call-arg]
    assert settings.public_url == "http://127.0.0.1:9123"
    wildcard = Settings(_env_file=None, host="0.0.0.0", port=8080)  # type: ignore[call-arg]
    assert wildcard.public_url == "http://127.0.0.1:8080"
    given = Settings(_env_file=None, public_url="https://alt.example/", port=1)  # type: ignore[call-arg]
    assert given.public_url == "https://alt.example"
    assert json.dumps(given.public_url)
