"""Response models of the webhook endpoints (API.md "Webhooks"), below the HTTP layer so the
dashboard and the SDK's tests share them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

AttemptOutcome = Literal["delivered", "http_error", "timeout", "network_error", "refused"]
WebhookEvent = Literal["job.completed", "job.failed", "job.cancelled", "job.paused"]


class WebhookSecretOut(BaseModel):
    secret: str = Field(
        description="The signing secret (whsec_ + base64), for any Standard Webhooks library. "
        "For 24 hours after a rotation, deliveries carry a signature with the previous secret "
        "too, so either verifies while you switch."
    )
    rotated_at: str | None = Field(
        description="When the secret was last rotated (ISO 8601 UTC); null if never."
    )


class DeliveryOut(BaseModel):
    id: str = Field(description="wha_…: this attempt.")
    object: Literal["webhook_delivery"] = "webhook_delivery"
    message_id: str = Field(
        description="msg_…: the webhook-id header, the same on every attempt of one event."
    )
    job_id: str | None = Field(description="The job the event is about (null once deleted).")
    event: WebhookEvent
    url: str
    attempt: int = Field(description="1 for the first attempt of the message.")
    outcome: AttemptOutcome = Field(
        description="delivered (2xx) | http_error (any other status, redirects included) | "
        "timeout | network_error | refused (a private, local or invalid address)"
    )
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    latency_ms: int
    attempted_at: str


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryOut]
    has_more: bool = Field(description="Pass the last id as starting_after for the next page.")
