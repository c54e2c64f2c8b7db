"""The per-process container handed to routes: runtime parts plus database access."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from alttext.accounts.last_used import LastUsedRecorder
from alttext.config import Settings
from alttext.inflight import InflightBudget
from alttext.mail import Mailer
from alttext.runtime import Runtime
from alttext.usage.limits import Limiter


@dataclass
class Services:
    settings: Settings
    runtime: Runtime
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    inflight: InflightBudget
    limiter: Limiter
    last_used: LastUsedRecorder
    mailer: Mailer


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
