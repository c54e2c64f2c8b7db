"""Fixtures shared by the engine tests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from alttext.describe.engine import Engine
from alttext.describe.rules import LanguageIdentifier
from tests.describe.engine_helpers import MakeEngine
from tests.describe.scripted_provider import ScriptedProvider


@pytest.fixture(scope="session")
def language_identifier() -> LanguageIdentifier:
    """One identifier for the whole run, as in a process: loading the model takes a second."""
    return LanguageIdentifier()


@pytest.fixture
def make(language_identifier: LanguageIdentifier) -> Iterator[MakeEngine]:
    """Engines on a small pool of their own, sharing the session's language identifier."""
    with ThreadPoolExecutor(max_workers=2) as pool:

        def build(provider: ScriptedProvider, **kw: object) -> Engine:
            return Engine(
                provider,
                executor=pool,
                language_identifier=language_identifier,
                **kw,  # type: ignore[arg-type]
            )

        yield build
