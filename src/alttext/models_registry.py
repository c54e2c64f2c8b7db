"""Imports every table module so that Base.metadata knows them all (Alembic, tests)."""

from __future__ import annotations

from sqlalchemy import MetaData


def metadata() -> MetaData:
    from alttext import idempotency as _idempotency  # noqa: F401
    from alttext.accounts import models as _accounts  # noqa: F401
    from alttext.billing import models as _billing  # noqa: F401
    from alttext.db import Base
    from alttext.jobstore import models as _jobstore  # noqa: F401
    from alttext.privacy import models as _privacy  # noqa: F401
    from alttext.usage import models as _usage  # noqa: F401

    return Base.metadata
