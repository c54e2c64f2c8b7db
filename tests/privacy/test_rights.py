"""Access/portability (export checked against the database), rectification with a confirmed
address change, objection opt-outs, restriction, and the audit trail of each."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from alttext.accounts import sessions as web_sessions
from alttext.accounts.models import Account
from alttext.billing.models import StripeEvent
from alttext.db import transaction, utcnow
from alttext.models_registry import metadata
from alttext.privacy.export import CHUNK
from alttext.privacy.models import Consent
from tests.privacy.jobs_support import add_job, add_message, add_signing
from tests.privacy.rights_support import RightsService, rights_service


@pytest.fixture
async def rs(service_factory: Callable[..., Any]) -> AsyncIterator[RightsService]:
    async with rights_service(service_factory) as r:
        yield r


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


async def _jobs(rs: RightsService, account_id: str, tag: str) -> None:
    """A finished bulk job with items, a webhook message with attempts, a rotated secret."""
    async with transaction(rs.sessions) as session:
        job = await add_job(session, account_id, items=3, finished_at=utcnow(), tag=tag)
        await add_message(session, account_id, job.job_id, finished_at=utcnow(), tag=tag)
        add_signing(session, account_id)


async def _use(rs: RightsService, headers: dict[str, str]) -> None:
    """Leave rows in every table: usage, reservations, idempotency, keys, consents, events."""
    ok = await rs.client.post(
        "/v1/alt-text",
        headers={**headers, "Idempotency-Key": "k-1"},
        files={"image": ("a.png", png())},
    )
    assert ok.status_code == 200, ok.text
    bad = await rs.client.post("/v1/alt-text", headers=headers, files={"image": ("a.png", b"x")})
    assert bad.status_code == 415, bad.text
    assert bad.json()["code"] == "unsupported_media_type"
    assert (await rs.client.post("/v1/keys", headers=headers, json={"name": "ci"})).is_success
    patched = await rs.client.patch("/v1/account", headers=headers, json={"history": True})
    assert patched.status_code == 200


async def test_export_holds_every_row_about_the_account(rs: RightsService) -> None:
    account_id, headers, _ = await rs.open_account("me@example.com")
    other_id, other_headers, _ = await rs.open_account("other@example.com")
    await _use(rs, headers)
    await _use(rs, other_headers)
    await _jobs(rs, account_id, "mine")
    await _jobs(rs, other_id, "theirs")
    async with transaction(rs.sessions) as session:
        session.add(
            StripeEvent(
                id="evt_export",
                type="checkout.session.completed",
                state="processed",
                account_id=account_id,
                payload=json.dumps({"data": {"object": {"metadata": {"account_id": account_id}}}}),
            )
        )
        await web_sessions.start(session, account_id)  # a dashboard sign-in

    r = await rs.client.get("/v1/account/export", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == (
        f'attachment; filename="alttext-export-{account_id}.json"'
    )
    doc = r.json()
    assert doc["format_version"] == 1
    assert doc["generated_at"].endswith("Z")
    assert doc["account"]["id"] == account_id
    assert doc["account"]["email"] == "me@example.com"

    checked = []
    async with rs.sessions() as session:
        for table in metadata().sorted_tables:
            if "account_id" not in table.c:
                continue
            pk = [c.name for c in table.primary_key]
            rows = await session.execute(select(table).where(table.c.account_id == account_id))
            in_db = {tuple(str(v) for v in (row._mapping[c] for c in pk)) for row in rows}
            assert table.name in doc, f"{table.name} is missing from the export"
            exported = {tuple(str(item[c]) for c in pk) for item in doc[table.name]}
            assert exported == in_db, table.name
            assert in_db, f"the test left no {table.name} row to compare"
            checked.append(table.name)
    assert {"api_keys", "usage_events", "credit_entries", "credit_reservations"} <= set(checked)
    assert {"idempotency_records", "stripe_events", "consents", "email_tokens"} <= set(checked)
    assert "audit_events" in checked
    assert {"jobs", "job_items", "webhook_signing", "webhook_messages"} <= set(checked)
    assert "webhook_attempts" in checked

    text = r.text
    assert other_id not in text
    assert "other@example.com" not in text
    assert all("key_hash" not in k for k in doc["api_keys"])
    assert all("token_hash" not in t for t in doc["email_tokens"])
    assert all("token_hash" not in t for t in doc["web_sessions"])
    assert "password_hash" not in doc["account"]
    stored = doc["idempotency_records"][0]["response_body"]
    assert isinstance(stored, dict)
    assert "alt_text" in stored
    assert doc["stripe_events"][0]["payload"]["data"]["object"]["metadata"]["account_id"]
    # Job options, item options and results, and webhook bodies are JSON, not escaped strings.
    assert doc["jobs"][0]["defaults"]["context"] == "Shop page mine"
    items = doc["job_items"]
    assert [i["seq"] for i in items] == [0, 1, 2]
    assert items[1]["options"] == {"context": "Product 1 mine"}
    assert items[0]["review_reasons"] == ["low_confidence"]
    assert items[0]["problem"] == {"code": "image_fetch_failed"}
    assert items[0]["alt_text"] == "A red bicycle number 0 mine"
    assert doc["webhook_messages"][0]["payload"]["type"] == "job.completed"
    assert [a["attempt"] for a in doc["webhook_attempts"]] == [1, 2]
    assert doc["webhook_signing"] == [
        {
            "account_id": account_id,
            "version": 2,
            "rotated_at": doc["webhook_signing"][0]["rotated_at"],
        }
    ]
    assert "theirs" not in text
    assert ("account", "export", {}) in await rs.audit(account_id)


async def test_email_change_needs_the_new_address_confirmed(rs: RightsService) -> None:
    account_id, headers, _ = await rs.open_account("old@example.com")
    r = await rs.client.patch("/v1/account", headers=headers, json={"email": "New@Example.com"})
    assert r.status_code == 200
    assert r.json()["email"] == "old@example.com"
    assert r.json()["email_change_pending"] is True
    assert "token=" not in rs.mail.to("old@example.com")[-1].body  # a notice only
    token = rs.mail.token_for("new@example.com")
    me = (await rs.client.get("/v1/account", headers=headers)).json()
    assert me["email"] == "old@example.com"

    _other_id, other_headers, _ = await rs.open_account("someone@example.com")
    stolen = await rs.client.post(
        "/v1/account/email/confirm", headers=other_headers, json={"token": token}
    )
    assert stolen.status_code == 400  # another account's token

    done = await rs.client.post("/v1/account/email/confirm", headers=headers, json={"token": token})
    assert done.status_code == 200, done.text
    assert done.json()["email"] == "new@example.com"
    again = await rs.client.post(
        "/v1/account/email/confirm", headers=headers, json={"token": token}
    )
    assert again.status_code == 400
    assert [a for _, a, _ in await rs.audit(account_id)][-2:] == [
        "email_change_requested",
        "rectify",
    ]


async def test_email_change_to_a_taken_address(rs: RightsService) -> None:
    _, headers, _ = await rs.open_account("a@example.com")
    await rs.open_account("b@example.com")
    r = await rs.client.patch("/v1/account", headers=headers, json={"email": "b@example.com"})
    # Same answer as for a free address; only the owner of b@ hears about it.
    assert r.status_code == 200
    assert r.json()["email_change_pending"] is True
    assert "token=" not in rs.mail.to("b@example.com")[-1].body

    # Taken meanwhile: requested while free, then someone signs up with it.
    await rs.client.patch("/v1/account", headers=headers, json={"email": "c@example.com"})
    token = rs.mail.token_for("c@example.com")
    await rs.open_account("c@example.com")
    late = await rs.client.post("/v1/account/email/confirm", headers=headers, json={"token": token})
    assert late.status_code == 409
    me = (await rs.client.get("/v1/account", headers=headers)).json()
    assert me["email"] == "a@example.com"


async def test_name_and_opt_outs_are_applied_and_recorded(rs: RightsService) -> None:
    account_id, headers, _ = await rs.open_account("opt@example.com")
    r = await rs.client.patch(
        "/v1/account",
        headers=headers,
        json={"name": "Grace", "history": True, "product_email": True},
    )
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["history"], r.json()["product_email"]) == (
        "Grace",
        True,
        True,
    )
    r = await rs.client.patch(
        "/v1/account", headers=headers, json={"history": False, "product_email": False}
    )
    assert (r.json()["name"], r.json()["history"], r.json()["product_email"]) == (
        "Grace",
        False,
        False,
    )
    async with rs.sessions() as session:
        account = await session.get(Account, account_id)
        consents = (
            await session.execute(
                select(Consent.kind, Consent.granted, Consent.source)
                .where(Consent.account_id == account_id, Consent.source == "api")
                .order_by(Consent.created_at, Consent.id)
            )
        ).all()
    assert account is not None
    assert not account.history_opt_in
    assert sorted(consents) == sorted(
        [
            ("history", True, "api"),
            ("product_email", True, "api"),
            ("history", False, "api"),
            ("product_email", False, "api"),
        ]
    )
    trail = await rs.audit(account_id)
    assert ("account", "rectify", {"fields": ["name"]}) in trail
    assert ("account", "processing_choices", {"history": False, "product_email": False}) in trail
    for body in ({"status": "active"}, {"credits_balance": 9}, {"history": "yes"}):
        assert (await rs.client.patch("/v1/account", headers=headers, json=body)).status_code == 422


async def test_restriction_stops_processing_until_lifted(rs: RightsService) -> None:
    account_id, headers, _ = await rs.open_account("stop@example.com")
    r = await rs.client.post("/v1/account/restrict", headers=headers)
    assert r.status_code == 200
    assert r.json()["restricted"] is True
    refused = await rs.client.post(
        "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "account_restricted"
    image = base64.b64encode(png()).decode()
    batch = await rs.client.post(
        "/v1/alt-text/batch", headers=headers, json={"items": [{"id": "1", "image": image}]}
    )
    # The batch answers per item: every item refused, none processed or charged.
    if batch.status_code == 200:
        assert [i["error"]["code"] for i in batch.json()["data"]] == ["account_restricted"]
        assert batch.json()["succeeded"] == 0
    else:
        assert batch.status_code == 403
        assert batch.json()["code"] == "account_restricted"
    # Managing the account stays possible while restricted.
    assert (await rs.client.get("/v1/account", headers=headers)).status_code == 200
    assert (await rs.client.get("/v1/account/export", headers=headers)).status_code == 200
    patch = await rs.client.patch("/v1/account", headers=headers, json={"name": "S"})
    assert patch.status_code == 200
    assert patch.json()["restricted"] is True

    lifted = await rs.client.delete("/v1/account/restrict", headers=headers)
    assert lifted.status_code == 200
    assert lifted.json() == {
        "restricted": False,
        "restricted_at": None,
    }
    ok = await rs.client.post("/v1/alt-text", headers=headers, files={"image": ("a.png", png())})
    assert ok.status_code == 200
    actions = [(actor, a) for actor, a, _ in await rs.audit(account_id)]
    assert ("account", "restrict") in actions
    assert ("account", "lift_restriction") in actions


async def test_rights_need_a_key(rs: RightsService) -> None:
    for method, path in (
        ("GET", "/v1/account/export"),
        ("PATCH", "/v1/account"),
        ("POST", "/v1/account/restrict"),
        ("DELETE", "/v1/account/restrict"),
        ("DELETE", "/v1/account"),
        ("POST", "/v1/account/email/confirm"),
    ):
        r = await rs.client.request(method, path, json={})
        assert r.status_code == 401, (method, path)


async def test_restriction_stops_batch_and_checkout_and_shows_on_the_account(
    service: Any, account: Any
) -> None:
    restricted = await service.client.post("/v1/account/restrict", headers=account.headers)
    assert restricted.status_code == 200
    assert restricted.json()["restricted"] is True
    batch = await service.client.post(
        "/v1/alt-text/batch", headers=account.headers, json={"items": [{"id": "a", "image": "x"}]}
    )
    assert batch.status_code == 403
    assert batch.json()["code"] == "account_restricted"
    checkout = await service.client.post(
        "/v1/billing/checkout", headers=account.headers, json={"amount_usd": 5}
    )
    assert checkout.status_code == 403
    assert checkout.json()["code"] == "account_restricted"
    shown = await service.client.get("/v1/account", headers=account.headers)
    assert shown.json()["restricted"] is True
    await service.client.delete("/v1/account/restrict", headers=account.headers)
    shown = await service.client.get("/v1/account", headers=account.headers)
    assert shown.json()["restricted"] is False
    assert shown.json()["credits_remaining"] == 100


async def test_export_holds_every_item_of_big_jobs_in_order(rs: RightsService) -> None:
    """More items than one streamed chunk, over jobs created out of id order: all exported,
    job by job, each job's items in their order."""
    account_id, headers, _ = await rs.open_account("bulk@example.com")
    now = utcnow()
    async with transaction(rs.sessions) as session:
        big = await add_job(session, account_id, items=CHUNK + 234, finished_at=now, tag="big")
        small = await add_job(session, account_id, items=7, status="running", tag="small")
    r = await rs.client.get("/v1/account/export", headers=headers)
    assert r.status_code == 200
    doc = r.json()
    assert [j["id"] for j in doc["jobs"]] == [big.job_id, small.job_id]
    got = [(i["job_id"], i["seq"], i["id"]) for i in doc["job_items"]]
    expected = sorted(
        [(big.job_id, n, item) for n, item in enumerate(big.item_ids)]
        + [(small.job_id, n, item) for n, item in enumerate(small.item_ids)]
    )
    assert got == expected
    assert len(got) == CHUNK + 241
    assert all(i["image_url"].startswith("https://shop.example/") for i in doc["job_items"])
