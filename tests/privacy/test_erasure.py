"""Erasure: explicit confirmation, the Stripe customer deleted through the API, and afterwards a
search of the whole database for the account's e-mail, key prefixes and id finds nothing but
the documented anonymised accounting rows."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from alttext.accounts.models import Account
from alttext.billing.models import CreditEntry, StripeEvent
from alttext.cli import app as cli
from alttext.db import transaction, utcnow
from alttext.jobstore.models import Job, JobItem, WebhookAttempt, WebhookMessage, WebhookSigning
from alttext.models_registry import metadata
from alttext.privacy.models import AuditEvent
from tests.fakes.stripe import FakeStripe
from tests.privacy.jobs_support import add_job, add_message, add_signing
from tests.privacy.rights_support import RightsService, rights_service


def _stripe(fake: FakeStripe) -> dict[str, Any]:
    return {
        "stripe_secret_key": fake.api_key,
        "stripe_api_base": fake.base_url,
        "stripe_webhook_secret": fake.webhook_secret,
        "public_url": "https://alttext.example",
    }


@pytest.fixture
async def rs(
    service_factory: Callable[..., Any], fake_stripe: FakeStripe
) -> AsyncIterator[RightsService]:
    async with rights_service(service_factory, **_stripe(fake_stripe)) as r:
        yield r


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


async def _deliver(rs: RightsService, fake: FakeStripe, event_type: str, obj: Any) -> None:
    body, header = fake.signed(fake.event(event_type, obj))
    r = await rs.client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


async def _full_account(
    rs: RightsService, fake: FakeStripe, email: str
) -> tuple[str, dict[str, str], list[str]]:
    """An account with a purchase, a partial refund, usage, two keys and choices made."""
    account_id, headers, prefix = await rs.open_account(email)
    r = await rs.client.post("/v1/billing/checkout", headers=headers, json={"amount_usd": 6})
    assert r.status_code == 200, r.text
    session = fake.pay(r.json()["session_id"])
    await _deliver(rs, fake, "checkout.session.completed", session)
    charge = fake.refund(fake.charge_for(session["id"])["id"], 300)
    await _deliver(rs, fake, "charge.refunded", charge)
    ok = await rs.client.post(
        "/v1/alt-text",
        headers={**headers, "Idempotency-Key": "erase-me"},
        files={"image": ("a.png", png())},
    )
    assert ok.status_code == 200, ok.text
    second = await rs.client.post("/v1/keys", headers=headers, json={"name": email})
    await rs.client.patch("/v1/account", headers=headers, json={"name": "Erin", "history": True})
    await rs.client.patch("/v1/account", headers=headers, json={"email": f"new-{email}"})
    await rs.client.post("/v1/account/restrict", headers=headers)
    await rs.client.delete("/v1/account/restrict", headers=headers)
    await rs.client.get("/v1/account/export", headers=headers)
    return account_id, headers, [prefix, second.json()["secret"][:12]]


async def _dump(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, str]]:
    """(table, column, value) for every non-null value of every row of every table."""
    out = []
    async with sessions() as session:
        for table in metadata().sorted_tables:
            for row in await session.execute(select(table)):
                for column, value in row._mapping.items():
                    if value is not None:
                        out.append((table.name, str(column), str(value)))
    return out


async def test_erasure_leaves_only_anonymised_accounting_rows(
    rs: RightsService, fake_stripe: FakeStripe
) -> None:
    email = "erin@example.com"
    account_id, headers, prefixes = await _full_account(rs, fake_stripe, email)
    keep_id, keep_headers, _ = await _full_account(rs, fake_stripe, "keep@example.com")
    async with rs.sessions() as session:
        customer = await session.scalar(
            select(Account.stripe_customer_id).where(Account.id == account_id)
        )
    assert customer in fake_stripe.customers
    needles = [email, f"new-{email}", account_id, customer, *prefixes]
    before = [v for *_, v in await _dump(rs.sessions)]
    assert all(any(n in v for v in before) for n in needles)

    r = await rs.client.request("DELETE", "/v1/account", headers=headers, json={"confirm": email})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "erased": True,
        "kept": {
            "credit_entries": 2,
            "audit_events": r.json()["kept"]["audit_events"],
            "stripe_events": 2,
        },
    }
    assert r.json()["kept"]["audit_events"] >= 8

    # Keys stopped working; the Stripe customer was deleted through the API.
    assert (await rs.client.get("/v1/account", headers=headers)).status_code == 401
    assert customer not in fake_stripe.customers
    assert ("DELETE", f"/v1/customers/{customer}") in {
        (q.method, q.path) for q in fake_stripe.requests
    }

    found = [
        (table, column)
        for table, column, value in await _dump(rs.sessions)
        if any(n in value for n in needles)
    ]
    assert found == [], found

    # What is kept: the purchase and the refund, with amounts, under an anonymous identity.
    async with rs.sessions() as session:
        anon = (
            await session.execute(select(Account).where(Account.status == "erased"))
        ).scalar_one()
        kept = list(
            (
                await session.execute(
                    select(CreditEntry)
                    .where(CreditEntry.account_id == anon.id)
                    .order_by(CreditEntry.created_at)
                )
            ).scalars()
        )
        erase_event = (
            await session.execute(select(AuditEvent).where(AuditEvent.action == "erase"))
        ).scalar_one()
        inbox = list((await session.execute(select(StripeEvent))).scalars())
        gone = await session.get(Account, account_id)
    assert gone is None
    assert anon.email == f"{anon.id}@erased.invalid"
    assert anon.name is None
    assert anon.stripe_customer_id is None
    assert anon.erased_at is not None
    assert [(e.kind, e.amount_usd) for e in kept] == [("purchase", 6.0), ("refund", -3.0)]
    assert all(e.receipt_url is None for e in kept)
    assert anon.credits_balance == sum(e.credits for e in kept)
    assert erase_event.account_id == anon.id
    assert erase_event.actor == "account"
    assert email not in (erase_event.detail or "")
    erased_inbox = [e for e in inbox if e.account_id is None]
    assert len(erased_inbox) == 2
    assert all(json.loads(e.payload)["erased"] is True for e in erased_inbox)

    # The other account is untouched, and the address may sign up again.
    assert (await rs.client.get("/v1/account", headers=keep_headers)).json()["id"] == keep_id
    export = (await rs.client.get("/v1/account/export", headers=keep_headers)).json()
    assert len(export["credit_entries"]) >= 3
    assert len(export["api_keys"]) == 2
    assert (await rs.signup(email)).status_code == 202


async def test_wrong_confirmation_changes_nothing(rs: RightsService) -> None:
    account_id, headers, _ = await rs.open_account("sure@example.com")
    before = await _dump(rs.sessions)
    for body in ({"confirm": "other@example.com"}, {"confirm": ""}, {}, {"confirm": 1}):
        r = await rs.client.request("DELETE", "/v1/account", headers=headers, json=body)
        assert r.status_code == 422, body
    after = await _dump(rs.sessions)
    # Only the audit trail grew (a refused erasure is recorded too).
    assert [x for x in after if x[0] != "audit_events"] == [
        x for x in before if x[0] != "audit_events"
    ]
    assert ("account", "erase_refused", {"reason": "confirm"}) in await rs.audit(account_id)
    assert (await rs.client.get("/v1/account", headers=headers)).status_code == 200


async def test_stripe_failure_answers_503_and_changes_nothing(
    rs: RightsService, fake_stripe: FakeStripe
) -> None:
    account_id, headers, _ = await _full_account(rs, fake_stripe, "busy@example.com")
    before = await _dump(rs.sessions)
    fake_stripe.down = True
    r = await rs.client.request(
        "DELETE", "/v1/account", headers=headers, json={"confirm": "busy@example.com"}
    )
    assert r.status_code == 503
    assert await _dump(rs.sessions) == before
    assert (await rs.client.get("/v1/account", headers=headers)).status_code == 200
    fake_stripe.down = False
    again = await rs.client.request(
        "DELETE", "/v1/account", headers=headers, json={"confirm": "busy@example.com"}
    )
    assert again.status_code == 200
    async with rs.sessions() as session:
        assert await session.get(Account, account_id) is None


async def test_erasure_without_stripe_and_case_insensitive_confirmation(
    service_factory: Callable[..., Any],
) -> None:
    async with rights_service(service_factory) as rs:
        account_id, headers, prefix = await rs.open_account("plain@example.com")
        r = await rs.client.request(
            "DELETE", "/v1/account", headers=headers, json={"confirm": "Plain@Example.com"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["kept"]["credit_entries"] == 0  # the free grant is not accounting
        values = [v for *_, v in await _dump(rs.sessions)]
        assert not any(account_id in v or prefix in v or "plain@" in v for v in values)


async def _job_rows(sessions: async_sessionmaker[AsyncSession], account_id: str) -> dict[str, int]:
    counts = {}
    async with sessions() as session:
        for model in (Job, JobItem, WebhookSigning, WebhookMessage, WebhookAttempt):
            table = model.__table__
            n = await session.scalar(
                select(func.count()).select_from(table).where(table.c.account_id == account_id)
            )
            counts[table.name] = int(n or 0)
    return counts


async def test_erasure_deletes_jobs_items_and_webhook_deliveries(
    service_factory: Callable[..., Any],
) -> None:
    """Finished, open and crawled jobs with items, webhook messages (one whose job is gone, one
    still being retried) with their attempts, and the signing version: all gone; another
    account's rows stay."""
    async with rights_service(service_factory) as rs:
        account_id, headers, _ = await rs.open_account("jobs@example.com")
        other_id, other_headers, _ = await rs.open_account("jobs-other@example.com")
        for owner, tag in ((account_id, "erase-me"), (other_id, "keep-me")):
            async with transaction(rs.sessions) as session:
                done = await add_job(session, owner, items=4, finished_at=utcnow(), tag=tag)
                await add_job(session, owner, items=3, status="running", tag=tag)
                await add_message(session, owner, done.job_id, finished_at=utcnow(), tag=tag)
                await add_message(session, owner, None, state="pending", attempts=1, tag=tag)
                add_signing(session, owner)
        expected = {
            "jobs": 2,
            "job_items": 7,
            "webhook_signing": 1,
            "webhook_messages": 2,
            "webhook_attempts": 3,
        }
        assert await _job_rows(rs.sessions, account_id) == expected
        other_before = [row for row in await _dump(rs.sessions) if "keep-me" in row[2]]

        r = await rs.client.request(
            "DELETE", "/v1/account", headers=headers, json={"confirm": "jobs@example.com"}
        )
        assert r.status_code == 200, r.text

        assert await _job_rows(rs.sessions, account_id) == dict.fromkeys(expected, 0)
        assert await _job_rows(rs.sessions, other_id) == expected
        values = await _dump(rs.sessions)
        assert not [row for row in values if account_id in row[2] or "erase-me" in row[2]]
        assert [row for row in values if "keep-me" in row[2]] == other_before
        async with rs.sessions() as session:
            erase = (
                await session.execute(select(AuditEvent).where(AuditEvent.action == "erase"))
            ).scalar_one()
        deleted = json.loads(erase.detail or "{}")["deleted"]
        assert {name: deleted[name] for name in expected} == expected
        export = await rs.client.get("/v1/account/export", headers=other_headers)
        assert len(export.json()["job_items"]) == 7


def test_cli_export_and_erase(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", database_url)
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    monkeypatch.setenv("ALTTEXT_PROVIDER", "local")
    monkeypatch.delenv("ALTTEXT_STRIPE_SECRET_KEY", raising=False)
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["accounts", "create", "cli@example.com", "--credits", "3"]).exit_code
        == 0
    )
    assert runner.invoke(cli, ["keys", "create", "cli@example.com"]).exit_code == 0

    exported = runner.invoke(cli, ["accounts", "export", "cli@example.com"])
    assert exported.exit_code == 0, exported.output
    doc = json.loads(exported.output)
    assert doc["account"]["email"] == "cli@example.com"
    assert len(doc["api_keys"]) == 1
    assert [e["action"] for e in doc["audit_events"]] == ["export"]
    assert doc["audit_events"][0]["actor"] == "admin"

    refused = runner.invoke(cli, ["accounts", "erase", "cli@example.com"])
    assert refused.exit_code == 2
    erased = runner.invoke(cli, ["accounts", "erase", "cli@example.com", "--yes"])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["erased"] is True
    missing = runner.invoke(cli, ["accounts", "export", "cli@example.com"])
    assert missing.exit_code == 1

    assert _admin_trail(database_url) == (["admin"], 1)


def _admin_trail(database_url: str) -> tuple[list[str], int]:
    """Actors of erase events and how many accounts are left (only the anonymised one)."""
    from alttext.db import create_engine, session_factory

    async def run() -> tuple[list[str], int]:
        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                actors = (
                    await session.execute(
                        select(AuditEvent.actor).where(AuditEvent.action == "erase")
                    )
                ).scalars()
                n = await session.scalar(select(func.count()).select_from(Account))
                return list(actors), int(n or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())
