"""Circuit breakers, one per model: stop asking a model that keeps failing, probe it later.

Each model of the chain has a circuit:

- **closed** (the normal state): every call may go. A failed call adds one to the model's
  consecutive failures, a successful one sets them back to 0. ``failures`` consecutive failed
  calls (``ALTTEXT_BREAKER_FAILURES``, 5) **open** the circuit.
- **open**: no call goes to the model; the provider's chain skips it at once. After
  ``cooldown_s`` (``ALTTEXT_BREAKER_COOLDOWN_S``, 30 s) the circuit is **half-open**.
- **half-open**: exactly one call, the probe, may go to the model. Its success closes the
  circuit, its failure opens it again for another cool-down. While the probe is out, other calls
  skip the model. A probe whose answer says nothing about the model (a cut-off answer, a
  moderation refusal, a cancelled request) hands its turn to the next call.

Why consecutive failures rather than a failure rate over a window: a rate needs a minimum volume
to mean anything, which a quiet deployment never reaches, while five failures in a row of a
model that fails 30 % of the time happen about once in 600 calls: a flaky model is paused
briefly now and then (its probe soon closes it again), a dead one after its first five calls.

"Failed" is decided by the provider: a failure that says the model is unwell (5xx, 429, a
timeout, an error inside HTTP 200, a body that is not JSON, an empty answer, an unreachable
server). A bad request, a refused key, moderation or a cut-off answer say nothing about the
model's health and count as neither success nor failure.

Results of calls let through in an earlier state are stale: while a circuit is open or
half-open only its probe's result moves it (a slow success that was asked before the circuit
opened does not close it; a slow failure does not restart the cool-down).

The state lives in the process (see docs/engine.md, "Circuit breakers", for why that is enough).
Everything here is synchronous and guarded by one lock, so the event loop and worker threads
may share one ``CircuitBreakers``; the clock is injectable for tests.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

logger = logging.getLogger(__name__)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# The value of each state in the ``alttext_circuit_state`` gauge.
STATE_VALUES: dict[CircuitState, int] = {
    CircuitState.CLOSED: 0,
    CircuitState.OPEN: 1,
    CircuitState.HALF_OPEN: 2,
}

# Told of every state change: (model, new state). The process wires it to metrics.
TransitionObserver = Callable[[str, CircuitState], None]

# The shortest Retry-After given when every circuit is open (a probe already out).
MIN_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class BreakerConfig:
    failures: int = 5  # consecutive failed calls that open a circuit
    cooldown_s: float = 30.0  # open this long, then one probe may go
    # A probe that never reports (it should always report) frees its turn after this long.
    probe_lease_s: float = 120.0
    # Circuits kept at most (the chain's models always have one); others go unguarded.
    max_models: int = 50

    def __post_init__(self) -> None:
        if self.failures < 1 or self.cooldown_s <= 0 or self.probe_lease_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and positive durations")


@dataclass(frozen=True)
class CircuitSnapshot:
    """One circuit as ``/readyz`` shows it. ``probe_in_s``: seconds until a probe may go (0
    when half-open, None when closed)."""

    model: str
    state: CircuitState
    consecutive_failures: int
    probe_in_s: float | None
    probing: bool = False


@dataclass(frozen=True)
class Admission:
    """The models one call may ask, in chain order. ``probes`` maps each model let through as
    its circuit's probe to the probe's number, so only that probe's result moves the circuit."""

    models: tuple[str, ...]
    probes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe: int | None = None  # the number of the probe that is out, if one is
    probe_until: float = 0.0


class CircuitBreakers:
    """The circuits of one process, created for the chain's ``models`` up front and for any
    other model when first asked (up to ``config.max_models``)."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        models: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        on_transition: TransitionObserver | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {m: _Circuit() for m in models}
        self._probe_numbers = itertools.count(1)

    # -- the provider's side -----------------------------------------------------------------

    def admit(self, chain: Sequence[str], *, limit: int | None = None) -> Admission:
        """The models of ``chain`` that may be asked now (at most ``limit``), in order. A
        half-open model is let through as the probe; nothing admitted means every circuit of
        the chain is open (or probing)."""
        changes: list[tuple[str, CircuitState]] = []
        admitted: list[str] = []
        probes: dict[str, int] = {}
        with self._lock:
            now = self._clock()
            for model in chain:
                if limit is not None and len(admitted) >= limit:
                    break
                circuit = self._circuit(model)
                if circuit is None:
                    admitted.append(model)  # beyond the cap: unguarded
                    continue
                self._ripen(model, circuit, now, changes)
                if circuit.state is CircuitState.CLOSED:
                    admitted.append(model)
                elif circuit.state is CircuitState.HALF_OPEN and (
                    circuit.probe is None or now >= circuit.probe_until
                ):
                    circuit.probe = next(self._probe_numbers)
                    circuit.probe_until = now + self.config.probe_lease_s
                    probes[model] = circuit.probe
                    admitted.append(model)
        self._notify(changes)
        return Admission(tuple(admitted), probes)

    def report(
        self, admission: Admission, *, failed: Sequence[str] = (), succeeded: str | None = None
    ) -> None:
        """The result of one call made with ``admission``: the models that ``failed`` (their
        health is in doubt) and the one that ``succeeded``. Probes of the admission that are in
        neither were not reached, or their answer said nothing: their turn is handed on."""
        changes: list[tuple[str, CircuitState]] = []
        with self._lock:
            now = self._clock()
            for model in failed:
                self._failure(model, admission.probes.get(model), now, changes)
            if succeeded is not None:
                self._success(succeeded, admission.probes.get(succeeded), changes)
            for model, number in admission.probes.items():
                circuit = self._circuits.get(model)
                if circuit is not None and circuit.probe == number:
                    circuit.probe = None
        self._notify(changes)

    def release(self, admission: Admission) -> None:
        """The call ended without a verdict (cancelled, or a failure of ours)."""
        self.report(admission)

    def allows(self, model: str) -> bool:
        """Whether a call to ``model`` would be admitted now (read-only: no probe is taken)."""
        with self._lock:
            circuit = self._circuits.get(model)
            if circuit is None:
                return True
            now = self._clock()
            if circuit.state is CircuitState.CLOSED:
                return True
            if circuit.state is CircuitState.OPEN:
                return now >= circuit.opened_at + self.config.cooldown_s
            return circuit.probe is None or now >= circuit.probe_until

    def retry_after(self, chain: Sequence[str]) -> float:
        """Seconds until one of ``chain``'s models takes a call again: the first probe."""
        with self._lock:
            now = self._clock()
            waits = [self._wait(self._circuits.get(model), now) for model in chain]
        return max(MIN_RETRY_AFTER_S, min(waits, default=MIN_RETRY_AFTER_S))

    # -- what /readyz and tests read ---------------------------------------------------------

    def snapshot(self) -> list[CircuitSnapshot]:
        """Every circuit, as of now (an open circuit whose cool-down is over reads half-open)."""
        changes: list[tuple[str, CircuitState]] = []
        out: list[CircuitSnapshot] = []
        with self._lock:
            now = self._clock()
            for model, circuit in self._circuits.items():
                self._ripen(model, circuit, now, changes)
                probe_in: float | None = None
                if circuit.state is CircuitState.OPEN:
                    probe_in = max(0.0, circuit.opened_at + self.config.cooldown_s - now)
                elif circuit.state is CircuitState.HALF_OPEN:
                    probe_in = 0.0
                out.append(
                    CircuitSnapshot(
                        model=model,
                        state=circuit.state,
                        consecutive_failures=circuit.failures,
                        probe_in_s=probe_in,
                        probing=circuit.probe is not None and now < circuit.probe_until,
                    )
                )
        self._notify(changes)
        return out

    def state(self, model: str) -> CircuitState:
        return next((s.state for s in self.snapshot() if s.model == model), CircuitState.CLOSED)

    # -- the state machine (callers hold the lock) -------------------------------------------

    def _circuit(self, model: str) -> _Circuit | None:
        circuit = self._circuits.get(model)
        if circuit is None and len(self._circuits) < self.config.max_models:
            circuit = self._circuits[model] = _Circuit()
        return circuit

    def _ripen(
        self, model: str, circuit: _Circuit, now: float, changes: list[tuple[str, CircuitState]]
    ) -> None:
        """Open -> half-open once the cool-down is over (read lazily, by whoever looks)."""
        if circuit.state is CircuitState.OPEN and now >= circuit.opened_at + self.config.cooldown_s:
            circuit.state = CircuitState.HALF_OPEN
            circuit.probe = None
            changes.append((model, CircuitState.HALF_OPEN))

    def _failure(
        self,
        model: str,
        probe: int | None,
        now: float,
        changes: list[tuple[str, CircuitState]],
    ) -> None:
        circuit = self._circuit(model)
        if circuit is None:
            return
        circuit.failures += 1
        if circuit.state is CircuitState.CLOSED:
            if circuit.failures >= self.config.failures:
                self._open(model, circuit, now, changes)
        elif circuit.state is CircuitState.HALF_OPEN and _is_probe(circuit, probe):
            self._open(model, circuit, now, changes)

    def _success(
        self, model: str, probe: int | None, changes: list[tuple[str, CircuitState]]
    ) -> None:
        circuit = self._circuit(model)
        if circuit is None:
            return
        if circuit.state is CircuitState.CLOSED:
            circuit.failures = 0
        elif circuit.state is CircuitState.HALF_OPEN and _is_probe(circuit, probe):
            circuit.state = CircuitState.CLOSED
            circuit.failures = 0
            circuit.probe = None
            changes.append((model, CircuitState.CLOSED))

    def _open(
        self, model: str, circuit: _Circuit, now: float, changes: list[tuple[str, CircuitState]]
    ) -> None:
        circuit.state = CircuitState.OPEN
        circuit.opened_at = now
        circuit.probe = None
        changes.append((model, CircuitState.OPEN))

    def _wait(self, circuit: _Circuit | None, now: float) -> float:
        if circuit is None or circuit.state is CircuitState.CLOSED:
            return 0.0
        if circuit.state is CircuitState.OPEN:
            return max(0.0, circuit.opened_at + self.config.cooldown_s - now)
        if circuit.probe is None or now >= circuit.probe_until:
            return 0.0
        return MIN_RETRY_AFTER_S  # the probe is out: its answer decides within moments

    def _notify(self, changes: list[tuple[str, CircuitState]]) -> None:
        for model, state in changes:
            if state is CircuitState.OPEN:
                logger.warning(
                    "circuit of %s opened; skipped for %gs", model, self.config.cooldown_s
                )
            else:
                logger.info("circuit of %s is %s", model, state.value)
            if self._on_transition is None:
                continue
            try:
                self._on_transition(model, state)
            except Exception:  # an observer's failure must never fail a generation
                logger.exception("circuit observer failed")


def _is_probe(circuit: _Circuit, probe: int | None) -> bool:
    """Whether a result comes from the circuit's current probe (others are stale)."""
    return probe is not None and probe == circuit.probe


class ChainWalk:
    """One provider call's way along the chain, attempt after attempt.

    Each attempt asks the models whose circuits admit a call, in chain order (at most
    ``limit``: 1 when the server takes one model per call). A model that failed earlier in this
    call goes to the back: the retry asks the next model at once instead of the one that just
    failed; only when every admitted model has failed in this call is the chain asked again in
    its own order. Without breakers (``None``) every attempt asks the whole chain, unchanged.
    """

    def __init__(
        self, chain: Sequence[str], breakers: CircuitBreakers | None, *, limit: int | None
    ) -> None:
        self.chain = tuple(chain)
        self._breakers = breakers
        self._limit = limit
        self._failed: list[str] = []

    def next(self) -> Admission | None:
        """The models the next attempt asks; None when every circuit of the chain is open."""
        breakers = self._breakers
        if breakers is None:
            return Admission(self.chain[: self._limit] if self._limit else self.chain)
        fresh = [m for m in self.chain if m not in self._failed]
        admission = breakers.admit(fresh, limit=self._limit) if fresh else Admission(())
        if not admission.models and self._failed:
            admission = breakers.admit(self.chain, limit=self._limit)
        return admission if admission.models else None

    def failed(self, admission: Admission, *, health: bool) -> None:
        """The attempt failed. ``health``: in a way that puts the model's health in doubt; it
        is counted against the first model asked (OpenRouter does not say which model of the
        chain failed: when it fell back, the first had failed already)."""
        if self._breakers is None:
            return
        first = admission.models[0]
        if health:
            if first not in self._failed:
                self._failed.append(first)
            self._breakers.report(admission, failed=(first,))
        else:
            self._breakers.release(admission)

    def answered(self, admission: Admission, model: str) -> None:
        """The attempt succeeded, answered by ``model``: the models asked before it failed
        (OpenRouter moved past them), it succeeded."""
        if self._breakers is None:
            return
        index = _position(admission.models, model)
        self._breakers.report(
            admission, failed=admission.models[:index], succeeded=admission.models[index]
        )

    def abandon(self, admission: Admission) -> None:
        """The attempt ended without a verdict (cancelled, or a failure of ours)."""
        if self._breakers is not None:
            self._breakers.release(admission)

    def moves_on(self) -> bool:
        """Whether the next attempt can ask a model that has not failed in this call (then it
        need not wait out a backoff meant for the model that just failed)."""
        breakers = self._breakers
        if breakers is None or not self._failed:
            return False
        return any(m not in self._failed and breakers.allows(m) for m in self.chain)

    def blocked(self) -> bool:
        """Whether every model of the chain is paused now (no retry could go anywhere)."""
        breakers = self._breakers
        return breakers is not None and not any(breakers.allows(m) for m in self.chain)

    def retry_after(self) -> float:
        return self._breakers.retry_after(self.chain) if self._breakers else MIN_RETRY_AFTER_S


def _position(models: Sequence[str], answered: str) -> int:
    """Where the model that answered stands among those asked. Providers may name a dated
    variant ("google/gemini-2.5-flash-lite-001"): a prefix counts; unknown means the first."""
    if answered in models:
        return models.index(answered)
    for index, model in enumerate(models):
        if answered.startswith(model) or model.startswith(answered):
            return index
    return 0
