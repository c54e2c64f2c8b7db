"""/v1/account, /v1/keys and /v1/usage."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


async def test_account_shows_balance_and_settings(service: Any, account: Any) -> None:
    r = await service.client.get("/v1/account", headers=account.headers)
    body = r.json()
    assert body["id"] == account.id
    assert body["email"] == "user@example.com"
    assert body["credits_remaining"] == 100
    assert body["settings"]["history"] is False
    assert body["created_at"].endswith("Z")


async def test_keys_list_create_and_revoke_at_once(service: Any, account: Any) -> None:
    created = await service.client.post("/v1/keys", headers=account.headers, json={"name": "ci"})
    assert created.status_code == 201
    new = created.json()
    assert new["secret"].startswith("at_live_")
    assert new["prefix"] == new["secret"][:12] + "…"

    listed = await service.client.get("/v1/keys", headers=account.headers)
    assert {k["id"] for k in listed.json()["data"]} == {account.key_id, new["id"]}
    assert all("secret" not in k for k in listed.json()["data"])

    new_headers = {"Authorization": f"Bearer {new['secret']}"}
    assert (await service.client.get("/v1/account", headers=new_headers)).status_code == 200
    revoked = await service.client.delete(f"/v1/keys/{new['id']}", headers=account.headers)
    assert revoked.status_code == 204
    # Revocation is immediate: there is no key cache.
    after = await service.client.get("/v1/account", headers=new_headers)
    assert after.status_code == 401
    listed = await service.client.get("/v1/keys", headers=account.headers)
    assert next(k for k in listed.json()["data"] if k["id"] == new["id"])["revoked_at"]


async def test_another_accounts_key_is_404_not_403(service: Any, account: Any) -> None:
    other = await service.create_account("other@example.com")
    r = await service.client.delete(f"/v1/keys/{other.key_id}", headers=account.headers)
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    missing = await service.client.delete("/v1/keys/key_nope", headers=account.headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == r.json()["detail"].replace(other.key_id, "key_nope")
    # The other account's key still works.
    assert (await service.client.get("/v1/account", headers=other.headers)).status_code == 200


async def test_last_used_is_recorded_off_the_hot_path(service: Any, account: Any) -> None:
    await service.client.get("/v1/account", headers=account.headers)
    keys = (await service.client.get("/v1/keys", headers=account.headers)).json()["data"]
    assert keys[0]["last_used_at"] is None  # buffered, not written during the request
    await service.app.state.services.last_used.flush(service.app.state.services.sessions)
    keys = (await service.client.get("/v1/keys", headers=account.headers)).json()["data"]
    assert keys[0]["last_used_at"] is not None


async def test_usage_aggregates_by_day_and_month_and_model(service: Any, account: Any) -> None:
    for context in ("first", "second"):  # two requests that differ: no answer from the cache
        ok = await service.client.post(
            "/v1/alt-text",
            headers=account.headers,
            files={"image": ("a.png", png())},
            data={"context": context},
        )
        assert ok.status_code == 200
    bad = await service.client.post(
        "/v1/alt-text", headers=account.headers, files={"image": ("a.png", png()[:40])}
    )
    assert bad.status_code == 400
    day = (await service.client.get("/v1/usage", headers=account.headers)).json()
    assert day["granularity"] == "day"
    # The corrupt image failed inside the engine: metered as failed, never charged.
    assert day["totals"]["requests"] == 3
    assert day["totals"]["failed"] == 1
    assert day["totals"]["credits"] == 2
    by_model = {row["model"]: row for row in day["data"]}
    assert by_model["local/rapidocr"]["succeeded"] == 2
    assert by_model[None]["failed"] == 1
    assert len(day["data"][0]["period"]) == 10
    month = await service.client.get(
        "/v1/usage", headers=account.headers, params={"granularity": "month"}
    )
    assert len(month.json()["data"][0]["period"]) == 7
    empty = await service.client.get(
        "/v1/usage", headers=account.headers, params={"from": "2020-01-01", "to": "2020-01-31"}
    )
    assert empty.json()["data"] == []
    for params in (
        {"from": "2026-13-01"},
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"granularity": "week"},
        {"from": "2000-01-01", "to": "2026-01-01"},
    ):
        r = await service.client.get("/v1/usage", headers=account.headers, params=params)
        assert r.status_code == 422, params
        assert r.json()["code"] == "invalid_request"


async def test_database_gone_is_a_clean_503(service: Any, account: Any) -> None:
    services = service.app.state.services
    await services.db.dispose()
    real = services.db.url
    # Point the pool at a database that cannot be opened.
    from alttext.db import create_engine, session_factory

    broken = create_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none"
        if real.get_backend_name() == "postgresql"
        else "sqlite+aiosqlite:////nonexistent-dir/x.db"
    )
    services.sessions = session_factory(broken)
    r = await service.client.get("/v1/account", headers=account.headers)
    assert r.status_code == 503
    assert r.json()["code"] == "service_unavailable"
    assert r.headers["retry-after"]
    await broken.dispose()


async def test_the_last_active_key_is_revoked_only_when_asked_explicitly(
    service: Any, account: Any
) -> None:
    r = await service.client.delete(f"/v1/keys/{account.key_id}", headers=account.headers)
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "invalid_request"
    assert f"DELETE /v1/keys/{account.key_id}?allow_last=true" in problem["detail"]
    assert problem["errors"][0]["field"] == "allow_last"
    # Nothing changed: the key still works.
    assert (await service.client.get("/v1/account", headers=account.headers)).status_code == 200

    # With a second key, the first may go; then the second is the last one.
    created = await service.client.post("/v1/keys", headers=account.headers, json={"name": "b"})
    second = {"Authorization": f"Bearer {created.json()['secret']}"}
    gone = await service.client.delete(f"/v1/keys/{account.key_id}", headers=second)
    assert gone.status_code == 204
    last = await service.client.delete(f"/v1/keys/{created.json()['id']}", headers=second)
    assert last.status_code == 422

    forced = await service.client.delete(
        f"/v1/keys/{created.json()['id']}", headers=second, params={"allow_last": "true"}
    )
    assert forced.status_code == 204
    assert (await service.client.get("/v1/account", headers=second)).status_code == 401
