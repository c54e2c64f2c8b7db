"""The ``check`` fixture: the rules as the engine runs them, with one shared identifier."""

from __future__ import annotations

import pytest

from alttext.describe.rules import LanguageIdentifier
from tests.describe.rules.checker import Checker


@pytest.fixture
def check(language_identifier: LanguageIdentifier) -> Checker:
    return Checker(language_identifier)
