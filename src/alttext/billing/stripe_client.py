"""A thin, typed wrapper around the official ``stripe`` SDK: the few calls billing makes.

Every Stripe failure leaves here as one of our ``AppError``s with a clear detail, so routes never
see SDK exceptions. Webhook signatures are verified by the SDK itself (``WebhookSignature``),
never by hand.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import stripe

from alttext.config import Settings
from alttext.errors import AppError, IdempotencyConflict, InvalidRequest, ServiceUnavailable

log = logging.getLogger("alttext.billing.stripe")

WEBHOOK_TOLERANCE_S = 300  # Stripe's own default: a signature older than 5 minutes is refused
TIMEOUT_S = 20.0
NETWORK_RETRIES = 2  # the SDK retries connection errors, 409 and 5xx with backoff


class InvalidSignature(InvalidRequest):
    # The stable public code stays invalid_request (API.md); the title says what failed.
    status = 400
    title = "Invalid webhook signature"


class BillingNotConfigured(ServiceUnavailable):
    title = "Billing is not configured"


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


def configured_secret(value: str | None) -> str | None:
    """A usable secret, or None: an empty or blank value counts as not configured."""
    return value.strip() if value and value.strip() else None


class StripeGateway:
    """One SDK client per use (``async with``): checkouts are rare, and this keeps no global."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        timeout_s: float = TIMEOUT_S,
        max_network_retries: int = NETWORK_RETRIES,
    ) -> None:
        self._http = stripe.HTTPXClient(timeout=timeout_s)
        addresses: dict[str, str] = {"api": api_base.rstrip("/")} if api_base else {}
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses=cast(Any, addresses),
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        key = configured_secret(settings.stripe_secret_key)
        if key is None:
            raise BillingNotConfigured(
                "Billing is not configured on this deployment (ALTTEXT_STRIPE_SECRET_KEY is "
                "not set), so credits cannot be bought here. Contact the operator."
            )
        return cls(key, api_base=settings.stripe_api_base)

    async def __aenter__(self) -> StripeGateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, *, account_id: str, email: str, idempotency_key: str) -> str:
        params: dict[str, Any] = {"email": email, "metadata": {"account_id": account_id}}
        customer = await self._call(
            self._client.v1.customers.create_async,
            params,
            idempotency_key,
            what="create the Stripe customer",
        )
        return str(customer["id"])

    async def delete_customer(self, customer_id: str) -> None:
        """For erasure: Stripe keeps payment records it must by law; the customer goes."""
        try:
            await self._client.v1.customers.delete_async(customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return  # deleted before: the goal is reached
            raise _translate(exc, "delete the Stripe customer") from exc
        except stripe.StripeError as exc:
            raise _translate(exc, "delete the Stripe customer") from exc

    async def create_checkout_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> CheckoutSession:
        session = await self._call(
            self._client.v1.checkout.sessions.create_async,
            params,
            idempotency_key,
            what="start a Stripe Checkout",
        )
        url = session["url"]
        if not url:
            raise ServiceUnavailable("Stripe returned a checkout session without a URL.")
        return CheckoutSession(id=str(session["id"]), url=str(url))

    async def _call(self, method: Any, params: dict[str, Any], key: str, *, what: str) -> Any:
        try:
            return await method(params=params, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            raise _translate(exc, what) from exc


def _translate(exc: stripe.StripeError, what: str) -> AppError:
    """Our error for an SDK error; the SDK's message may name parameters, never secrets."""
    log.warning(
        "stripe call failed",
        extra={"what": what, "error_type": type(exc).__name__, "status": exc.http_status},
    )
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflict(
            "This Idempotency-Key was used before with a different amount; use a new key."
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ServiceUnavailable(
            f"Could not {what}: the deployment's Stripe key was refused. Contact the operator.",
            retry_after=60,
        )
    if isinstance(exc, stripe.APIConnectionError):
        return ServiceUnavailable(
            f"Could not {what}: Stripe is unreachable. Nothing was charged; retry shortly.",
            retry_after=10,
        )
    return ServiceUnavailable(
        f"Could not {what}: Stripe answered with an error"
        f"{f' (HTTP {exc.http_status})' if exc.http_status else ''}. Nothing was charged; "
        "retry shortly.",
        retry_after=10,
    )


def verify_event(
    payload: bytes, signature: str | None, secret: str, *, tolerance_s: int = WEBHOOK_TOLERANCE_S
) -> dict[str, Any]:
    """The event, once the SDK has checked the HMAC and the timestamp's age; else 400."""
    try:
        # Stripe sends UTF-8 JSON; the SDK decodes the payload itself and would raise
        # UnicodeDecodeError (a 500) on anything else.
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSignature("The payload is not UTF-8, so it is not a Stripe event.") from exc
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance_s)
    except stripe.SignatureVerificationError as exc:
        reason = str(exc.user_message or "signature mismatch").split(". ")[0]
        raise InvalidSignature(f"The Stripe-Signature header was refused: {reason}.") from exc
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise InvalidSignature("The signed payload is not JSON.") from exc
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidSignature("The signed payload is not a Stripe event.")
    return event
