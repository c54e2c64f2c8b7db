"""Upstream faults through the whole service: circuit breakers per model, /readyz, /metrics.

The real app, engine and OpenRouter client talk over HTTP to the fake OpenRouter with faults
injected per model (``tests/fakes/faulty_openrouter.py``). Whatever the upstream does, a failed
generation is a 5xx problem (``upstream_error`` 502, ``upstream_unavailable`` 503 with
``Retry-After``, ``upstream_timeout`` 504), never a 500, and never charged.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api.test_metrics import AUTH, TOKEN, delta, sample
from tests.conftest import Account, Service, openrouter_settings
from tests.fakes.faulty_openrouter import FaultInjector, FaultKind, ModelFaults, inject_faults
from tests.fakes.openrouter import FakeOpenRouter

A = "google/gemini-2.5-flash-lite"
B = "qwen/qwen2.5-vl-72b-instruct"
CREDITS = 100
UPSTREAM_CODES = {502: "upstream_error", 503: "upstream_unavailable", 504: "upstream_timeout"}
_images = itertools.count(1)


def tiny_png() -> bytes:
    """A 16x16 PNG of noise no other request of the run has: never a result-cache hit (flat
    colours a step apart may re-encode to the same prepared image)."""
    pixels = random.Random(next(_images)).randbytes(16 * 16 * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (16, 16), pixels).save(out, "PNG")
    return out.getvalue()


@dataclass
class Setup:
    service: Service
    account: Account
    fake: FakeOpenRouter
    faults: FaultInjector

    async def post(self) -> httpx.Response:
        return await self.service.client.post(
            "/v1/alt-text",
            headers=self.account.headers,
            files={"image": ("tiny.png", tiny_png(), "image/png")},
        )

    async def balance(self) -> int:
        response = await self.service.client.get("/v1/account", headers=self.account.headers)
        credits: int = response.json()["credits_remaining"]
        return credits

    async def readyz(self) -> dict[str, Any]:
        response = await self.service.client.get("/readyz")
        assert response.status_code == 200, response.text  # an open circuit never unreadies
        body: dict[str, Any] = response.json()
        return body

    async def circuits(self) -> dict[str, Any]:
        circuits: dict[str, Any] = (await self.readyz())["checks"]["circuits"]
        return circuits

    async def scrape(self) -> str:
        response = await self.service.client.get("/metrics", headers=AUTH)
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture
def faulty(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> Callable[..., Any]:
    """``async with faulty({model: ModelFaults}, **settings) as setup``."""

    @asynccontextmanager
    async def start(faults: dict[str, ModelFaults], **overrides: Any) -> AsyncIterator[Setup]:
        defaults = {"metrics_token": TOKEN, "upstream_timeout_s": 0.5, "upstream_budget_s": 5.0}
        settings = openrouter_settings(fake_openrouter, **{**defaults, **overrides})
        with inject_faults(fake_openrouter, faults, seed=14) as injector:
            async with service_factory(**settings) as service:
                account = await service.create_account(credits=CREDITS)
                yield Setup(service, account, fake_openrouter, injector)

    return start


def assert_upstream_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == UPSTREAM_CODES[response.status_code]
    assert body["status"] == response.status_code
    assert "base64" not in body["detail"]
    assert "sk-or-" not in body["detail"]
    if response.status_code == 503:
        assert int(response.headers["retry-after"]) >= 1
    return body


def sent_chains(fake: FakeOpenRouter) -> list[Any]:
    return [r.json.get("models", r.json.get("model")) for r in fake.chat_requests]


async def wait_for_state(setup: Setup, model: str, state: str, within_s: float = 10.0) -> None:
    async with asyncio.timeout(within_s):
        while (await setup.circuits())["models"][model]["state"] != state:
            await asyncio.sleep(0.05)


# -- the breaker's life, end to end ------------------------------------------------------------


async def test_a_failing_model_is_skipped_then_probed_and_closed(
    faulty: Callable[..., Any],
) -> None:
    # A answers every call with an error inside HTTP 200: the client retries on B at once.
    faults = {A: ModelFaults(rate=1.0, kinds=("error_in_200",))}
    async with faulty(faults, breaker_failures=3, breaker_cooldown_s=4.0) as setup:
        circuits = await setup.circuits()
        assert circuits["status"] == "ok"
        assert circuits["failures_to_open"] == 3
        assert circuits["models"][A] == {
            "state": "closed",
            "consecutive_failures": 0,
            "probe_in_s": None,
        }
        before = await setup.scrape()
        assert sample(before, "alttext_circuit_state", model=A) == 0

        for _ in range(3):
            response = await setup.post()
            assert response.status_code == 200, response.text
            assert response.json()["model"] == B
        assert sent_chains(setup.fake) == [[A, B], [B]] * 3

        circuits = await setup.circuits()
        assert circuits["status"] == "degraded"
        assert circuits["models"][A]["state"] == "open"
        assert circuits["models"][A]["consecutive_failures"] == 3
        assert 0 < circuits["models"][A]["probe_in_s"] <= 4.0
        assert circuits["models"][B]["state"] == "closed"
        opened = await setup.scrape()
        assert sample(opened, "alttext_circuit_state", model=A) == 1
        assert delta(before, opened, "alttext_circuit_transitions_total", model=A, to="open") == 1

        # While A's circuit is open, nothing is sent to it.
        setup.fake.reset()
        setup.fake.set_fault_hook(setup.faults)
        reached = setup.faults.reached.get(A, 0)
        assert (await setup.post()).status_code == 200
        assert sent_chains(setup.fake) == [[B]]
        assert setup.faults.reached.get(A, 0) == reached

        # A recovers; after the cool-down one probe goes to it and closes the circuit.
        setup.faults.set(A, None)
        await wait_for_state(setup, A, "half_open")
        probing = await setup.circuits()
        assert probing["models"][A]["probe_in_s"] == 0
        response = await setup.post()
        assert response.status_code == 200, response.text
        assert response.json()["model"] == A
        circuits = await setup.circuits()
        assert circuits["status"] == "ok"
        assert circuits["models"][A]["state"] == "closed"
        after = await setup.scrape()
        assert sample(after, "alttext_circuit_state", model=A) == 0
        for to in ("open", "half_open", "closed"):
            assert delta(before, after, "alttext_circuit_transitions_total", model=A, to=to) == 1

        assert await setup.balance() == CREDITS - 5  # five answers, five credits


async def test_a_failed_probe_opens_the_circuit_again(faulty: Callable[..., Any]) -> None:
    faults = {A: ModelFaults(rate=1.0, kinds=("truncated_json",))}
    async with faulty(faults, breaker_failures=1, breaker_cooldown_s=3.0) as setup:
        before = await setup.scrape()
        assert (await setup.post()).status_code == 200
        await wait_for_state(setup, A, "half_open")
        response = await setup.post()  # the probe fails; B answers the retry
        assert response.status_code == 200, response.text
        assert response.json()["model"] == B
        circuits = await setup.circuits()
        assert circuits["models"][A]["state"] == "open"
        assert circuits["models"][A]["consecutive_failures"] == 2
        after = await setup.scrape()
        assert delta(before, after, "alttext_circuit_transitions_total", model=A, to="open") == 2
        assert delta(before, after, "alttext_circuit_transitions_total", model=A, to="closed") == 0
        assert await setup.balance() == CREDITS - 2


async def test_every_circuit_open_is_503_at_once_and_never_charged(
    faulty: Callable[..., Any],
) -> None:
    faults = {m: ModelFaults(rate=1.0, kinds=("error_in_200",)) for m in (A, B)}
    settings = {"breaker_failures": 2, "breaker_cooldown_s": 30.0, "upstream_budget_s": 10.0}
    async with faulty(faults, **settings) as setup:
        first = await setup.post()
        # Attempts went A, B, A (opened), B (opened): the request ends as soon as both are.
        body = assert_upstream_problem(first, 503)
        assert "paused" in body["detail"]
        assert len(setup.fake.chat_requests) == 4

        second = await setup.post()
        body = assert_upstream_problem(second, 503)
        assert 25 <= int(second.headers["retry-after"]) <= 30
        assert len(setup.fake.chat_requests) == 4  # no call to a model known to be failing

        circuits = await setup.circuits()  # still ready: everything but generation works
        assert circuits["status"] == "open"
        assert {m: c["state"] for m, c in circuits["models"].items()} == {A: "open", B: "open"}
        assert await setup.balance() == CREDITS
        usage = await setup.service.client.get("/v1/usage", headers=setup.account.headers)
        assert usage.json()["totals"]["failed"] == 2
        assert usage.json()["totals"]["credits"] == 0


# -- every kind of fault ends as a 5xx problem, never charged ---------------------------------

EXPECTED: dict[FaultKind, tuple[int, ...]] = {
    "5xx": (502, 503),  # 500 and 502 are upstream errors, 503 unavailable
    "429": (503,),
    "timeout": (504,),
    "error_in_200": (502,),
    "truncated_json": (502,),
    "slow_drip": (504,),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
async def test_each_fault_kind_is_its_5xx_problem(
    kind: FaultKind, faulty: Callable[..., Any]
) -> None:
    faults = {A: ModelFaults(rate=1.0, kinds=(kind,), retry_after_s=0.2, hang_s=1.5, drip_s=1.5)}
    # Slow kinds outlast a short timeout; the others must never meet one on a busy machine.
    timeout_s = 0.5 if kind in ("timeout", "slow_drip") else 2.0
    settings = {"models": A, "upstream_timeout_s": timeout_s, "upstream_budget_s": 2.5}
    async with faulty(faults, **settings) as setup:
        before = await setup.scrape()
        response = await setup.post()
        assert_upstream_problem(response, *EXPECTED[kind])
        assert setup.faults.injected[A] == {kind: len(setup.fake.chat_requests)}
        assert len(setup.fake.chat_requests) >= 2  # retried
        assert await setup.balance() == CREDITS
        after = await setup.scrape()
        assert delta(before, after, "alttext_credits_spent_total") == 0


async def test_breakers_can_be_turned_off(faulty: Callable[..., Any]) -> None:
    faults = {A: ModelFaults(rate=1.0, kinds=("error_in_200",))}
    # A 2 s budget and attempt: the fake's error comes back at once, but a loaded machine (a
    # full CI run) took the fake more than the module's 0.5 s to answer, a 504 instead.
    limits = {"upstream_budget_s": 2.0, "upstream_timeout_s": 2.0}
    async with faulty(faults, models=A, breaker_failures=0, **limits) as setup:
        assert "circuits" not in (await setup.readyz())["checks"]
        for _ in range(3):  # failed calls in a row, and every request still reaches the model
            assert_upstream_problem(await setup.post(), 502)
        # At least one call per request (more when the budget allows a retry: not under load).
        assert len(setup.fake.chat_requests) >= 3
