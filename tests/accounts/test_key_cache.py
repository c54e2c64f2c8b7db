"""The API key cache: a checked key is trusted for a few seconds without the database, and every
change to what its Principal carries (revocation, suspension, restriction, erasure) takes effect
at once in this process, and, with Redis, in every process."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import event, update

from alttext.accounts import service as accounts
from alttext.accounts.key_cache import Invalidation, KeyCache
from alttext.accounts.models import Account, ApiKey
from alttext.accounts.service import Principal, create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.db import create_engine, session_factory, transaction, utcnow
from alttext.errors import Unauthorized
from tests.conftest import Account as SeededAccount
from tests.conftest import Service, make_settings, running_service
from tests.processes import free_port, service_process

REDIS_URL = os.environ.get("ALTTEXT_TEST_REDIS_URL")
KEY_LOOKUP = "api_keys.key_hash ="


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 32), "teal").save(buf, format="PNG")
    return buf.getvalue()


@contextmanager
def counted_lookups(svc: Service) -> Iterator[list[str]]:
    """The key lookups the service's database runs inside the block."""
    seen: list[str] = []

    def before(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if KEY_LOOKUP in statement:
            seen.append(statement)

    engine = svc.app.state.services.db.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.fixture
async def svc(database_url: str) -> AsyncIterator[Service]:
    # A long TTL: whatever is refused below is refused by invalidation, not by expiry.
    async with running_service(make_settings(database_url, key_cache_ttl_s=60)) as s:
        yield s


async def second_key(svc: Service, account: SeededAccount) -> tuple[str, str]:
    async with transaction(svc.app.state.services.sessions) as session:
        api_key, secret = await create_key(session, account.id, name="second")
    return api_key.id, secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def decorative(svc: Service, secret: str) -> httpx.Response:
    """A generation that needs no model: it shows restriction and suspension (403)."""
    return await svc.client.post(
        "/v1/alt-text",
        headers=bearer(secret),
        files={"image": ("a.png", png())},
        data={"role": "decorative"},
    )


# -- in one process -----------------------------------------------------------------------------


async def test_a_key_is_looked_up_once_then_served_from_memory(svc: Service) -> None:
    account = await svc.create_account()
    with counted_lookups(svc) as lookups:
        for _ in range(5):
            assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200
    assert len(lookups) == 1


async def test_revoking_a_key_through_the_api_refuses_it_at_once(svc: Service) -> None:
    account = await svc.create_account()
    key_id, secret = await second_key(svc, account)
    assert (await svc.client.get("/v1/account", headers=bearer(secret))).status_code == 200
    revoked = await svc.client.delete(f"/v1/keys/{key_id}", headers=account.headers)
    assert revoked.status_code == 204
    refused = await svc.client.get("/v1/account", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    # The other key of the account is unaffected.
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200


async def test_a_key_can_revoke_itself_and_is_refused_on_its_next_request(svc: Service) -> None:
    account = await svc.create_account()
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200
    revoked = await svc.client.delete(
        f"/v1/keys/{account.key_id}", params={"allow_last": "true"}, headers=account.headers
    )
    assert revoked.status_code == 204
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 401


async def test_revoking_through_the_service_layer_dashboard_and_cli_path(svc: Service) -> None:
    account = await svc.create_account()
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200
    # The dashboard and `alttext keys revoke` call this in a transaction of the process.
    async with transaction(svc.app.state.services.sessions) as session:
        await accounts.revoke_key(session, account.key_id)
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 401


async def test_restriction_and_its_lifting_take_effect_at_once(svc: Service) -> None:
    account = await svc.create_account()
    assert (await decorative(svc, account.key)).status_code == 200
    restricted = await svc.client.post("/v1/account/restrict", headers=account.headers)
    assert restricted.status_code == 200
    refused = await decorative(svc, account.key)
    assert refused.status_code == 403
    assert refused.json()["code"] == "account_restricted"
    lifted = await svc.client.delete("/v1/account/restrict", headers=account.headers)
    assert lifted.status_code == 200
    assert (await decorative(svc, account.key)).status_code == 200


async def test_a_suspension_by_bulk_update_takes_effect_at_once(svc: Service) -> None:
    account = await svc.create_account()
    assert (await decorative(svc, account.key)).status_code == 200
    # As a Stripe dispute does it (billing/stripe_events.py): an UPDATE, no ORM object.
    async with transaction(svc.app.state.services.sessions) as session:
        await session.execute(
            update(Account).where(Account.id == account.id).values(status="suspended")
        )
    refused = await decorative(svc, account.key)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


async def test_erasure_refuses_the_accounts_keys_at_once(svc: Service) -> None:
    account = await svc.create_account("erase-me@example.com")
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200
    erased = await svc.client.request(
        "DELETE", "/v1/account", headers=account.headers, json={"confirm": account.email}
    )
    assert erased.status_code == 200, erased.text
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 401


async def test_writes_that_change_no_principal_keep_the_cache(svc: Service) -> None:
    account = await svc.create_account()
    services = svc.app.state.services
    with counted_lookups(svc) as lookups:
        assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200
        async with transaction(services.sessions) as session:
            # A spend moves the balance; the recorder writes last_used_at.
            await session.execute(
                update(Account)
                .where(Account.id == account.id)
                .values(credits_balance=Account.credits_balance - 1)
            )
            await session.execute(
                update(ApiKey).where(ApiKey.id == account.key_id).values(last_used_at=utcnow())
            )
        await services.last_used.flush(services.sessions)
        assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200
    assert len(lookups) == 1


async def test_a_rolled_back_revocation_keeps_nothing_wrong(svc: Service) -> None:
    account = await svc.create_account()

    async def revoke_then_fail() -> None:
        async with transaction(svc.app.state.services.sessions) as session:
            await accounts.revoke_key(session, account.key_id)
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await revoke_then_fail()
    assert (await svc.client.get("/v1/account", headers=account.headers)).status_code == 200


# -- the cache on its own -----------------------------------------------------------------------


@pytest.fixture
async def seeded(database_url: str) -> AsyncIterator[tuple[Any, str, str]]:
    """(sessions, account id, secret) on a plain session factory."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with transaction(sessions) as session:
        account = await create_account(session, "cache@example.com")
        await grant_starting_credits(session, account, 1)
        _, secret = await create_key(session, account.id)
    yield sessions, account.id, secret
    await engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_entry_expires_after_the_ttl(seeded: tuple[Any, str, str]) -> None:
    sessions, _, secret = seeded
    clock = Clock()
    cache = KeyCache(5, clock=clock)
    first = await cache.authenticate(sessions, secret)
    assert len(cache) == 1
    clock.now += 4.9
    assert await cache.authenticate(sessions, secret) is first  # from memory
    clock.now += 0.2
    again = await cache.authenticate(sessions, secret)
    assert again == first
    assert again is not first  # looked up again


async def test_ttl_zero_turns_the_cache_off(seeded: tuple[Any, str, str]) -> None:
    sessions, _, secret = seeded
    cache = KeyCache(0)
    await cache.authenticate(sessions, secret)
    assert len(cache) == 0


async def test_malformed_and_unknown_keys_are_refused_and_never_kept(
    seeded: tuple[Any, str, str],
) -> None:
    from alttext.accounts.keys import generate_key

    sessions, _, secret = seeded
    cache = KeyCache(5)
    with pytest.raises(Unauthorized, match="malformed"):
        await cache.authenticate(sessions, secret[:-1] + ("a" if secret[-1] != "a" else "b"))
    with pytest.raises(Unauthorized, match="not valid"):
        await cache.authenticate(sessions, generate_key())
    assert len(cache) == 0


async def test_a_lookup_that_raced_an_invalidation_is_not_kept(
    seeded: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read before a revocation committed, answered after its invalidation: not stored."""
    sessions, account_id, secret = seeded
    cache = KeyCache(5)
    reading, go_on = asyncio.Event(), asyncio.Event()
    real = accounts.principal_for_digest

    async def slow_lookup(session: Any, digest: str) -> Principal:
        principal = await real(session, digest)
        reading.set()
        await go_on.wait()
        return principal

    monkeypatch.setattr("alttext.accounts.key_cache.principal_for_digest", slow_lookup)
    lookup = asyncio.create_task(cache.authenticate(sessions, secret))
    await reading.wait()
    cache.invalidate(Invalidation(accounts={account_id}))
    go_on.set()
    await lookup
    assert len(cache) == 0


async def test_invalidation_drops_only_what_it_names(seeded: tuple[Any, str, str]) -> None:
    sessions, account_id, secret = seeded
    cache = KeyCache(5)
    principal = await cache.authenticate(sessions, secret)
    cache.invalidate(Invalidation(keys={"key_other"}, accounts={"acct_other"}))
    assert len(cache) == 1
    cache.invalidate(Invalidation(keys={principal.key_id}))
    assert len(cache) == 0
    await cache.authenticate(sessions, secret)
    cache.invalidate(Invalidation(accounts={account_id}))
    assert len(cache) == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_without_a_reachable_redis_every_request_looks_its_key_up(
    seeded: tuple[Any, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The invalidation channel is down: no other process could tell us of a revocation, so
    nothing is kept (and authentication still works)."""
    sessions, _, secret = seeded
    cache = KeyCache(5, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="alttext.keys"):
        cache.start()
        for _ in range(50):
            if any("unreachable" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        try:
            assert not cache.active
            await cache.authenticate(sessions, secret)
            await cache.authenticate(sessions, secret)
            assert len(cache) == 0
        finally:
            await cache.aclose()
    assert any("unreachable" in r.getMessage() for r in caplog.records)


# -- across processes (Redis) -------------------------------------------------------------------


redis_only = pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set")


async def wait_active(cache: KeyCache) -> None:
    for _ in range(200):
        if cache.active:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the cache never subscribed to the invalidation channel")


@pytest.mark.redis
@redis_only
async def test_two_caches_on_one_redis_share_invalidations(seeded: tuple[Any, str, str]) -> None:
    """A commit in one process drops the entry in the other before the commit's block returns
    to its caller plus one turn of the other's event loop."""
    assert REDIS_URL
    sessions, _, secret = seeded
    here, there = KeyCache(60, redis_url=REDIS_URL), KeyCache(60, redis_url=REDIS_URL)
    here.watch(sessions)
    here.start()
    there.start()
    try:
        await wait_active(here)
        await wait_active(there)
        principal = await there.authenticate(sessions, secret)
        assert len(there) == 1
        async with transaction(sessions) as session:
            await accounts.revoke_key(session, principal.key_id)
        for _ in range(100):  # the message is out; the other side reads it on its next turn
            if len(there) == 0:
                break
            await asyncio.sleep(0.001)
        assert len(there) == 0
        with pytest.raises(Unauthorized):
            await there.authenticate(sessions, secret)
    finally:
        await here.aclose()
        await there.aclose()


@pytest.mark.redis
@redis_only
async def test_a_revocation_on_one_service_process_is_refused_by_another_at_once(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """Two `alttext serve` processes on one database and one Redis: a key cached by B (shown by
    B still accepting a key revoked behind its back) is refused by B as soon as A, or the
    command line, revokes it."""
    import shutil

    assert REDIS_URL
    db_path = tmp_path / "shared.db"
    shutil.copy(sqlite_template, db_path)
    url = f"sqlite+aiosqlite:///{db_path}"
    engine = create_engine(url)
    sessions = session_factory(engine)  # not watched: its writes tell nobody
    async with transaction(sessions) as session:
        account = await create_account(session, "two@example.com")
        _, admin_secret = await create_key(session, account.id, name="admin")
        target, target_secret = await create_key(session, account.id, name="target")
        sneaky, sneaky_secret = await create_key(session, account.id, name="sneaky")
        by_cli, by_cli_secret = await create_key(session, account.id, name="by-cli")
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": url,
        "ALTTEXT_REDIS_URL": REDIS_URL,
        "ALTTEXT_PROVIDER": "local",
        "ALTTEXT_KEY_CACHE_TTL_S": "60",
        "ALTTEXT_LOG_LEVEL": "WARNING",
        "ALTTEXT_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
    }
    port_a, port_b = free_port(), free_port()
    try:
        with service_process(env, port_a), service_process(env, port_b):
            async with httpx.AsyncClient(timeout=10) as client:
                a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
                for secret in (target_secret, sneaky_secret, by_cli_secret):
                    # Subscribed and serving: B remembers both keys after one request each.
                    for _ in range(100):
                        r = await client.get(f"{b}/v1/account", headers=bearer(secret))
                        if r.status_code == 200:
                            break
                        await asyncio.sleep(0.1)
                    assert r.status_code == 200
                # Revoked behind B's back (no process heard of it): B still trusts its entry.
                async with transaction(sessions) as session:
                    await session.execute(
                        update(ApiKey).where(ApiKey.id == sneaky.id).values(revoked_at=utcnow())
                    )
                r = await client.get(f"{b}/v1/account", headers=bearer(sneaky_secret))
                assert r.status_code == 200, "B does not cache keys"
                # Revoked through A: B refuses it on the very next request.
                r = await client.delete(f"{a}/v1/keys/{target.id}", headers=bearer(admin_secret))
                assert r.status_code == 204, r.text
                r = await client.get(f"{b}/v1/account", headers=bearer(target_secret))
                assert r.status_code == 401
                # Revoked by `alttext keys revoke`, a third process that builds only the
                # database and the key cache: B refuses it too.
                revoked = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "alttext", "keys", "revoke", by_cli.id],
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert revoked.returncode == 0, revoked.stderr
                r = await client.get(f"{b}/v1/account", headers=bearer(by_cli_secret))
                assert r.status_code == 401
    finally:
        await engine.dispose()


# -- one lookup per key at a time ---------------------------------------------------------------


def held_lookups(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], asyncio.Event]:
    """Key lookups (their digests) held until the event is set."""
    started: list[str] = []
    go_on = asyncio.Event()
    real = accounts.principal_for_digest

    async def held(session: Any, digest: str) -> Principal:
        started.append(digest)
        await go_on.wait()
        return await real(session, digest)

    monkeypatch.setattr("alttext.accounts.key_cache.principal_for_digest", held)
    return started, go_on


async def settle_tasks() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_concurrent_misses_for_one_key_share_one_lookup(
    seeded: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, account_id, secret = seeded
    cache = KeyCache(5)
    started, go_on = held_lookups(monkeypatch)
    tasks = [asyncio.create_task(cache.authenticate(sessions, secret)) for _ in range(50)]
    await settle_tasks()
    assert len(started) == 1
    go_on.set()
    principals = await asyncio.gather(*tasks)
    assert {p.account_id for p in principals} == {account_id}
    assert len(started) == 1
    assert len(cache) == 1


async def test_a_failed_lookup_fails_every_waiter_and_is_not_kept(
    seeded: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alttext.accounts.keys import generate_key

    sessions, _, _ = seeded
    cache = KeyCache(5)
    started, go_on = held_lookups(monkeypatch)
    unknown = generate_key()
    tasks = [asyncio.create_task(cache.authenticate(sessions, unknown)) for _ in range(5)]
    await settle_tasks()
    go_on.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, Unauthorized) for r in results)
    assert len(started) == 1
    assert len(cache) == 0
    with pytest.raises(Unauthorized):  # looked up again, not answered from a kept failure
        await cache.authenticate(sessions, unknown)
    assert len(started) == 2


async def test_a_request_after_an_invalidation_does_not_wait_for_an_older_lookup(
    seeded: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, account_id, secret = seeded
    cache = KeyCache(5)
    started, go_on = held_lookups(monkeypatch)
    before = asyncio.create_task(cache.authenticate(sessions, secret))
    await settle_tasks()
    cache.invalidate(Invalidation(accounts={account_id}))
    after = asyncio.create_task(cache.authenticate(sessions, secret))
    await settle_tasks()
    assert len(started) == 2  # its own lookup, which reads the row as it is now
    go_on.set()
    await asyncio.gather(before, after)
    assert len(cache) == 1  # only the lookup that began after the invalidation is kept


async def test_a_cancelled_lookup_hands_over_to_a_waiter(
    seeded: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, account_id, secret = seeded
    cache = KeyCache(5)
    started, go_on = held_lookups(monkeypatch)
    leader = asyncio.create_task(cache.authenticate(sessions, secret))
    await settle_tasks()
    waiter = asyncio.create_task(cache.authenticate(sessions, secret))
    await settle_tasks()
    leader.cancel()
    await settle_tasks()
    go_on.set()
    assert (await waiter).account_id == account_id
    assert leader.cancelled()
    assert len(started) == 2
