"""Request and response bodies of the account, key, usage and model endpoints (API.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ModelOut(BaseModel):
    id: str
    name: str
    credits_per_image: int
    default: bool
    pricing: dict[str, float | None]


class ModelsResponse(BaseModel):
    object: str = "list"
    data: list[ModelOut]


class AccountOut(BaseModel):
    id: str
    email: str
    name: str | None
    status: str
    restricted: bool
    credits_remaining: int
    created_at: str
    settings: dict[str, int | bool | None]


class KeyOut(BaseModel):
    id: str
    name: str | None
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class KeyCreated(KeyOut):
    secret: str = Field(description="The API key. Shown once; store it now.")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str | None, Field(max_length=100)] = None


class KeyList(BaseModel):
    object: str = "list"
    data: list[KeyOut]


class UsagePeriod(BaseModel):
    period: str
    model: str | None
    requests: int
    succeeded: int
    failed: int
    decorative: int = Field(0, description="Caller-marked decorative images: answered free")
    credits: int
    input_tokens: int
    output_tokens: int
    upstream_cost_usd: float


class UsageReport(BaseModel):
    object: str = "usage"
    start: str
    end: str
    granularity: str
    totals: UsagePeriod
    data: list[UsagePeriod]
