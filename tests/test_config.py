"""Settings: production safety, and the docs naming every setting."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import ValidationError

from alttext.config import DEV_SECRET, Settings


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


# What production needs (docs/configuration.md, "Production refuses to start with").
PRODUCTION: dict[str, object] = {
    "env": "production",
    "secret_key": "x" * 40,
    "smtp_url": "smtps://mailer:s3cret-password@smtp.example.com:465",
    "database_url": "postgresql+asyncpg://alttext:s3cret-password@db/alttext",
}


def production(**values: object) -> Settings:
    return settings(**{**PRODUCTION, **values})


def test_production_starts_with_what_it_needs() -> None:
    assert production().env == "production"
    stripe = production(stripe_secret_key="sk_live_x", stripe_webhook_secret="whsec_x")
    assert stripe.stripe_webhook_secret == "whsec_x"
    assert production(log_level="warning").log_level == "warning"


@pytest.mark.parametrize(
    "secret",
    ["", "change-me", "CHANGE-ME", "dev", "short-but-not-placeholder", "change-me-" + "x" * 40],
)
def test_production_refuses_weak_secrets(secret: str) -> None:
    with pytest.raises(ValidationError, match="ALTTEXT_SECRET_KEY must be set to a random"):
        production(secret_key=secret)


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="ALTTEXT_SECRET_KEY"):
        production(secret_key=DEV_SECRET)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"allow_private_urls": True}, "ALTTEXT_ALLOW_PRIVATE_URLS is for local testing only"),
        ({"log_level": "DEBUG"}, "ALTTEXT_LOG_LEVEL=DEBUG turns on debug logging.*use INFO"),
        ({"log_level": " debug"}, "ALTTEXT_LOG_LEVEL= debug turns on debug logging"),
        ({"log_level": "NOTSET"}, "ALTTEXT_LOG_LEVEL=NOTSET"),
        ({"smtp_url": None}, "ALTTEXT_SMTP_URL is unset.*set it to smtp://"),
        ({"smtp_url": "  "}, "ALTTEXT_SMTP_URL is unset"),
        (
            {"smtp_url": "smtp://mailer:change-me@smtp.example.com:587"},
            "ALTTEXT_SMTP_URL still holds an example's placeholder",
        ),
        (
            {"stripe_secret_key": "sk_live_x"},
            "ALTTEXT_STRIPE_SECRET_KEY is set but ALTTEXT_STRIPE_WEBHOOK_SECRET is empty.*whsec_",
        ),
        (
            {"stripe_secret_key": "sk_live_x", "stripe_webhook_secret": " "},
            "ALTTEXT_STRIPE_WEBHOOK_SECRET is empty",
        ),
        (
            {"stripe_secret_key": "sk_live_x", "stripe_webhook_secret": "whsec_change-me"},
            "ALTTEXT_STRIPE_WEBHOOK_SECRET still holds an example's placeholder",
        ),
        (
            {"database_url": "postgresql+asyncpg://alttext:change-me@db/alttext"},
            "ALTTEXT_DATABASE_URL still holds an example's placeholder password",
        ),
        (
            {"redis_url": "redis://:change-me@redis:6379/0"},
            "ALTTEXT_REDIS_URL still holds an example's placeholder password",
        ),
    ],
)
def test_production_refusals_name_the_setting_and_the_fix(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        production(**values)
    assert "ALTTEXT_ENV=production refuses to start" in str(caught.value)


def test_production_lists_every_refusal_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(env="production", allow_private_urls=True, stripe_secret_key="sk_live_x")
    text = str(caught.value)
    for name in (
        "ALTTEXT_SECRET_KEY",
        "ALTTEXT_ALLOW_PRIVATE_URLS",
        "ALTTEXT_SMTP_URL",
        "ALTTEXT_STRIPE_WEBHOOK_SECRET",
    ):
        assert name in text


def test_outside_production_nothing_is_refused() -> None:
    for env in ("development", "test"):
        loose = settings(
            env=env, log_level="DEBUG", allow_private_urls=True, stripe_secret_key="sk_test_x"
        )
        assert loose.smtp_url is None


def test_no_debug_switch_reaches_a_server() -> None:
    """There is no debug setting to refuse: ``alttext serve`` has no reload or debug option,
    uvicorn is given none, and the app is built with FastAPI's debug pages off."""
    from alttext.app import create_app
    from alttext.cli.serving import serve
    from alttext.http.server import uvicorn_options

    options = uvicorn_options(production())
    assert not {"reload", "reload_dirs", "debug", "use_colors"} & set(options)
    assert set(inspect.signature(serve).parameters) == {"host", "port"}
    assert not any("debug" in name or "reload" in name for name in Settings.model_fields)
    assert create_app(production()).debug is False


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
