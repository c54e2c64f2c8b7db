"""Fixtures shared by the engine tests."""

from __future__ import annotations

import pytest

from alttext.describe.rules import LanguageIdentifier


@pytest.fixture(scope="session")
def language_identifier() -> LanguageIdentifier:
    """One identifier for the whole run, as in a process: loading the model takes a second."""
    return LanguageIdentifier()
