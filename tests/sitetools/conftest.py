from __future__ import annotations

from pathlib import Path

import pytest

from tests.sitetools.helpers import corpus_copy


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return corpus_copy(tmp_path)
