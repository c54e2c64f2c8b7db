"""Settings: production safety, and the docs naming every setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from alttext.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    missing = [
        f"ALTTEXT_{name.upper()}"
        for name in Settings.model_fields
        if f"ALTTEXT_{name.upper()}" not in doc
    ]
    assert missing == []


@pytest.mark.parametrize("secret", ["", "change-me", "dev", "short-but-not-placeholder"])
def test_production_refuses_weak_secrets(secret: str) -> None:
    with pytest.raises(ValidationError, match="ALTTEXT_SECRET_KEY"):
        settings(env="production", secret_key=secret)


def test_production_refuses_private_urls() -> None:
    with pytest.raises(ValidationError, match="local testing only"):
        settings(env="production", secret_key="x" * 40, allow_private_urls=True)


def test_provider_defaults_follow_the_configured_keys() -> None:
    assert settings().resolved_provider == "local"
    assert settings(openrouter_api_key="sk-or-x").resolved_provider == "openrouter"
    with pytest.raises(ValidationError, match="OPENAI_BASE_URL"):
        settings(provider="openai")
    with pytest.raises(ValidationError, match="OPENROUTER_API_KEY"):
        settings(provider="openrouter")
    assert settings(models=" a/b , c/d ").model_chain == ("a/b", "c/d")
    with pytest.raises(ValidationError):
        settings(models=" , ")


def test_http_limits_default_and_bounds() -> None:
    defaults = settings()
    assert defaults.max_header_bytes == 16_384
    assert defaults.body_read_timeout_s == 30.0
    assert settings(max_header_bytes=1024, body_read_timeout_s=0.5).body_read_timeout_s == 0.5
    for values in (
        {"max_header_bytes": 1023},
        {"max_header_bytes": 1_048_577},
        {"body_read_timeout_s": 0},
        {"body_read_timeout_s": 3601},
    ):
        with pytest.raises(ValidationError):
            settings(**values)
