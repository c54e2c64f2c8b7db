"""Circuit breakers per model: the state machine on a fake clock, the chain walk, and the
OpenRouter provider with breakers against the fake OpenRouter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from alttext.describe.errors import AppError, UpstreamUnavailable
from alttext.describe.providers.breaker import (
    Admission,
    BreakerConfig,
    ChainWalk,
    CircuitBreakers,
    CircuitState,
)
from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from tests.describe.providers.test_openrouter import FakeTime, make_request
from tests.fakes.faulty_openrouter import ModelFaults, inject_faults
from tests.fakes.openrouter import (
    ErrorIn200,
    FakeOpenRouter,
    Reply,
    Slow,
    Status,
    run_fake_openrouter,
)

A = "google/gemini-2.5-flash-lite"
B = "qwen/qwen2.5-vl-72b-instruct"
C = "qwen/qwen2.5-vl-32b-instruct"
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breakers(
    clock: Clock,
    *,
    failures: int = 3,
    cooldown_s: float = 10.0,
    models: tuple[str, ...] = (A, B),
    **config: Any,
) -> tuple[CircuitBreakers, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    made = CircuitBreakers(
        BreakerConfig(failures=failures, cooldown_s=cooldown_s, **config),
        models=models,
        clock=clock,
        on_transition=lambda model, state: seen.append((model, state.value)),
    )
    return made, seen


def fail(b: CircuitBreakers, model: str, times: int = 1) -> None:
    for _ in range(times):
        b.report(b.admit([model]), failed=(model,))


def succeed(b: CircuitBreakers, model: str) -> None:
    b.report(b.admit([model]), succeeded=model)


def state(b: CircuitBreakers, model: str) -> CircuitState:
    return b.state(model)


# -- the state machine -------------------------------------------------------------------------


def test_consecutive_failures_open_the_circuit() -> None:
    clock = Clock()
    b, seen = breakers(clock)
    fail(b, A, 2)
    assert state(b, A) is CLOSED
    fail(b, A)
    assert state(b, A) is OPEN
    assert seen == [(A, "open")]
    assert state(b, B) is CLOSED  # one circuit per model


def test_a_success_resets_the_count() -> None:
    clock = Clock()
    b, seen = breakers(clock)
    fail(b, A, 2)
    succeed(b, A)
    fail(b, A, 2)
    assert state(b, A) is CLOSED
    (snap,) = [s for s in b.snapshot() if s.model == A]
    assert snap.consecutive_failures == 2
    assert seen == []


def test_an_open_circuit_is_skipped_and_says_when_it_probes() -> None:
    clock = Clock()
    b, _ = breakers(clock)
    fail(b, A, 3)
    assert b.admit([A, B]).models == (B,)
    assert b.admit([A]).models == ()
    clock.advance(4)
    assert b.retry_after([A]) == pytest.approx(6.0)
    (snap,) = [s for s in b.snapshot() if s.model == A]
    assert snap.state is OPEN
    assert snap.probe_in_s == pytest.approx(6.0)
    assert snap.consecutive_failures == 3
    assert not b.allows(A)


def test_after_the_cool_down_exactly_one_probe_goes() -> None:
    clock = Clock()
    b, seen = breakers(clock)
    fail(b, A, 3)
    clock.advance(10)
    assert b.allows(A)
    probe = b.admit([A, B])
    assert probe.models == (A, B)
    assert set(probe.probes) == {A}
    assert state(b, A) is HALF_OPEN
    # While the probe is out, everyone else skips A.
    assert b.admit([A, B]).models == (B,)
    assert not b.allows(A)
    assert b.retry_after([A]) == 1.0
    b.report(probe, succeeded=A)
    assert state(b, A) is CLOSED
    assert b.admit([A, B]).models == (A, B)
    assert seen == [(A, "open"), (A, "half_open"), (A, "closed")]


def test_a_failed_probe_opens_the_circuit_for_another_cool_down() -> None:
    clock = Clock()
    b, seen = breakers(clock)
    fail(b, A, 3)
    clock.advance(11)
    probe = b.admit([A])
    b.report(probe, failed=(A,))
    assert state(b, A) is OPEN
    clock.advance(9.5)
    assert b.admit([A]).models == ()  # the cool-down started again at the probe's failure
    assert b.retry_after([A]) == pytest.approx(1.0)
    clock.advance(0.5)
    assert b.admit([A]).models == (A,)
    assert seen == [(A, "open"), (A, "half_open"), (A, "open"), (A, "half_open")]


def test_a_probe_without_verdict_hands_its_turn_on() -> None:
    clock = Clock()
    b, seen = breakers(clock)
    fail(b, A, 3)
    clock.advance(10)
    first = b.admit([A])
    b.release(first)  # e.g. the caller went away, or the answer was cut off
    assert state(b, A) is HALF_OPEN
    second = b.admit([A])
    assert second.probes.keys() == {A}
    b.report(second, succeeded=A)
    assert state(b, A) is CLOSED
    assert seen[-1] == (A, "closed")


def test_a_probe_that_never_reports_frees_its_turn_after_the_lease() -> None:
    clock = Clock()
    b, _ = breakers(clock, probe_lease_s=30.0)
    fail(b, A, 3)
    clock.advance(10)
    lost = b.admit([A])
    assert lost.models == (A,)
    clock.advance(29)
    assert b.admit([A]).models == ()
    clock.advance(1)
    fresh = b.admit([A])
    assert fresh.models == (A,)
    b.report(lost, failed=(A,))  # the lost probe turns up late: stale, it changes nothing
    assert state(b, A) is HALF_OPEN
    b.report(fresh, succeeded=A)
    assert state(b, A) is CLOSED


def test_results_of_calls_let_through_before_the_circuit_opened_are_stale() -> None:
    clock = Clock()
    b, seen = breakers(clock)
    early = [b.admit([A]) for _ in range(3)]
    fail(b, A, 3)
    assert state(b, A) is OPEN
    b.report(early[0], succeeded=A)  # a slow success does not close an open circuit
    assert state(b, A) is OPEN
    clock.advance(6)
    b.report(early[1], failed=(A,))  # a slow failure does not restart the cool-down
    clock.advance(4)
    probe = b.admit([A])
    assert probe.probes.keys() == {A}
    b.report(early[2], succeeded=A)  # nor does a stale success decide the probe
    assert state(b, A) is HALF_OPEN
    b.report(probe, succeeded=A)
    assert state(b, A) is CLOSED
    assert seen == [(A, "open"), (A, "half_open"), (A, "closed")]


def test_retry_after_is_the_time_until_the_first_probe() -> None:
    clock = Clock()
    b, _ = breakers(clock)
    fail(b, A, 3)
    clock.advance(4)
    fail(b, B, 3)
    assert b.admit([A, B]).models == ()
    assert b.retry_after([A, B]) == pytest.approx(6.0)
    clock.advance(5.5)
    assert b.retry_after([A, B]) == 1.0  # never below a second
    assert b.retry_after([]) == 1.0


def test_a_failing_observer_fails_nothing() -> None:
    def broken(model: str, state: CircuitState) -> None:
        raise RuntimeError("metrics are down")

    b = CircuitBreakers(BreakerConfig(failures=1), models=(A,), on_transition=broken)
    fail(b, A)
    assert b.state(A) is OPEN


def test_models_beyond_the_cap_go_unguarded() -> None:
    clock = Clock()
    b, _ = breakers(clock, failures=1, models=(A,), max_models=2)
    fail(b, B)
    fail(b, C)
    assert b.admit([A, B, C]).models == (A, C)  # B has a circuit (open), C none
    assert [s.model for s in b.snapshot()] == [A, B]


def test_limit_admits_the_first_models_only() -> None:
    b, _ = breakers(Clock(), failures=1, models=(A, B, C))
    fail(b, A)
    assert b.admit([A, B, C], limit=1).models == (B,)


@pytest.mark.parametrize("config", [{"failures": 0}, {"cooldown_s": 0.0}, {"probe_lease_s": -1.0}])
def test_config_is_checked(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="breaker"):
        BreakerConfig(**config)


# -- the chain walk ----------------------------------------------------------------------------


def test_without_breakers_every_attempt_asks_the_whole_chain() -> None:
    walk = ChainWalk((A, B), None, limit=None)
    first = walk.next()
    assert first == Admission((A, B))
    walk.failed(first, health=True)
    assert walk.next() == Admission((A, B))
    assert not walk.moves_on()
    assert ChainWalk((A, B), None, limit=1).next() == Admission((A,))


def test_a_retry_asks_the_next_model_then_the_chain_again() -> None:
    b, _ = breakers(Clock(), failures=5)
    walk = ChainWalk((A, B), b, limit=None)
    first = walk.next()
    assert first is not None
    assert first.models == (A, B)
    walk.failed(first, health=True)
    assert walk.moves_on()
    second = walk.next()
    assert second is not None
    assert second.models == (B,)
    walk.failed(second, health=True)
    assert not walk.moves_on()  # every model failed once in this call
    third = walk.next()
    assert third is not None
    assert third.models == (A, B)


def test_a_failure_that_says_nothing_about_the_model_is_not_counted() -> None:
    b, _ = breakers(Clock(), failures=1)
    walk = ChainWalk((A, B), b, limit=None)
    first = walk.next()
    assert first is not None
    walk.failed(first, health=False)
    assert b.state(A) is CLOSED
    assert walk.next() == Admission((A, B))


def test_an_answer_from_further_down_the_chain_counts_against_those_before() -> None:
    b, _ = breakers(Clock(), failures=1, models=(A, B, C))
    walk = ChainWalk((A, B, C), b, limit=None)
    admission = walk.next()
    assert admission is not None
    walk.answered(admission, C)
    assert [b.state(m) for m in (A, B, C)] == [OPEN, OPEN, CLOSED]


def test_a_dated_variant_of_a_model_counts_as_that_model() -> None:
    b, _ = breakers(Clock(), failures=1)
    walk = ChainWalk((A, B), b, limit=None)
    admission = walk.next()
    assert admission is not None
    walk.answered(admission, f"{B}-2025-01-01")
    assert [b.state(m) for m in (A, B)] == [OPEN, CLOSED]


def test_every_circuit_open_means_no_admission() -> None:
    b, _ = breakers(Clock(), failures=1)
    fail(b, A)
    fail(b, B)
    walk = ChainWalk((A, B), b, limit=None)
    assert walk.next() is None
    assert walk.retry_after() == pytest.approx(10.0)


# -- the provider with breakers, over HTTP -----------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenRouter]:
    with run_fake_openrouter() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenRouter) -> FakeOpenRouter:
    server.reset()
    return server


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def guarded(
    fake: FakeOpenRouter,
    client: aiohttp.ClientSession,
    time: FakeTime,
    *,
    failures: int = 2,
    cooldown_s: float = 30.0,
    models: tuple[str, ...] = (A, B),
    **config: Any,
) -> ChatCompletionsProvider:
    settings: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": fake.api_key,
        "models": models,
        "timeout_s": 5.0,
        **config,
    }
    made = CircuitBreakers(
        BreakerConfig(failures=failures, cooldown_s=cooldown_s), models=models, clock=time.clock
    )
    return ChatCompletionsProvider(
        ChatConfig(**settings),
        client,
        sleep=time.sleep,
        clock=time.clock,
        jitter=lambda: 0.5,
        breakers=made,
    )


def sent_chains(fake: FakeOpenRouter) -> list[Any]:
    return [r.json.get("models", r.json.get("model")) for r in fake.chat_requests]


async def test_a_retry_goes_to_the_next_model_without_waiting(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    fake.enqueue(ErrorIn200("error_body"), Reply("A lighthouse at dusk."))
    reply = await guarded(fake, client, time).complete(make_request())
    assert reply.content == "A lighthouse at dusk."
    assert sent_chains(fake) == [[A, B], [B]]
    assert time.sleeps == []


async def test_an_open_model_is_left_out_of_the_chain(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time)
    assert provider.breakers is not None
    fake.fail_model(A, code=503)  # OpenRouter falls back: the answer comes from B
    for _ in range(2):
        assert (await provider.complete(make_request())).model == B
    assert provider.breakers.state(A) is OPEN
    fake.reset()
    assert (await provider.complete(make_request())).model == B
    assert sent_chains(fake) == [[B]]  # no time spent on A while its circuit is open


async def test_the_probe_closes_the_circuit_when_the_model_is_back(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time, cooldown_s=30.0)
    assert provider.breakers is not None
    # Attempts go A, B (the next model), A and B again: both circuits open.
    fake.enqueue(*[ErrorIn200("error_body")] * 4)
    with pytest.raises(UpstreamUnavailable):  # the call ends as soon as both are paused
        await provider.complete(make_request())
    assert [provider.breakers.state(m) for m in (A, B)] == [OPEN, OPEN]
    fake.reset()
    time.now += 30
    reply = await provider.complete(make_request())
    assert reply.model == A
    assert sent_chains(fake) == [[A, B]]  # the probe rides along with the rest of the chain
    assert [provider.breakers.state(m) for m in (A, B)] == [CLOSED, HALF_OPEN]


async def test_every_circuit_open_is_a_503_with_retry_after_and_no_call(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time, failures=1, cooldown_s=30.0)
    fake.enqueue(Status(502), Status(502))
    with pytest.raises(UpstreamUnavailable) as first:
        await provider.complete(make_request())
    # Both models failed once: their circuits opened during the call, which ends at once.
    assert len(fake.chat_requests) == 2
    assert "paused" in first.value.detail
    assert "HTTP 502" in first.value.detail
    time.now += 12
    with pytest.raises(UpstreamUnavailable) as caught:
        await provider.complete(make_request())
    assert len(fake.chat_requests) == 2
    assert caught.value.retry_after == pytest.approx(18.0)
    assert A in caught.value.detail
    assert fake.api_key not in caught.value.detail


async def test_one_model_servers_walk_the_chain_themselves(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time, openrouter=False, failures=1)
    fake.enqueue(Status(503), Reply("A lighthouse at dusk."))
    await provider.complete(make_request())
    assert sent_chains(fake) == [A, B]  # an OpenAI-compatible server gets one model per call
    fake.reset()
    await provider.complete(make_request())
    assert sent_chains(fake) == [B]


async def test_a_requested_model_with_an_open_circuit_is_not_replaced(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time, failures=1)
    fake.enqueue(Status(503), Status(503))
    with pytest.raises(UpstreamUnavailable):
        await provider.complete(make_request(model=B))
    assert sent_chains(fake) == [B]
    fake.reset()
    assert (await provider.complete(make_request())).model == A  # the chain still has A


@pytest.mark.parametrize(
    "failure",
    [Status(400, "bad"), Status(401), Status(403), ErrorIn200("length")],
    ids=["400", "401", "403", "cut-off"],
)
async def test_failures_that_say_nothing_about_the_model_do_not_count(
    failure: Any, fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time, failures=1)
    assert provider.breakers is not None
    fake.enqueue(failure, failure)
    with contextlib.suppress(AppError):
        await provider.complete(make_request())
    assert provider.breakers.state(A) is CLOSED


async def test_a_cancelled_probe_hands_its_turn_on(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    time = FakeTime()
    provider = guarded(fake, client, time, failures=1, models=(A,))
    assert provider.breakers is not None
    fake.enqueue(Status(503), Status(503), Status(503), Status(503))
    with pytest.raises(UpstreamUnavailable):
        await provider.complete(make_request())
    time.now += 30
    fake.reset()
    fake.enqueue(Slow(5))
    task = asyncio.create_task(provider.complete(make_request()))
    while not fake.chat_requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.breakers.state(A) is HALF_OPEN
    assert (await provider.complete(make_request())).model == A  # the next call probes
    assert provider.breakers.state(A) is CLOSED


async def test_faults_reach_the_breaker_through_openrouter_fallbacks(
    fake: FakeOpenRouter, client: aiohttp.ClientSession
) -> None:
    """A always fails with an error status: OpenRouter falls back to B every time, the caller
    never sees a failure, and A's circuit opens all the same."""
    time = FakeTime()
    provider = guarded(fake, client, time, failures=3)
    assert provider.breakers is not None
    with inject_faults(fake, {A: ModelFaults(rate=1.0, kinds=("5xx", "429"))}) as faults:
        for _ in range(5):
            assert (await provider.complete(make_request())).model == B
    assert faults.total(A) == 3
    assert provider.breakers.state(A) is OPEN
    assert sent_chains(fake) == [[A, B]] * 3 + [[B]] * 2
