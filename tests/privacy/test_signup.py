"""Sign-up: consent and age or no account; verification by a one-time mailed token; no leak of
whether an address has an account."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from alttext.accounts.models import Account
from alttext.billing.models import CreditEntry
from alttext.privacy.models import Consent, EmailToken
from alttext.privacy.policy_versions import PRIVACY_VERSION, TERMS_VERSION
from alttext.privacy.tokens import hash_token
from tests.privacy.rights_support import SIGNUP, RightsService, rights_service


@pytest.fixture
async def rs(service_factory: Callable[..., Any]) -> AsyncIterator[RightsService]:
    async with rights_service(service_factory) as r:
        yield r


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


async def _accounts(rs: RightsService) -> int:
    async with rs.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


@pytest.mark.parametrize("missing", ["accept_terms", "accept_privacy", "confirm_age_18"])
@pytest.mark.parametrize("value", [False, None, "yes"])
async def test_no_account_without_consent_and_age(
    rs: RightsService, missing: str, value: Any
) -> None:
    body: dict[str, Any] = {"email": "new@example.com", **SIGNUP}
    if value is None:
        del body[missing]
    else:
        body[missing] = value
    r = await rs.client.post("/v1/signup", json=body)
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_request"
    assert missing in {e["field"] for e in r.json()["errors"]}
    assert await _accounts(rs) == 0
    assert rs.mail.sent == []


async def test_signup_records_consents_then_verify_opens_account_with_a_working_key(
    rs: RightsService,
) -> None:
    r = await rs.signup("New@Example.com", name="Ada", product_email=True)
    assert r.status_code == 202
    async with rs.sessions() as session:
        account = (await session.execute(select(Account))).scalar_one()
        consents = list((await session.execute(select(Consent).order_by(Consent.kind))).scalars())
        token_row = (await session.execute(select(EmailToken))).scalar_one()
    assert (account.email, account.name, account.status) == ("new@example.com", "Ada", "unverified")
    assert account.product_email_opt_in is True
    assert account.credits_balance == 0
    assert {(c.kind, c.version, c.granted, c.source) for c in consents} == {
        ("terms", TERMS_VERSION, True, "signup"),
        ("privacy", PRIVACY_VERSION, True, "signup"),
        ("age_18", None, True, "signup"),
        ("product_email", None, True, "signup"),
    }
    token = rs.mail.token_for("new@example.com")
    # Only the hash is stored; the mailed secret is 32 random bytes.
    assert token_row.token_hash == hash_token(token)
    assert token not in token_row.token_hash
    assert len(token) >= 43
    assert token_row.purpose == "verify_signup"

    v = await rs.client.post("/v1/signup/verify", json={"token": token})
    assert v.status_code == 201, v.text
    body = v.json()
    assert body["account_id"] == account.id
    headers = {"Authorization": f"Bearer {body['api_key']['secret']}"}
    assert body["api_key"]["prefix"] == body["api_key"]["secret"][:12] + "…"
    me = (await rs.client.get("/v1/account", headers=headers)).json()
    assert me["status"] == "active"
    assert me["credits_remaining"] == 5  # ALTTEXT_FREE_CREDITS
    ok = await rs.client.post("/v1/alt-text", headers=headers, files={"image": ("a.png", png())})
    assert ok.status_code == 200, ok.text
    async with rs.sessions() as session:
        refs = (await session.execute(select(CreditEntry.reference))).scalars().all()
        verified = await session.get(Account, account.id)
    assert f"signup:{account.id}" in refs
    assert verified is not None
    assert verified.email_verified_at is not None
    assert [a for _, a, _ in await rs.audit(account.id)] == ["signup", "verify_email"]


async def test_an_unverified_account_cannot_authenticate(rs: RightsService) -> None:
    await rs.signup("wait@example.com")
    async with rs.sessions() as session:
        account = (await session.execute(select(Account))).scalar_one()
    from alttext.accounts.service import create_key
    from alttext.db import transaction

    async with transaction(rs.sessions) as session:
        _, secret = await create_key(session, account.id)
    r = await rs.client.get("/v1/account", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401


async def test_token_is_single_use_and_expires(rs: RightsService) -> None:
    await rs.signup("once@example.com")
    token = rs.mail.token_for("once@example.com")
    assert (await rs.client.post("/v1/signup/verify", json={"token": token})).status_code == 201
    again = await rs.client.post("/v1/signup/verify", json={"token": token})
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_request"
    unknown = await rs.client.post("/v1/signup/verify", json={"token": "x" * 43})
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == again.json()["detail"]

    await rs.signup("late@example.com")
    late = rs.mail.token_for("late@example.com")
    async with rs.sessions.begin() as session:
        await session.execute(
            update(EmailToken)
            .where(EmailToken.token_hash == hash_token(late))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    expired = await rs.client.post("/v1/signup/verify", json={"token": late})
    assert expired.status_code == 400
    async with rs.sessions() as session:
        status = await session.scalar(
            select(Account.status).where(Account.email == "late@example.com")
        )
    assert status == "unverified"


async def test_a_new_signup_link_replaces_the_old_one(rs: RightsService) -> None:
    await rs.signup("twice@example.com")
    first = rs.mail.token_for("twice@example.com")
    await rs.signup("twice@example.com")
    second = rs.mail.token_for("twice@example.com")
    assert first != second
    assert (await rs.client.post("/v1/signup/verify", json={"token": first})).status_code == 400
    assert (await rs.client.post("/v1/signup/verify", json={"token": second})).status_code == 201


async def test_existing_address_gets_the_same_answer_and_a_notice(rs: RightsService) -> None:
    account_id, _, _ = await rs.open_account("taken@example.com")
    fresh = await rs.signup("fresh@example.com")
    existing = await rs.signup("TAKEN@example.com", name="Mallory")
    assert existing.status_code == fresh.status_code == 202
    assert existing.json() == fresh.json()
    assert dict(existing.headers).keys() == dict(fresh.headers).keys()
    notice = rs.mail.to("taken@example.com")[-1]
    assert "tried to sign up" in notice.body
    assert "token=" not in notice.body
    async with rs.sessions() as session:
        account = await session.get(Account, account_id)
        n = await session.scalar(
            select(func.count()).select_from(Account).where(Account.email == "taken@example.com")
        )
    assert account is not None
    assert account.name is None
    assert n == 1


async def test_signup_is_rate_limited_per_address(rs: RightsService) -> None:
    codes = [(await rs.signup(f"u{i}@example.com")).status_code for i in range(11)]
    assert codes[:10] == [202] * 10
    assert codes[10] == 429


async def test_invalid_address_and_unknown_fields_are_422(rs: RightsService) -> None:
    assert (await rs.signup("not-an-address")).status_code == 422
    assert (await rs.signup("ok@example.com", admin=True)).status_code == 422
    assert await _accounts(rs) == 0
