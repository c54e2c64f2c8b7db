"""The retention policy with a moved clock: old detail rolled up exactly and deleted, expiries
applied, nothing a human still needs removed, and a second run changing nothing."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.models import Account, ApiKey
from alttext.accounts.service import create_account, create_key
from alttext.billing.models import CreditReservation, StripeEvent
from alttext.db import create_engine, session_factory, transaction
from alttext.idempotency import IdempotencyRecord
from alttext.jobstore.models import Job, JobItem, WebhookAttempt, WebhookMessage, WebhookSigning
from alttext.privacy.inventory import data_inventory
from alttext.privacy.models import AuditEvent, Consent, EmailToken, UsageRollup
from alttext.privacy.retention import BATCH, purge, retention_schedule
from alttext.usage.models import UsageEvent
from tests.conftest import make_settings
from tests.privacy.jobs_support import add_job, add_message, add_signing

NOW = datetime(2031, 6, 15, 12, 0, tzinfo=UTC)
_seq = count()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _account(
    sessions: async_sessionmaker[AsyncSession],
    email: str = "a@example.com",
    *,
    status: str = "active",
    created_at: datetime | None = None,
) -> str:
    async with transaction(sessions) as session:
        account = await create_account(session, email)
        account.status = status
        if created_at is not None:
            account.created_at = created_at
        return account.id


def _event(account_id: str, created_at: datetime, **kw: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "id": f"req_{next(_seq):06d}",
        "account_id": account_id,
        "key_id": "key_x",
        "created_at": created_at,
        "status": "succeeded",
        "model": "m/one",
        "credits": 1,
        "input_tokens": 100,
        "output_tokens": 20,
        "upstream_cost_usd": 0.00012345,
        "alt_text": "A red bicycle.",
    }
    values.update(kw)
    return UsageEvent(**values)


def _plain(totals: dict[tuple[str, str], Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        k: {**v, "upstream_cost_usd": round(v["upstream_cost_usd"], 8)} for k, v in totals.items()
    }


def _expected(events: list[UsageEvent]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for e in events:
        t = out[(e.created_at.strftime("%Y-%m"), e.model or "")]
        t["requests"] += 1
        t["succeeded"] += e.status == "succeeded"
        t["failed"] += e.status != "succeeded"
        t["credits"] += e.credits
        t["input_tokens"] += e.input_tokens or 0
        t["output_tokens"] += e.output_tokens or 0
        t["upstream_cost_usd"] += e.upstream_cost_usd or 0
    return out


async def _rollups(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str], Any]:
    async with sessions() as session:
        rows = (await session.execute(select(UsageRollup))).scalars().all()
    return {
        (r.month, r.model): {
            "requests": r.requests,
            "succeeded": r.succeeded,
            "failed": r.failed,
            "credits": r.credits,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "upstream_cost_usd": round(r.upstream_cost_usd, 8),
        }
        for r in rows
    }


async def _count(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def _usage_fixture(acct: str, other: str) -> tuple[list[UsageEvent], list[UsageEvent]]:
    """Old events over three months, two accounts, two models, no model, failures, no cost."""
    old = [
        _event(acct, NOW - timedelta(days=95)),
        _event(acct, NOW - timedelta(days=96), model="m/two", credits=1, input_tokens=7),
        _event(
            acct,
            NOW - timedelta(days=97),
            status="failed",
            model=None,
            credits=0,
            input_tokens=None,
            output_tokens=None,
            upstream_cost_usd=None,
        ),
        _event(other, NOW - timedelta(days=98), upstream_cost_usd=0.5),
        _event(acct, NOW - timedelta(days=130), status="failed", credits=0),
        _event(other, NOW - timedelta(days=400), model="m/two", output_tokens=3),
    ]
    # Straddling the cutoff (90 days): kept.
    recent = [
        _event(acct, NOW - timedelta(days=89)),
        _event(other, NOW - timedelta(days=1), model=None, status="failed", credits=0),
    ]
    return old, recent


async def test_old_usage_is_rolled_up_exactly_and_deleted_recent_kept(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    acct = await _account(sessions, "a@example.com")
    other = await _account(sessions, "b@example.com")
    old, recent = _usage_fixture(acct, other)
    expected = _expected(old)
    async with transaction(sessions) as session:
        # A month already rolled up by an earlier run is added to, not replaced.
        session.add(
            UsageRollup(
                month=old[0].created_at.strftime("%Y-%m"),
                model="m/one",
                requests=10,
                succeeded=9,
                failed=1,
                credits=9,
                input_tokens=1000,
                output_tokens=200,
                upstream_cost_usd=0.25,
            )
        )
        session.add_all(old + recent)
    prior = expected[(old[0].created_at.strftime("%Y-%m"), "m/one")]
    for name, value in (
        ("requests", 10),
        ("succeeded", 9),
        ("failed", 1),
        ("credits", 9),
        ("input_tokens", 1000),
        ("output_tokens", 200),
        ("upstream_cost_usd", 0.25),
    ):
        prior[name] += value

    report = await purge(sessions, make_settings(database_url), now=NOW)

    assert report.usage_events_rolled_up == len(old)
    assert await _rollups(sessions) == _plain(expected)
    async with sessions() as session:
        left = set((await session.execute(select(UsageEvent.id))).scalars())
    assert left == {e.id for e in recent}


async def test_purge_twice_changes_nothing_the_second_time(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    acct = await _account(sessions, "a@example.com")
    old, recent = _usage_fixture(acct, acct)
    async with transaction(sessions) as session:
        session.add_all(old + recent)
        session.add(
            StripeEvent(
                id="evt_1",
                type="x",
                state="processed",
                payload="{}",
                received_at=NOW - timedelta(days=40),
            )
        )
    settings = make_settings(database_url)
    first = await purge(sessions, settings, now=NOW)
    assert first.usage_events_rolled_up == len(old)
    assert first.stripe_events == 1
    rollups = await _rollups(sessions)
    events = await _count(sessions, UsageEvent)

    second = await purge(sessions, settings, now=NOW)

    assert second.total == 0
    assert await _rollups(sessions) == rollups
    assert await _count(sessions, UsageEvent) == events == len(recent)


async def test_concurrent_purges_count_every_event_exactly_once(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    acct = await _account(sessions, "a@example.com")
    old = [
        _event(acct, NOW - timedelta(days=100 + i % 40), model=f"m/{i % 3}", credits=i % 2)
        for i in range(1200)  # more than one batch per process
    ]
    expected = _expected(old)
    async with transaction(sessions) as session:
        session.add_all(old)
    # Two "processes": separate engines, as two API processes would have.
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        settings = make_settings(database_url)
        reports = await asyncio.gather(
            *(purge(session_factory(e), settings, now=NOW) for e in engines)
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sum(r.usage_events_rolled_up for r in reports) == len(old)
    assert await _rollups(sessions) == _plain(expected)
    assert await _count(sessions, UsageEvent) == 0


def test_rollups_are_anonymous() -> None:
    columns = set(UsageRollup.__table__.columns.keys())
    assert columns == {
        "id",
        "month",
        "model",
        "requests",
        "succeeded",
        "failed",
        "credits",
        "input_tokens",
        "output_tokens",
        "upstream_cost_usd",
    }
    assert not UsageRollup.__table__.foreign_keys


async def test_purged_usage_leaves_the_accounts_usage_report(service: Any, account: Any) -> None:
    services = service.app.state.services
    today = datetime.now(UTC).replace(hour=12)
    old_day = today - timedelta(days=services.settings.retention_days + 10)
    async with transaction(services.sessions) as session:
        session.add(_event(account.id, old_day))
        session.add(_event(account.id, today))
    params = {"from": old_day.date().isoformat(), "to": today.date().isoformat()}
    before = await service.client.get("/v1/usage", headers=account.headers, params=params)
    assert before.json()["totals"]["requests"] == 2

    await purge(services.sessions, services.settings)

    after = await service.client.get("/v1/usage", headers=account.headers, params=params)
    assert after.json()["totals"]["requests"] == 1
    assert [row["period"] for row in after.json()["data"]] == [today.date().isoformat()]
    rollups = await _rollups(services.sessions)
    assert rollups[(old_day.strftime("%Y-%m"), "m/one")]["requests"] == 1


async def test_unverified_signups_expire_after_48_hours_verified_ones_do_not(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    stale = await _account(
        sessions, "stale@example.com", status="unverified", created_at=NOW - timedelta(hours=49)
    )
    fresh = await _account(
        sessions, "fresh@example.com", status="unverified", created_at=NOW - timedelta(hours=47)
    )
    verified = await _account(sessions, "old@example.com", created_at=NOW - timedelta(days=900))
    async with transaction(sessions) as session:
        await create_key(session, stale)
        session.add(
            Consent(
                id="cons_1",
                account_id=stale,
                kind="terms",
                version="v",
                granted=True,
                source="signup",
                created_at=NOW - timedelta(hours=49),
            )
        )
        session.add(
            EmailToken(
                id="tok_1",
                account_id=stale,
                purpose="verify_signup",
                email="stale@example.com",
                token_hash="h" * 64,
                created_at=NOW - timedelta(hours=49),
                expires_at=NOW + timedelta(days=1),
            )
        )

    report = await purge(sessions, make_settings(database_url), now=NOW)

    assert report.unverified_accounts == 1
    async with sessions() as session:
        ids = set((await session.execute(select(Account.id))).scalars())
        assert ids == {fresh, verified}
        # Everything attached to the expired sign-up went with it.
        for model, column in (
            (Consent, Consent.account_id),
            (EmailToken, EmailToken.account_id),
            (ApiKey, ApiKey.account_id),
        ):
            rows = await session.execute(select(model).where(column == stale))
            assert rows.first() is None
        audit = (await session.execute(select(AuditEvent))).scalars().all()
    assert [(a.account_id, a.actor, a.action) for a in audit] == [
        (stale, "system", "signup_expired")
    ]
    assert "stale@example.com" not in (audit[0].detail or "")
    assert json.loads(audit[0].detail or "{}")["after_hours"] == 48


async def test_tokens_inbox_reservations_idempotency_and_audit_are_pruned(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    acct = await _account(sessions, "a@example.com")
    day = timedelta(days=1)

    def token(i: int, *, expires: datetime, used: datetime | None = None) -> EmailToken:
        return EmailToken(
            id=f"tok_{i}",
            account_id=acct,
            purpose="change_email",
            email="new@example.com",
            token_hash=f"{i:064d}",
            created_at=expires - day,
            expires_at=expires,
            used_at=used,
        )

    def inbox(i: str, state: str, age: timedelta) -> StripeEvent:
        return StripeEvent(
            id=f"evt_{i}",
            type="checkout.session.completed",
            state=state,
            payload="{}",
            received_at=NOW - age,
        )

    def reservation(i: int, state: str, age: timedelta) -> CreditReservation:
        return CreditReservation(
            id=f"req_r{i}",
            account_id=acct,
            credits=1,
            state=state,
            created_at=NOW - age,
            expires_at=NOW - age + day,
        )

    def audit(i: int, age: timedelta) -> AuditEvent:
        return AuditEvent(
            id=f"aud_{i}", account_id=acct, actor="account", action="export", created_at=NOW - age
        )

    async with transaction(sessions) as session:
        session.add_all(
            [
                token(1, expires=NOW - 8 * day),  # expired a week+ ago: gone
                token(2, expires=NOW + day, used=NOW - 8 * day),  # used a week+ ago: gone
                token(3, expires=NOW - 6 * day),  # expired recently: kept
                token(4, expires=NOW + day),  # still valid: kept
                inbox("processed_old", "processed", 31 * day),
                inbox("ignored_old", "ignored", 31 * day),
                inbox("pending_old", "pending", 300 * day),
                inbox("unmatched_old", "unmatched", 300 * day),
                inbox("processed_new", "processed", 29 * day),
                reservation(1, "settled", 8 * day),
                reservation(2, "released", 8 * day),
                reservation(3, "held", 8 * day),  # release_expired's business, not retention's
                reservation(4, "settled", 6 * day),
                audit(1, 3 * 366 * day),
                audit(2, 2 * 365 * day),
                IdempotencyRecord(
                    account_id=acct,
                    key="old",
                    request_hash="h",
                    state="done",
                    created_at=NOW - 2 * day,
                    locked_until=NOW - 2 * day,
                    expires_at=NOW - day,
                ),
                IdempotencyRecord(
                    account_id=acct,
                    key="new",
                    request_hash="h",
                    state="done",
                    created_at=NOW,
                    locked_until=NOW,
                    expires_at=NOW + day,
                ),
            ]
        )

    report = await purge(sessions, make_settings(database_url), now=NOW)

    assert (
        report.email_tokens,
        report.stripe_events,
        report.credit_reservations,
        report.audit_events,
        report.idempotency_records,
    ) == (2, 2, 2, 1, 1)
    async with sessions() as session:

        async def ids(column: Any) -> set[Any]:
            return set((await session.execute(select(column))).scalars())

        assert await ids(EmailToken.id) == {"tok_3", "tok_4"}
        assert await ids(StripeEvent.id) == {
            "evt_pending_old",
            "evt_unmatched_old",
            "evt_processed_new",
        }
        assert await ids(CreditReservation.id) == {"req_r3", "req_r4"}
        assert await ids(AuditEvent.id) == {"aud_2"}
        assert await ids(IdempotencyRecord.key) == {"new"}


def test_alttext_purge_runs_the_policy_now(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from alttext.cli import app

    async def seed() -> None:
        engine = create_engine(database_url)
        try:
            sessions = session_factory(engine)
            old = datetime.now(UTC) - timedelta(hours=49)
            await _account(sessions, "stale@example.com", status="unverified", created_at=old)
        finally:
            await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", database_url)
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    runner = CliRunner()
    first = runner.invoke(app, ["purge", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["unverified_accounts"] == 1
    second = runner.invoke(app, ["purge"])
    assert second.exit_code == 0, second.output
    assert "unverified accounts: 0" in second.output


async def _ids(sessions: async_sessionmaker[AsyncSession], column: Any) -> set[Any]:
    async with sessions() as session:
        return set((await session.execute(select(column))).scalars())


async def test_finished_jobs_and_their_items_are_purged_open_and_recent_ones_kept(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    acct = await _account(sessions, "a@example.com")
    day = timedelta(days=1)
    async with transaction(sessions) as session:
        # Finished more than 30 days ago: gone, items and all (more items than one batch).
        gone = [
            await add_job(session, acct, items=BATCH + 20, finished_at=NOW - 31 * day),
            await add_job(session, acct, status="failed", finished_at=NOW - 400 * day),
            await add_job(session, acct, status="cancelled", finished_at=NOW - 30 * day - 1 * day),
            # A final job without a finish time counts from its creation.
            await add_job(session, acct, status="completed", created_at=NOW - 60 * day),
        ]
        kept = [
            await add_job(session, acct, finished_at=NOW - 29 * day),
            await add_job(session, acct, status="cancelled", finished_at=NOW - day),
            # Open jobs are kept however old they are.
            await add_job(session, acct, status="queued", created_at=NOW - 400 * day),
            await add_job(session, acct, status="running", created_at=NOW - 400 * day),
            await add_job(session, acct, status="paused", created_at=NOW - 400 * day),
        ]

    report = await purge(sessions, make_settings(database_url), now=NOW)

    assert report.jobs == len(gone)
    assert report.job_items == sum(len(j.item_ids) for j in gone)
    assert await _ids(sessions, Job.id) == {j.job_id for j in kept}
    assert await _ids(sessions, JobItem.id) == {i for j in kept for i in j.item_ids}
    again = await purge(sessions, make_settings(database_url), now=NOW)
    assert again.total == 0


async def test_delivered_and_failed_webhook_messages_are_purged_with_their_attempts(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    acct = await _account(sessions, "a@example.com")
    day = timedelta(days=1)
    async with transaction(sessions) as session:
        old_job = await add_job(session, acct, finished_at=NOW - 31 * day)
        new_job = await add_job(session, acct, finished_at=NOW - day)
        add_signing(session, acct)
        gone = [
            await add_message(session, acct, old_job.job_id, finished_at=NOW - 31 * day),
            await add_message(
                session, acct, None, state="failed", finished_at=NOW - 40 * day, attempts=5
            ),
        ]
        kept = [
            await add_message(session, acct, new_job.job_id, finished_at=NOW - day),
            # Delivered recently about a job that is purged now: kept, no longer linked.
            await add_message(session, acct, old_job.job_id, finished_at=NOW - 29 * day),
            # Still being retried, however old: kept with its attempts.
            await add_message(
                session, acct, None, state="pending", created_at=NOW - 90 * day, attempts=3
            ),
        ]

    report = await purge(sessions, make_settings(database_url), now=NOW)

    assert (
        (report.webhook_messages, report.webhook_attempts)
        == (
            len(gone),
            sum(len(ids) for _, ids in gone),
        )
        == (2, 7)
    )
    assert report.jobs == 1
    assert await _ids(sessions, WebhookMessage.id) == {m for m, _ in kept}
    assert await _ids(sessions, WebhookAttempt.id) == {a for _, ids in kept for a in ids}
    assert await _ids(sessions, WebhookMessage.job_id) == {new_job.job_id, None}
    # The signing version lives while the account does.
    assert await _ids(sessions, WebhookSigning.account_id) == {acct}


async def test_job_retention_follows_the_setting(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    acct = await _account(sessions, "a@example.com")
    day = timedelta(days=1)
    async with transaction(sessions) as session:
        old = await add_job(session, acct, finished_at=NOW - 8 * day)
        recent = await add_job(session, acct, finished_at=NOW - 6 * day)
        old_message = await add_message(session, acct, None, finished_at=NOW - 8 * day)
        recent_message = await add_message(session, acct, None, finished_at=NOW - 6 * day)

    report = await purge(sessions, make_settings(database_url, job_retention_days=7), now=NOW)

    assert (report.jobs, report.webhook_messages) == (1, 1)
    assert await _ids(sessions, Job.id) == {recent.job_id}
    assert await _ids(sessions, JobItem.job_id) == {recent.job_id}
    assert old.job_id not in await _ids(sessions, JobItem.job_id)
    assert await _ids(sessions, WebhookMessage.id) == {recent_message[0]}
    assert old_message[0] not in await _ids(sessions, WebhookAttempt.message_id)


def test_schedule_and_inventory_state_the_configured_job_retention() -> None:
    rules = {rule.data: rule.kept for rule in retention_schedule(90, 12)}
    jobs = rules["Bulk jobs and their results (image and page URLs, alt text)"]
    assert jobs.startswith("12 days after the job finished (completed, failed or cancelled)")
    assert "kept while it is open" in jobs
    deliveries = next(kept for data, kept in rules.items() if data.startswith("Webhook deliveries"))
    assert deliveries.startswith("12 days after the message was delivered")
    inventory = data_inventory(90, 12)
    for table in ("jobs", "job_items", "webhook_messages", "webhook_attempts"):
        assert inventory[table].retention.startswith("12 days after"), table
    # Without the setting, its default (30) is shown.
    default = {rule.data: rule.kept for rule in retention_schedule(90)}
    assert default["Bulk jobs and their results (image and page URLs, alt text)"].startswith(
        "30 days after the job finished"
    )
