"""A fake Stripe: a real HTTP server on 127.0.0.1 that the official ``stripe`` SDK talks to.

It speaks Stripe's wire format (form-encoded bodies with ``a[b][0][c]`` keys, Bearer secret
keys, ``Idempotency-Key`` replays, ``{"error": {...}}`` bodies) for the endpoints AltText uses,
and builds the event payloads Stripe would send, signed with Stripe's real scheme, so the
production verification code runs unchanged::

    with run_fake_stripe() as fake:
        settings = {"stripe_secret_key": fake.api_key, "stripe_api_base": fake.base_url,
                    "stripe_webhook_secret": fake.webhook_secret}
        ...                                   # the app opens a Checkout Session
        session = fake.pay(session_id)        # the customer pays
        body, header = fake.signed(fake.event("checkout.session.completed", session))

All state is guarded by one lock, so tests read it from any thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve_in_thread

DEFAULT_API_KEY = "sk_test_fake_51AltText0123456789abcdef"
DEFAULT_WEBHOOK_SECRET = "whsec_fake_0123456789abcdef0123456789abcdef"
API_VERSION = "2025-09-30.clover"


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """Stripe's scheme: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def parse_form(body: bytes) -> dict[str, Any]:
    """``line_items[0][price_data][currency]=usd`` -> nested dicts and lists, as Stripe does."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            converted = {k: listify(v) for k, v in value.items()}
            if converted and all(k.isdigit() for k in converted):
                return [converted[k] for k in sorted(converted, key=int)]
            return converted
        return value

    result: dict[str, Any] = listify(root)
    return result


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None


class StripeFailure(Exception):
    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": kind, "message": message, **extra}}


class FakeStripe:
    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.webhook_secret = DEFAULT_WEBHOOK_SECRET
        self.base_url = ""
        self._lock = threading.Lock()
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/v1/customers", self._create_customer, methods=["POST"]),
                Route("/v1/customers/{id}", self._customer, methods=["GET", "DELETE"]),
                Route("/v1/checkout/sessions", self._create_session, methods=["POST"]),
                Route("/v1/checkout/sessions/{id}", self._get_session, methods=["GET"]),
                Route("/v1/charges/{id}", self._get_charge, methods=["GET"]),
            ]
        )

    # -- test-facing API ---------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.customers: dict[str, dict[str, Any]] = {}
            self.sessions: dict[str, dict[str, Any]] = {}
            self.charges: dict[str, dict[str, Any]] = {}
            self.requests: list[Recorded] = []
            self._replays: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {}
            self._failures: deque[tuple[int, bool]] = deque()
            self.down = False  # every request answers 503 while set

    def fail_next(self, *statuses: int, retryable: bool = False) -> None:
        """The next requests answer these statuses. ``retryable=False`` sends
        ``Stripe-Should-Retry: false`` so the SDK does not retry them."""
        with self._lock:
            self._failures.extend((s, retryable) for s in statuses)

    def pay(self, session_id: str, *, async_payment: bool = False) -> dict[str, Any]:
        """The customer completes Checkout. With ``async_payment`` (bank debit) the session
        completes unpaid; ``settle_async`` later makes it paid."""
        with self._lock:
            session = self.sessions[session_id]
            pi = _id("pi")
            session.update(status="complete", payment_intent=pi)
            session["payment_status"] = "unpaid" if async_payment else "paid"
            session["customer_details"] = {
                "email": "jenny@example.com",
                "name": "Jenny Rosen",
                "address": {"line1": "1 Main St", "country": "US"},
            }
            charge = {
                "id": _id("ch"),
                "object": "charge",
                "amount": session["amount_total"],
                "amount_refunded": 0,
                "refunded": False,
                "currency": "usd",
                "customer": session["customer"],
                "payment_intent": pi,
                "paid": True,
                "status": "succeeded",
                "receipt_url": f"https://pay.stripe.com/receipts/payment/{secrets.token_hex(16)}",
                "billing_details": {"email": "jenny@example.com", "name": "Jenny Rosen"},
                "metadata": dict(session.get("payment_intent_metadata", {})),
            }
            self.charges[charge["id"]] = charge
            return json.loads(json.dumps(session))

    def settle_async(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            self.sessions[session_id]["payment_status"] = "paid"
            return json.loads(json.dumps(self.sessions[session_id]))

    def charge_for(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            pi = self.sessions[session_id]["payment_intent"]
            charge = next(c for c in self.charges.values() if c["payment_intent"] == pi)
            return json.loads(json.dumps(charge))

    def refund(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund ``amount`` cents more (all that is left by default); the updated charge."""
        with self._lock:
            charge = self.charges[charge_id]
            left = charge["amount"] - charge["amount_refunded"]
            charge["amount_refunded"] += left if amount is None else min(amount, left)
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return json.loads(json.dumps(charge))

    def dispute(self, charge_id: str, reason: str = "fraudulent") -> dict[str, Any]:
        with self._lock:
            charge = self.charges[charge_id]
            return {
                "id": _id("du"),
                "object": "dispute",
                "amount": charge["amount"],
                "charge": charge_id,
                "payment_intent": charge["payment_intent"],
                "currency": "usd",
                "reason": reason,
                "status": "needs_response",
            }

    @staticmethod
    def event(
        event_type: str, obj: dict[str, Any], *, created: int | None = None
    ) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    def signed(
        self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, str]:
        payload = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
        return payload, sign(payload, secret or self.webhook_secret, timestamp=timestamp)

    # -- the HTTP side -------------------------------------------------------------------------

    async def _guard(self, request: Request, path: str) -> dict[str, Any]:
        """Auth, scripted failures, request recording; the parsed params."""
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            raise StripeFailure(401, "invalid_request_error", "Invalid API Key provided.")
        body = await request.body()
        params = parse_form(body) if request.method == "POST" else dict(request.query_params)
        with self._lock:
            self.requests.append(
                Recorded(request.method, path, params, request.headers.get("idempotency-key"))
            )
            if self.down:
                raise StripeFailure(503, "api_error", "Stripe is down (scripted).")
            if self._failures:
                status, retryable = self._failures.popleft()
                failure = StripeFailure(status, "api_error", "Scripted failure.")
                failure.body["_should_retry"] = retryable
                raise failure
        return params

    async def _handle(self, request: Request, path: str, action: Any) -> Response:
        try:
            params = await self._guard(request, path)
            key = request.headers.get("idempotency-key")
            if request.method != "POST" or key is None:
                with self._lock:
                    return JSONResponse(action(params))
            fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
            with self._lock:  # no await inside: one request at a time per key
                replay = self._replays.get((path, key))
                if replay is not None:
                    if replay[0] != fingerprint:
                        raise StripeFailure(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        )
                    return JSONResponse(
                        replay[2], status_code=replay[1], headers={"Idempotent-Replayed": "true"}
                    )
                result = action(params)
                self._replays[(path, key)] = (fingerprint, 200, result)
                return JSONResponse(result)
        except StripeFailure as failure:
            retry = failure.body.pop("_should_retry", None)
            headers = {} if retry is None else {"Stripe-Should-Retry": str(retry).lower()}
            return JSONResponse(failure.body, status_code=failure.status, headers=headers)

    async def _create_customer(self, request: Request) -> Response:
        def create(params: dict[str, Any]) -> dict[str, Any]:
            customer = {
                "id": _id("cus"),
                "object": "customer",
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
                "created": int(time.time()),
                "livemode": False,
            }
            self.customers[customer["id"]] = customer
            return customer

        return await self._handle(request, "/v1/customers", create)

    async def _customer(self, request: Request) -> Response:
        customer_id = request.path_params["id"]

        def act(_params: dict[str, Any]) -> dict[str, Any]:
            if customer_id not in self.customers:
                raise StripeFailure(
                    404,
                    "invalid_request_error",
                    f"No such customer: '{customer_id}'",
                    code="resource_missing",
                    param="id",
                )
            if request.method == "DELETE":
                del self.customers[customer_id]
                return {"id": customer_id, "object": "customer", "deleted": True}
            return self.customers[customer_id]

        return await self._handle(request, f"/v1/customers/{customer_id}", act)

    async def _create_session(self, request: Request) -> Response:
        return await self._handle(request, "/v1/checkout/sessions", self._new_session)

    def _new_session(self, params: dict[str, Any]) -> dict[str, Any]:
        def invalid(message: str, param: str) -> StripeFailure:
            return StripeFailure(400, "invalid_request_error", message, param=param)

        if params.get("mode") not in ("payment", "setup", "subscription"):
            raise invalid("Invalid mode.", "mode")
        for url in ("success_url", "cancel_url"):
            if not str(params.get(url, "")).startswith(("http://", "https://")):
                raise invalid(f"Not a valid URL: {url}", url)
        customer = params.get("customer")
        if customer is not None and customer not in self.customers:
            raise invalid(f"No such customer: '{customer}'", "customer")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise invalid("line_items is required in payment mode.", "line_items")
        total = 0
        for item in items:
            price = item.get("price_data", {})
            if price.get("currency") != "usd" or not str(price.get("unit_amount", "")).isdigit():
                raise invalid("price_data needs currency and unit_amount.", "line_items")
            if not price.get("product_data", {}).get("name"):
                raise invalid("product_data.name is required.", "line_items")
            total += int(price["unit_amount"]) * int(item.get("quantity", "1"))
        for value in params.get("metadata", {}).values():
            if len(value) > 500:
                raise invalid("Metadata values can have up to 500 characters.", "metadata")
        session_id = f"cs_test_{secrets.token_hex(20)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "amount_total": total,
            "currency": "usd",
            "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "livemode": False,
            "created": int(time.time()),
        }
        self.sessions[session_id] = session
        # Kept aside: Stripe copies it to the PaymentIntent, not the session object.
        self.sessions[session_id]["payment_intent_metadata"] = params.get(
            "payment_intent_data", {}
        ).get("metadata", {})
        line_items = [dict(i, price_data=dict(i["price_data"])) for i in items]
        self.sessions[session_id]["_line_items"] = line_items
        return self._public(session)

    @staticmethod
    def _public(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if not k.startswith(("_", "payment_intent_m"))}

    async def _get_session(self, request: Request) -> Response:
        session_id = request.path_params["id"]

        def get(_params: dict[str, Any]) -> dict[str, Any]:
            if session_id not in self.sessions:
                raise StripeFailure(
                    404,
                    "invalid_request_error",
                    "No such checkout session",
                    code="resource_missing",
                )
            return self._public(self.sessions[session_id])

        return await self._handle(request, f"/v1/checkout/sessions/{session_id}", get)

    async def _get_charge(self, request: Request) -> Response:
        charge_id = request.path_params["id"]

        def get(_params: dict[str, Any]) -> dict[str, Any]:
            if charge_id not in self.charges:
                raise StripeFailure(
                    404, "invalid_request_error", "No such charge", code="resource_missing"
                )
            return self.charges[charge_id]

        return await self._handle(request, f"/v1/charges/{charge_id}", get)

    def line_items(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            items: list[dict[str, Any]] = self.sessions[session_id]["_line_items"]
            return items


@contextlib.contextmanager
def run_fake_stripe(api_key: str = DEFAULT_API_KEY) -> Iterator[FakeStripe]:
    """Serve a ``FakeStripe`` on a free 127.0.0.1 port for the duration of the block."""
    fake = FakeStripe(api_key)
    with serve_in_thread(fake.app, "fake Stripe") as port:
        fake.base_url = f"http://127.0.0.1:{port}"
        yield fake


def closed_port_url() -> str:
    """A 127.0.0.1 URL nothing listens on: connection refused, like Stripe unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
