"""The purge applies the dashboard's periods too: sessions, failed logins, trial marks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from alttext.accounts import logins
from alttext.accounts import sessions as web_sessions
from alttext.accounts.models import LoginFailure, WebSession
from alttext.accounts.service import create_account
from alttext.db import create_engine, session_factory, transaction, utcnow
from alttext.privacy.models import TrialMark
from alttext.privacy.retention import purge
from alttext.privacy.trial import TRIAL_MARK_KEEP
from tests.conftest import make_settings


async def test_purge_removes_ended_sessions_old_failures_and_old_trial_marks(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    now = utcnow()
    try:
        async with transaction(sessions) as session:
            account = await create_account(session, "p@example.com")
            live, _ = await web_sessions.start(session, account.id)
            idle, _ = await web_sessions.start(session, account.id)
            idle.last_seen_at = now - web_sessions.IDLE_TIMEOUT - timedelta(minutes=1)
            over, _ = await web_sessions.start(session, account.id)
            over.expires_at = now - timedelta(seconds=1)
            session.add_all(
                [
                    LoginFailure(subject="a" * 64, created_at=now),
                    LoginFailure(subject="b" * 64, created_at=now - logins.WINDOW),
                    TrialMark(email_hash="c" * 64, created_at=now),
                    TrialMark(
                        email_hash="d" * 64, created_at=now - TRIAL_MARK_KEEP - timedelta(days=1)
                    ),
                ]
            )
        report = await purge(sessions, make_settings(database_url), now=now)
        assert (report.web_sessions, report.login_failures, report.trial_marks) == (2, 1, 1)
        async with sessions() as session:
            assert list((await session.execute(select(WebSession.id))).scalars()) == [live.id]
            assert await session.scalar(select(func.count()).select_from(LoginFailure)) == 1
            assert list((await session.execute(select(TrialMark.email_hash))).scalars()) == [
                "c" * 64
            ]
        again = await purge(sessions, make_settings(database_url), now=now)
        assert again.total == 0
    finally:
        await engine.dispose()
