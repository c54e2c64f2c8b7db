"""Settings, read from ``ALTTEXT_*`` environment variables and a ``.env`` file (API.md)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODELS = "google/gemini-2.5-flash-lite,qwen/qwen2.5-vl-72b-instruct"
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev", "development", "test"}
DEV_SECRET = "dev-only-secret-key-not-for-production"  # noqa: S105 - refused in production
# Words that mark a value copied from an example (.env.example) and never replaced.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALTTEXT_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    env: Literal["development", "production", "test"] = "development"
    secret_key: str = DEV_SECRET
    database_url: str = "sqlite+aiosqlite:///./var/alttext.db"
    redis_url: str | None = None
    log_level: str = "INFO"

    # HTTP: what one client may hold a server with.
    max_header_bytes: int = Field(16_384, ge=1024, le=1_048_576)  # request line plus headers
    body_read_timeout_s: float = Field(30.0, gt=0, le=3600)  # longest pause inside a body
    # On SIGTERM: how long requests in flight may take to finish before they are cancelled.
    shutdown_grace_s: float = Field(30.0, ge=0, le=3600)

    # Models.
    provider: Literal["openrouter", "openai", "local"] | None = None
    openrouter_api_key: str | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    models: str = DEFAULT_MODELS
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    zero_data_retention: bool = False
    upstream_timeout_s: float = Field(30.0, gt=0, le=300)
    upstream_budget_s: float = Field(60.0, gt=0, le=600)
    # Circuit breaker per model (docs/engine.md): this many failed calls in a row pause a
    # model for the cool-down, then one probe may go; 0 turns the breakers off.
    breaker_failures: int = Field(5, ge=0, le=1000)
    breaker_cooldown_s: float = Field(30.0, gt=0, le=3600)
    # Where people reach the service: the base of every link in mail and of Stripe's return
    # URLs. Unset, it follows ALTTEXT_HOST and ALTTEXT_PORT (``_public_url_default``).
    public_url: str = "http://127.0.0.1:8000"
    # Named on the privacy policy and terms as the controller of personal data.
    operator_name: str = Field("the operator of this deployment", max_length=200)
    contact_email: str | None = Field(None, max_length=320)

    # Images.
    allow_private_urls: bool = False
    max_image_bytes: int = Field(20_000_000, ge=1024, le=200_000_000)
    max_image_pixels: int = Field(50_000_000, ge=64, le=500_000_000)
    min_image_side: int = Field(8, ge=1, le=1024)
    target_long_side: int = Field(768, ge=64, le=4096)
    text_long_side: int = Field(1536, ge=64, le=8192)
    fetch_timeout_s: float = Field(15.0, gt=0, le=120)
    max_inflight_mb: int = Field(512, ge=16, le=65536)
    workers: int | None = Field(None, ge=1, le=64)  # image/OCR pool size; default: cores
    # Admission to the CPU pool (alttext.runtime): a new request's first task is refused with
    # 503 when the estimated wait in the queue exceeds cpu_queue_wait_s, or when cpu_queue
    # tasks already wait (a hard cap; default: 1024 x workers).
    cpu_queue: int | None = Field(None, ge=0, le=1_000_000)
    cpu_queue_wait_s: float = Field(20.0, ge=0, le=600)
    # How long a request body or a decode waits for room in the memory budget before 503.
    inflight_wait_s: float = Field(60.0, ge=0, le=600)
    # The result cache (alttext.result_cache): how long an answer is kept; 0 turns it off.
    cache_ttl_s: float = Field(86_400, ge=0, le=30 * 86_400)

    # Accounts, money and limits.
    price_per_image_usd: float = Field(0.03, gt=0, le=100)
    free_credits: int = Field(10, ge=0, le=1_000_000)  # trial, once per address
    rate_limit_per_minute: int = Field(120, ge=1, le=1_000_000)
    # How long a checked API key is trusted without the database (revocation is immediate:
    # docs/operations.md); 0 looks every key up on every request.
    key_cache_ttl_s: float = Field(5.0, ge=0, le=60)
    max_concurrent_per_account: int = Field(20, ge=1, le=10_000)
    min_purchase_usd: float = Field(5.0, gt=0)
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    smtp_url: str | None = None
    retention_days: int = Field(90, ge=1, le=3650)
    # A reservation whose request died (crash, kill) is released after this long.
    reservation_ttl_s: float = Field(600.0, ge=1, le=86_400)
    reservation_sweep_s: float = Field(30.0, ge=0.1, le=3600)

    # Bulk jobs (API.md "POST /v1/jobs"): leases, caps, crawling, outbound webhooks.
    job_lease_s: float = Field(60.0, ge=1, le=3600)  # a dead worker's item is retaken after this
    job_sweep_s: float = Field(5.0, ge=0.1, le=600)  # expired leases, paused jobs, lost crawls
    job_concurrency_per_account: int = Field(4, ge=1, le=1000)
    job_concurrency_per_model: int = Field(16, ge=1, le=10_000)  # across the cluster
    job_retention_days: int = Field(30, ge=1, le=3650)
    worker_concurrency: int = Field(64, ge=1, le=10_000)  # queue messages one worker runs at once
    crawl_max_pages: int = Field(500, ge=1, le=100_000)
    crawl_delay_s: float = Field(1.0, ge=0, le=60)  # between two requests to one host
    webhook_timeout_s: float = Field(10.0, gt=0, le=60)
    webhook_retry_base_s: float = Field(5.0, gt=0, le=3600)  # first retry; doubles, with jitter
    webhook_retry_window_s: float = Field(86_400.0, gt=0, le=7 * 86_400)  # then it gives up
    metrics_token: str | None = Field(None, min_length=16)  # unset: GET /metrics answers 404
    # `alttext worker`'s own GET /metrics (same token); 0: no listener. The host is a bind
    # address: 0.0.0.0 in a container, so the scraper on the container network reaches it.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(0, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _public_url_default(cls, data: Any) -> Any:
        """No ALTTEXT_PUBLIC_URL: links point at the host and port the service listens on (a
        wildcard address is reached as 127.0.0.1), so they work however the port was chosen."""
        if not isinstance(data, dict) or data.get("public_url"):
            return data
        host = str(data.get("host") or "127.0.0.1").strip()
        port = data.get("port") or 8000
        if host in ("0.0.0.0", "::", "[::]", ""):  # noqa: S104 - a listen address, not a bind
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return {**data, "public_url": f"http://{host}:{port}"}

    @field_validator("public_url")
    @classmethod
    def _public_url_shape(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("ALTTEXT_PUBLIC_URL must start with http:// or https://")
        return value

    @field_validator("models")
    @classmethod
    def _models_not_empty(cls, value: str) -> str:
        if not [m for m in value.split(",") if m.strip()]:
            raise ValueError("ALTTEXT_MODELS needs at least one model id")
        return value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env == "production" and (refusals := self._production_refusals()):
            # Every problem at once, so one round of fixes is enough (docs/configuration.md).
            raise ValueError("ALTTEXT_ENV=production refuses to start:\n- " + "\n- ".join(refusals))
        if self.resolved_provider == "openai" and not self.openai_base_url:
            raise ValueError("ALTTEXT_PROVIDER=openai needs ALTTEXT_OPENAI_BASE_URL")
        if self.provider == "openrouter" and not self.openrouter_api_key:
            raise ValueError("ALTTEXT_PROVIDER=openrouter needs ALTTEXT_OPENROUTER_API_KEY")
        return self

    def _production_refusals(self) -> list[str]:
        """What production must not run with, each naming its setting and the fix."""
        refusals: list[str] = []
        if (
            _placeholder(self.secret_key)
            or self.secret_key == DEV_SECRET
            or len(self.secret_key) < 32
        ):
            refusals.append(
                "ALTTEXT_SECRET_KEY must be set to a random value of 32+ characters "
                "in production (for example: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        if self.allow_private_urls:
            refusals.append(
                "ALTTEXT_ALLOW_PRIVATE_URLS is for local testing only: unset it (or set it to "
                "false), so image URLs cannot reach private or loopback addresses"
            )
        # No debug switch exists (no reload, no framework debug pages); DEBUG logging is the
        # one way to turn debugging on, and libraries then log SQL parameters and addresses.
        if self.log_level.strip().upper() in ("DEBUG", "NOTSET"):
            refusals.append(
                f"ALTTEXT_LOG_LEVEL={self.log_level} turns on debug logging, where libraries "
                "write SQL parameters, e-mail addresses and request details: use INFO "
                "(the default) or WARNING"
            )
        if not (self.smtp_url or "").strip():
            refusals.append(
                "ALTTEXT_SMTP_URL is unset, so mail (sign-up confirmations, password resets) "
                "would only be written to the log, with addresses and one-time links: set it "
                "to smtp://user:password@host:587 or smtps://user:password@host:465"
            )
        stripe_on = bool((self.stripe_secret_key or "").strip())
        if stripe_on and not (self.stripe_webhook_secret or "").strip():
            refusals.append(
                "ALTTEXT_STRIPE_SECRET_KEY is set but ALTTEXT_STRIPE_WEBHOOK_SECRET is empty, "
                "so no Stripe webhook can be verified and paid purchases would never be "
                "credited: set it to the webhook endpoint's signing secret (whsec_…, see "
                "docs/stripe.md), or unset ALTTEXT_STRIPE_SECRET_KEY to turn billing off"
            )
        for name in ("smtp_url", "stripe_secret_key", "stripe_webhook_secret"):
            value = getattr(self, name)
            if value and value.strip() and _placeholder(value):
                refusals.append(
                    f"ALTTEXT_{name.upper()} still holds an example's placeholder "
                    "(change-me): replace it with the real value"
                )
        for name in ("database_url", "redis_url"):
            if _placeholder(getattr(self, name) or "", exact=False):
                refusals.append(
                    f"ALTTEXT_{name.upper()} still holds an example's placeholder password "
                    "(change-me): set a real password on the server and in the URL"
                )
        return refusals

    @property
    def resolved_provider(self) -> Literal["openrouter", "openai", "local"]:
        if self.provider:
            return self.provider
        return "openrouter" if self.openrouter_api_key else "local"

    @cached_property
    def model_chain(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.models.split(",") if m.strip())

    def sqlite_path(self) -> Path | None:
        """The file behind a SQLite URL, so its folder can be created."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            rest = self.database_url[len(prefix) :]
            return None if rest in ("", ":memory:") else Path(rest)
        return None


def _placeholder(value: str, *, exact: bool = True) -> bool:
    """An example's value never replaced: a known placeholder, or one of its marker words.
    ``exact=False`` looks at the markers only (a URL is never a bare placeholder)."""
    lowered = value.strip().lower()
    if exact and lowered in PLACEHOLDER_SECRETS:
        return True
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)
