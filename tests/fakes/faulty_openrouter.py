"""Random upstream faults for the fake OpenRouter, per model, reproducible, counted.

Each model gets a fault rate and a mix of fault kinds. Whenever the fake's chain walk reaches a
model, a random draw (one seeded RNG per model: the k-th call that reaches a model meets the
same fault in every run) decides whether a fault replaces that model's answer::

    with run_fake_openrouter() as fake, inject_faults(
        fake, {"google/gemini-2.5-flash-lite": ModelFaults(rate=0.3)}, seed=7
    ) as faults:
        ...
        faults.injected  # {"google/gemini-2.5-flash-lite": {"timeout": 12, ...}}

The kinds, as OpenRouter shows them (/work/shared/OPENROUTER.md):

- ``5xx``: an HTTP 500, 502 or 503 in OpenRouter's error shape;
- ``429``: rate limited, with ``Retry-After``;
- ``timeout``: nothing at all (not even headers) for ``hang_s``, beyond the client's timeout;
- ``error_in_200``: HTTP 200 with an ``{"error": {...}}`` body and no choices;
- ``truncated_json``: HTTP 200 with a well-formed HTTP body that is half a JSON document;
- ``slow_drip``: HTTP 200 whose (valid) body trickles in over ``drip_s``.

Like OpenRouter, a model that answers with an error status (5xx, 429) hands the request to the
next model of a ``models`` chain (``fallback=False`` turns that off); the others are answers
already under way, so the client sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tests.fakes.openrouter import DEFAULT_API_KEY, FakeOpenRouter, run_fake_openrouter

FaultKind = Literal["5xx", "429", "timeout", "error_in_200", "truncated_json", "slow_drip"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "5xx",
    "429",
    "timeout",
    "error_in_200",
    "truncated_json",
    "slow_drip",
)
# Faults OpenRouter answers with an error status: it moves on along a ``models`` chain.
FALLS_BACK: frozenset[FaultKind] = frozenset({"5xx", "429"})


@dataclass(frozen=True)
class ModelFaults:
    """How one model misbehaves. ``kinds`` are drawn uniformly (repeat one to weigh it)."""

    rate: float
    kinds: tuple[FaultKind, ...] = FAULT_KINDS
    statuses: tuple[int, ...] = (500, 502, 503)  # for ``5xx``
    retry_after_s: float = 1.0  # for ``429``
    hang_s: float = 5.0  # for ``timeout``: longer than the client waits
    drip_s: float = 5.0  # for ``slow_drip``: the whole body takes this long

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0 or not self.kinds:
            raise ValueError("a fault rate is between 0 and 1, with at least one kind")


class _Delayed(Response):
    """Sends nothing at all for ``seconds``, then ``then`` (the client has usually gone)."""

    def __init__(self, seconds: float, then: Response) -> None:
        super().__init__(status_code=then.status_code)
        self.seconds = seconds
        self.then = then

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(self.seconds)
        await self.then(scope, receive, send)


class FaultInjector:
    """The fake's fault hook (``FakeOpenRouter.set_fault_hook``) with its counters."""

    def __init__(
        self, faults: Mapping[str, ModelFaults], *, seed: int = 0, fallback: bool = True
    ) -> None:
        self.faults = dict(faults)
        self.seed = seed
        self.fallback = fallback
        self._lock = threading.Lock()
        self._rngs = {model: random.Random(f"{seed}:{model}") for model in self.faults}
        self._reached: Counter[str] = Counter()
        self._injected: dict[str, Counter[str]] = {model: Counter() for model in self.faults}
        self._moved_on: Counter[str] = Counter()

    def set(self, model: str, faults: ModelFaults | None) -> None:
        """Change (or, with None, end) one model's faults while the server runs."""
        with self._lock:
            if faults is None:
                self.faults.pop(model, None)
                return
            self.faults[model] = faults
            self._rngs.setdefault(model, random.Random(f"{self.seed}:{model}"))
            self._injected.setdefault(model, Counter())

    # -- the hook ----------------------------------------------------------------------------

    def __call__(
        self, fake: FakeOpenRouter, body: dict[str, Any], model: str
    ) -> tuple[Response, bool] | None:
        with self._lock:
            self._reached[model] += 1
            faults = self.faults.get(model)
            if faults is None:
                return None
            rng = self._rngs[model]
            if rng.random() >= faults.rate:
                return None
            kind = rng.choice(faults.kinds)
            status = rng.choice(faults.statuses)
            self._injected[model][kind] += 1
        moves_on = self.fallback and kind in FALLS_BACK and _has_next(body, model)
        if moves_on:
            with self._lock:
                self._moved_on[model] += 1
        return self._respond(kind, status, faults, fake, body, model), moves_on

    @staticmethod
    def _respond(
        kind: FaultKind,
        status: int,
        faults: ModelFaults,
        fake: FakeOpenRouter,
        body: dict[str, Any],
        model: str,
    ) -> Response:
        where = {"provider_name": "Injected", "model": model}
        if kind == "5xx":
            error = {"code": status, "message": "Injected provider error", "metadata": where}
            return JSONResponse({"error": error}, status_code=status)
        if kind == "429":
            error = {"code": 429, "message": "Rate limit exceeded (injected)", "metadata": where}
            headers = {"Retry-After": f"{faults.retry_after_s:g}"}
            return JSONResponse({"error": error}, status_code=429, headers=headers)
        if kind == "error_in_200":
            error = {"code": 502, "message": "Provider returned error", "metadata": where}
            return JSONResponse({"error": error}, status_code=200)
        answer = fake.default_answer(body, model)
        if kind == "timeout":
            return _Delayed(faults.hang_s, answer)
        data = bytes(answer.body)
        if kind == "truncated_json":
            return Response(data[: len(data) // 2], media_type="application/json")
        return StreamingResponse(_drip(data, faults.drip_s), media_type="application/json")

    # -- what happened -----------------------------------------------------------------------

    @property
    def injected(self) -> dict[str, dict[str, int]]:
        """Faults injected, per model and kind."""
        with self._lock:
            return {model: dict(kinds) for model, kinds in self._injected.items()}

    @property
    def reached(self) -> dict[str, int]:
        """How often the chain walk reached each model (faulty or not)."""
        with self._lock:
            return dict(self._reached)

    def total(self, model: str | None = None) -> int:
        injected = self.injected
        models = [model] if model is not None else list(injected)
        return sum(sum(injected.get(m, {}).values()) for m in models)

    def report(self) -> dict[str, Any]:
        """The figures, for a test's record: per model, calls reached, faults by kind, and how
        many of them OpenRouter absorbed by moving on to the next model."""
        with self._lock:
            return {
                "seed": self.seed,
                "models": {
                    model: {
                        "rate": self.faults[model].rate if model in self.faults else 0.0,
                        "reached": self._reached[model],
                        "injected": dict(self._injected.get(model, {})),
                        "moved_on": self._moved_on[model],
                    }
                    for model in sorted(set(self._reached) | set(self._injected))
                },
            }


def _has_next(body: dict[str, Any], model: str) -> bool:
    chain = body.get("models")
    if not isinstance(chain, list) or model not in chain:
        return False
    return chain.index(model) < len(chain) - 1


async def _drip(data: bytes, seconds: float, pieces: int = 20) -> AsyncIterator[bytes]:
    step = max(1, -(-len(data) // pieces))
    for start in range(0, len(data), step):
        yield data[start : start + step]
        await asyncio.sleep(seconds / pieces)


@contextlib.contextmanager
def inject_faults(
    fake: FakeOpenRouter,
    faults: Mapping[str, ModelFaults],
    *,
    seed: int = 0,
    fallback: bool = True,
) -> Iterator[FaultInjector]:
    """Faults in ``fake`` for the duration of the block."""
    injector = FaultInjector(faults, seed=seed, fallback=fallback)
    fake.set_fault_hook(injector)
    try:
        yield injector
    finally:
        fake.set_fault_hook(None)


@contextlib.contextmanager
def run_faulty_openrouter(
    faults: Mapping[str, ModelFaults],
    *,
    seed: int = 0,
    fallback: bool = True,
    api_key: str = DEFAULT_API_KEY,
) -> Iterator[tuple[FakeOpenRouter, FaultInjector]]:
    """A fake OpenRouter of its own with ``faults`` injected."""
    with (
        run_fake_openrouter(api_key) as fake,
        inject_faults(fake, faults, seed=seed, fallback=fallback) as injector,
    ):
        yield fake, injector
