from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.web.support import Web, web_service


@pytest.fixture
async def web(service_factory: Callable[..., Any]) -> AsyncIterator[Web]:
    async with web_service(service_factory) as w:
        yield w
