"""Bodies of the sign-up and data-subject rights endpoints."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from alttext.privacy.tokens import MAX_TOKEN_CHARS

_REQUIRED = "must be true: no account without it"


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=320)]
    name: Annotated[str | None, Field(max_length=200)] = None
    accept_terms: StrictBool = Field(description="You accept the terms (/terms).")
    accept_privacy: StrictBool = Field(description="You accept the privacy policy (/privacy).")
    confirm_age_18: StrictBool = Field(description="You are 18 or older.")
    product_email: StrictBool = Field(False, description="Occasional product news (optional).")

    @field_validator("accept_terms", "accept_privacy", "confirm_age_18")
    @classmethod
    def _must_be_true(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError(_REQUIRED)
        return value


class SignupAccepted(BaseModel):
    status: str = "pending_verification"
    detail: str = (
        "If the address can be used, a message with a confirmation link is on its way. "
        "The link works for 48 hours."
    )


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_CHARS)]


class FirstKey(BaseModel):
    id: str
    secret: str
    prefix: str


class Verified(BaseModel):
    account_id: str
    api_key: FirstKey


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=200)] = None
    email: Annotated[str | None, Field(max_length=320)] = None
    history: StrictBool | None = Field(
        None, description="Keep alt text and image URLs in your usage history (off by default)."
    )
    product_email: StrictBool | None = Field(None, description="Product e-mail (opt-in).")


class AccountState(BaseModel):
    id: str
    email: str
    name: str | None
    status: str
    history: bool
    product_email: bool
    restricted: bool
    restricted_at: str | None
    email_verified_at: str | None
    email_change_pending: bool = False


class RestrictionOut(BaseModel):
    restricted: bool
    restricted_at: str | None


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: Annotated[str, Field(max_length=320, description="The account's e-mail address.")]


class EraseOut(BaseModel):
    erased: bool
    kept: dict[str, int]
