"""Crashes under load: ``alttext serve`` SIGKILLed and SIGTERMed with requests in flight.

Every scenario runs the real service as a subprocess against the fake OpenRouter (a real
server on 127.0.0.1 that answers slowly on demand) and checks the money afterwards in the
database: the ledger's sum equals the balance, no reservation is left held, and the credits
spent equal the successful answers the clients received. The unmarked tests are the short
variants of the normal suite; ``@pytest.mark.chaos`` marks the long ones (``pytest -m chaos``).
Each writes its figures to ``var/chaos/<name>.json`` (docs/reliability.md quotes them).

Worker crashes (SIGTERM to ``alttext worker`` with an item in flight) are in
tests/test_worker.py; SIGKILL of a worker mid-job in tests/jobs/test_jobs_processes.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from alttext.accounts.models import Account
from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import create_engine, session_factory, transaction
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import FakeOpenRouter, Slow
from tests.jobs.helpers import png
from tests.processes import free_port, logged
from tests.processes import service_process as plain_service_process

FIGURES = Path(__file__).resolve().parents[2] / "var" / "chaos"
HOLD = "hold-this-request-until-the-crash"  # in a request's context: the fake model stalls
FAST_S = 0.3  # the fake model's answer time for every other request


# -- harness (shared with test_dependencies.py) ----------------------------------------------


def service_env(database_url: str, fake: FakeOpenRouter, **extra: str) -> dict[str, str]:
    return {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake.base_url,
        "ALTTEXT_MODELS": "google/gemini-2.5-flash-lite",
        "ALTTEXT_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALTTEXT_MAX_CONCURRENT_PER_ACCOUNT": "1000",
        "ALTTEXT_LOG_LEVEL": "WARNING",
        # Bursts of small images: never refused for a full CPU queue (503) in these tests.
        "ALTTEXT_CPU_QUEUE": "10000",
        **extra,
    }


LOGS = FIGURES / "logs"


@contextmanager
def service_process(
    env: dict[str, str], port: int, log: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """tests.processes.service_process, keeping the service's stderr (JSON log lines) in
    ``var/chaos/logs/<log>.log`` when ``log`` is given: what a scenario's 5xx said."""
    path = None
    if log is not None:
        LOGS.mkdir(parents=True, exist_ok=True)
        path = LOGS / f"{log}.log"
    with plain_service_process(env, port, log=path) as proc:
        yield proc


def hold_marked(fake: FakeOpenRouter, fast_s: float = FAST_S) -> None:
    """The fake model stalls a minute on requests whose context holds HOLD, else answers in
    ``fast_s``."""
    fake.respond_with(lambda body, _model: Slow(60) if HOLD in json.dumps(body) else Slow(fast_s))


async def new_account(database_url: str, credits: int, email: str) -> tuple[str, str]:
    """(account id, API key) with ``credits`` granted."""
    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            account = await create_account(session, email)
            await grant_starting_credits(session, account, credits)
            _, secret = await create_key(session, account.id)
        return account.id, secret
    finally:
        await engine.dispose()


@dataclass
class Money:
    ledger: int  # the sum of the account's ledger entries
    balance: int  # accounts.credits_balance
    reservations: Counter[str]  # held / settled / released

    @property
    def held(self) -> int:
        return self.reservations["held"]


async def money(database_url: str, account_id: str) -> Money:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            ledger = await session.scalar(
                select(func.coalesce(func.sum(CreditEntry.credits), 0)).where(
                    CreditEntry.account_id == account_id
                )
            )
            balance = await session.scalar(
                select(Account.credits_balance).where(Account.id == account_id)
            )
            states = (
                await session.execute(
                    select(CreditReservation.state, func.count())
                    .where(CreditReservation.account_id == account_id)
                    .group_by(CreditReservation.state)
                )
            ).all()
    finally:
        await engine.dispose()
    return Money(int(ledger or 0), int(balance or 0), Counter({s: int(n) for s, n in states}))


async def wait_until(
    probe: Callable[[], Awaitable[bool]], timeout: float, what: str, step: float = 0.1
) -> float:
    """Poll until ``probe`` is true; the seconds it took."""
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < timeout, f"{what}: not reached in {timeout:g} s"
        await asyncio.sleep(step)
    return time.monotonic() - started


def outcome_of(response: httpx.Response) -> str:
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
        "application/problem+json"
    ):
        return f"{response.status_code} {response.json().get('code')}"
    return str(response.status_code)


def image(seed: int) -> bytes:
    """A PNG of its own per seed (tests.jobs.helpers.png repeats its colours every 256)."""
    return png(seed % 256, size=(64 + seed // 256 % 512, 48))


@dataclass(frozen=True)
class Answer:
    outcome: str  # "200", "503 service_unavailable", "no answer (ReadError)", ...
    body: dict[str, Any] | None = None
    headers: httpx.Headers | None = None

    @property
    def credits(self) -> int:
        """Credits this answer says it charged (0 for errors and cache hits)."""
        if self.outcome != "200" or self.body is None:
            return 0
        return int(self.body["usage"]["credits"] or 0)

    @property
    def cached(self) -> bool:
        return bool(self.body and self.body.get("cached"))


async def post_answer(
    client: httpx.AsyncClient,
    key: str,
    seed: int,
    *,
    context: str | None = None,
    image_url: str | None = None,
) -> Answer:
    """One POST /v1/alt-text (an upload of ``image(seed)``, or ``image_url``)."""
    headers = {"Authorization": f"Bearer {key}"}
    data = {"context": context} if context else {}
    try:
        if image_url is not None:
            response = await client.post(
                "/v1/alt-text", headers=headers, json={"image_url": image_url, **data}
            )
        else:
            response = await client.post(
                "/v1/alt-text",
                headers=headers,
                files={"image": (f"{seed}.png", image(seed))},
                data=data,
            )
    except httpx.HTTPError as exc:
        return Answer(f"no answer ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        body = None
    return Answer(outcome_of(response), body, response.headers)


async def post_alt_text(
    client: httpx.AsyncClient,
    key: str,
    seed: int,
    *,
    context: str | None = None,
    image_url: str | None = None,
) -> str:
    """:func:`post_answer`'s outcome only."""
    answer = await post_answer(client, key, seed, context=context, image_url=image_url)
    return answer.outcome


@dataclass
class Load:
    """Closed-loop clients: each sends its next request when the last one is answered."""

    client: httpx.AsyncClient
    key: str
    loops: int
    seeds: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    charged: int = 0  # credits the answers say they charged
    latencies: list[float] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.loops)]

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self.seeds += 1
            started = time.monotonic()
            answer = await post_answer(self.client, self.key, self.seeds)
            self.latencies.append(time.monotonic() - started)
            self.outcomes[answer.outcome] += 1
            self.charged += answer.credits
            if answer.outcome.startswith("no answer"):
                return  # the server is gone: this client stops with the request it lost

    def take(self) -> Counter[str]:
        """The outcomes so far, forgetting them (one phase's figures)."""
        taken, self.outcomes = self.outcomes, Counter()
        return taken

    async def stop(self) -> Counter[str]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.outcomes


def ok(outcomes: Counter[str]) -> int:
    return outcomes["200"]


def record(name: str, figures: dict[str, Any]) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    figures = {"scenario": name, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **figures}
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2, default=dict) + "\n")


def backend(database_url: str) -> str:
    return "postgres" if database_url.startswith("postgresql") else "sqlite"


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


# -- SIGKILL ---------------------------------------------------------------------------------


def hold_calls(fake: FakeOpenRouter) -> int:
    """Model calls of HOLD requests so far (each made after its credit was reserved)."""
    return sum(1 for r in fake.chat_requests if HOLD in json.dumps(r.json))


async def _kill_under_load(
    proc: Any,
    client: httpx.AsyncClient,
    key: str,
    fake: FakeOpenRouter,
    stall: tuple[Any, str],
    *,
    loops: int,
    held: int,
    stalled: int,
    load_s: float,
    traffic_through_kill: bool,
    seed_base: int,
) -> tuple[Counter[str], int]:
    """Load, then SIGKILL with requests in flight; (every outcome, ordinary requests cut)."""
    host, stall_url = stall
    holds_before = hold_calls(fake)
    stalls_before = len(host.requests_to("/stall.png"))
    load = Load(client, key, loops, seeds=seed_base)
    load.start()
    # Requests that will be in flight at the kill: in the model call with a credit reserved,
    # and still fetching their image (nothing reserved yet).
    in_model = [
        asyncio.create_task(post_alt_text(client, key, seed_base + 5000 + i, context=HOLD))
        for i in range(held)
    ]
    in_fetch = [
        asyncio.create_task(post_alt_text(client, key, 0, image_url=stall_url))
        for _ in range(stalled)
    ]
    await asyncio.sleep(load_s)
    if not traffic_through_kill:
        await load.stop()

    async def all_in_flight() -> bool:
        early = [t.result() for t in in_model + in_fetch if t.done()]
        assert not early, f"answered before the kill: {early}"
        return (
            hold_calls(fake) - holds_before >= held
            and len(host.requests_to("/stall.png")) - stalls_before >= stalled
        )

    await wait_until(all_in_flight, 30, "every held request in flight")
    if traffic_through_kill:
        await asyncio.sleep(random.uniform(0, 2 * FAST_S))  # anywhere in an ordinary call
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait, 10)
    cut = Counter(await asyncio.gather(*in_model, *in_fetch))
    ordinary = await load.stop()
    unanswered = sum(n for outcome, n in ordinary.items() if outcome.startswith("no answer"))
    return ordinary + cut, unanswered


async def _sigkill_scenario(
    database_url: str,
    fake: FakeOpenRouter,
    *,
    name: str,
    cycles: int,
    loops: int,
    held: int,
    stalled: int,
    load_s: float,
    traffic_through_kill: bool,
    ttl_s: float,
) -> None:
    credits = 10_000
    account_id, key = await new_account(database_url, credits, f"{name}@example.com")
    hold_marked(fake)
    env = service_env(
        database_url,
        fake,
        ALTTEXT_CACHE_TTL_S="0",  # every request is a model call and a charge
        ALTTEXT_ALLOW_PRIVATE_URLS="true",  # the stalling image host is on 127.0.0.1
        ALTTEXT_RESERVATION_TTL_S=str(ttl_s),
        ALTTEXT_RESERVATION_SWEEP_S="0.2",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    outcomes: Counter[str] = Counter()
    unanswered_fast = 0
    restarts: list[float] = []
    killed_at: float | None = None
    with running_image_host() as host:
        host.stall("/stall.png")
        for cycle in range(cycles):
            with service_process(env, port) as proc:
                if killed_at is not None:
                    restarts.append(time.monotonic() - killed_at)
                async with httpx.AsyncClient(base_url=base, timeout=90) as client:
                    seen, cut = await _kill_under_load(
                        proc,
                        client,
                        key,
                        fake,
                        (host, host.url("/stall.png")),
                        loops=loops,
                        held=held,
                        stalled=stalled,
                        load_s=load_s,
                        traffic_through_kill=traffic_through_kill,
                        seed_base=cycle * 10_000,
                    )
                killed_at = time.monotonic()
            outcomes += seen
            unanswered_fast += cut
        held_after_kills = (await money(database_url, account_id)).held
        with service_process(env, port):
            assert killed_at is not None
            restarted = time.monotonic()
            restarts.append(restarted - killed_at)

            async def settled() -> bool:
                return (await money(database_url, account_id)).held == 0

            release_s = await wait_until(settled, ttl_s + 30, "every dead reservation released")
            await asyncio.sleep(1.0)  # five more sweeps: nothing may be booked twice
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                after = await post_alt_text(client, key, 99_999)
                account = await client.get(
                    "/v1/account", headers={"Authorization": f"Bearer {key}"}
                )
            serving_s = time.monotonic() - restarted
    final = await money(database_url, account_id)
    answered_ok = ok(outcomes) + (after == "200")

    assert after == "200"
    assert final.held == 0
    assert final.ledger == final.balance == account.json()["credits_remaining"]
    spent = credits - final.balance
    assert spent == final.reservations["settled"]
    # Every request held in the model call at a kill had a credit reserved and got it back.
    assert final.reservations["released"] >= held * cycles
    assert not any(o.startswith("5") for o in outcomes), outcomes
    # Credits spent == answers received. The one exception: a request killed after its charge
    # committed but before its answer left the process (a window of a few milliseconds). Only
    # ordinary requests in flight at a kill can fall in it, so none when the traffic stopped
    # before the kill.
    charged_without_answer = spent - answered_ok
    assert charged_without_answer >= 0
    if traffic_through_kill:
        assert charged_without_answer <= unanswered_fast
    else:
        assert charged_without_answer == 0
    record(
        f"{name}_{backend(database_url)}",
        {
            "database": backend(database_url),
            "kill_cycles": cycles,
            "concurrent_clients": loops + held + stalled,
            "requests": sum(outcomes.values()) + 1,
            "outcomes": dict(outcomes),
            "in_flight_at_kills": {
                "in_model_call_with_reservation": held * cycles,
                "fetching_image_no_reservation": stalled * cycles,
                "ordinary_cut_by_kill": unanswered_fast,
            },
            "held_after_kills": held_after_kills,
            "credits_spent": spent,
            "answers_received": answered_ok,
            "charged_without_answer": charged_without_answer,
            "reservations": dict(final.reservations),
            "ledger_sum": final.ledger,
            "balance": final.balance,
            "kill_to_healthy_again_s": [round(r, 2) for r in restarts],
            "reservation_ttl_s": ttl_s,
            "restart_to_all_released_s": round(release_s, 2),
            "restart_to_serving_and_settled_s": round(serving_s, 2),
        },
    )


async def test_sigkill_under_load_then_restart_books_every_credit_once(
    database_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    """Short: ordinary traffic answered, then a kill with 6 requests in the model call and 2
    fetching their image; after a restart and the reservation TTL every credit is booked once."""
    await _sigkill_scenario(
        database_url,
        fake_openrouter,
        name="sigkill_short",
        cycles=1,
        loops=4,
        held=6,
        stalled=2,
        load_s=1.5,
        traffic_through_kill=False,
        ttl_s=4.0,
    )


@pytest.mark.chaos
@pytest.mark.timeout(600)
async def test_chaos_repeated_sigkill_with_traffic_through_the_kill(
    database_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    """Long: three kill/restart cycles, each with 12 closed-loop clients still sending when
    the kill lands at a random point of their model calls, 10 requests in the model call and
    3 fetching their image."""
    await _sigkill_scenario(
        database_url,
        fake_openrouter,
        name="sigkill_repeated",
        cycles=3,
        loops=12,
        held=10,
        stalled=3,
        load_s=4.0,
        traffic_through_kill=True,
        ttl_s=10.0,
    )


# -- SIGTERM ---------------------------------------------------------------------------------


async def _in_flight_then_sigterm(
    database_url: str,
    fake: FakeOpenRouter,
    *,
    name: str,
    requests: int,
    model_s: float,
    grace_s: float,
    reservation_ttl_s: float = 600,
) -> dict[str, Any]:
    credits = 1000
    account_id, key = await new_account(database_url, credits, f"{name}@example.com")
    fake.respond_with(lambda _body, _model: Slow(model_s))
    env = service_env(
        database_url,
        fake,
        ALTTEXT_CACHE_TTL_S="0",
        ALTTEXT_SHUTDOWN_GRACE_S=str(grace_s),
        ALTTEXT_RESERVATION_TTL_S=str(reservation_ttl_s),
        ALTTEXT_RESERVATION_SWEEP_S="0.2",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = f"{name}_{backend(database_url)}"
    with service_process(env, port, log=log) as proc:
        async with httpx.AsyncClient(base_url=base, timeout=90) as client:
            flying = [
                asyncio.create_task(post_alt_text(client, key, seed)) for seed in range(requests)
            ]

            async def all_in_the_model_call() -> bool:
                return len(fake.chat_requests) >= requests

            # The fake's count, not the held reservations: on a loaded machine the requests can
            # reach the model further apart than a short reservation TTL, and the sweep would
            # release the first before the last was held.
            try:
                await wait_until(all_in_the_model_call, 30, "every request in the model call")
            except AssertionError as exc:
                early = [task.result() for task in flying if task.done()]
                reached = len(fake.chat_requests)
                raise AssertionError(
                    f"{exc}; {reached} reached the model, answered before it: {early}\n"
                    + logged(LOGS / f"{log}.log")
                ) from None
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # uvicorn checks for the signal every 0.1 s, then closes its listening socket.
            refused_s = await wait_until(
                lambda: asyncio.to_thread(connection_refused, port), 2, "listener closed"
            )
            late = await post_alt_text(client, key, 10_000)
            outcomes = Counter(await asyncio.gather(*flying))
            answered_s = time.monotonic() - signalled
        returncode = await asyncio.to_thread(proc.wait, grace_s + 30)
        exited_s = time.monotonic() - signalled
    settled = await money(database_url, account_id)
    return {
        "database": backend(database_url),
        "in_flight_at_sigterm": requests,
        "model_seconds": model_s,
        "shutdown_grace_s": grace_s,
        "outcomes": dict(outcomes),
        "request_after_sigterm": late,
        "listener_closed_after_s": round(refused_s, 2),
        "in_flight_answered_after_s": round(answered_s, 2),
        "exited_after_s": round(exited_s, 2),
        "returncode": returncode,
        "reservations": dict(settled.reservations),
        "ledger_sum": settled.ledger,
        "balance": settled.balance,
        "credits_spent": credits - settled.balance,
        "_account_id": account_id,
        "_env": env,
        "_port": port,
    }


def _public(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if not k.startswith("_")}


async def test_sigterm_lets_requests_in_flight_finish_and_refuses_new_ones(
    database_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    figures = await _in_flight_then_sigterm(
        database_url, fake_openrouter, name="sigterm", requests=6, model_s=2.0, grace_s=10
    )
    record(f"sigterm_in_flight_{figures['database']}", _public(figures))
    assert figures["outcomes"] == {"200": 6}
    assert figures["request_after_sigterm"].startswith("no answer (ConnectError")
    # uvicorn re-raises the signal once it has shut down gracefully: the process ends "killed
    # by SIGTERM" (-15 here, 143 in a shell), which is what supervisors expect of it.
    assert figures["returncode"] == -signal.SIGTERM
    assert figures["exited_after_s"] < 10
    assert figures["reservations"] == {"settled": 6}
    assert figures["ledger_sum"] == figures["balance"] == 1000 - 6


async def test_sigterm_past_the_grace_cancels_without_charging(
    database_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    """Requests still in the model call when ALTTEXT_SHUTDOWN_GRACE_S runs out are cancelled
    and nothing is charged: released at once, or by the next process's sweep once the
    reservation TTL has passed.

    A cancelled client gets a 503 problem with Retry-After (alttext.http.shutdown), and the
    shutdown waits for the cancelled requests to release their credits before it closes the
    database."""
    figures = await _in_flight_then_sigterm(
        database_url,
        fake_openrouter,
        name="sigterm_grace",
        requests=4,
        model_s=60,
        grace_s=1,
        reservation_ttl_s=15,  # longer than the test takes to send SIGTERM, plus the grace
    )
    assert set(figures["outcomes"]) == {"503 service_unavailable"}, figures
    assert figures["returncode"] == -signal.SIGTERM
    assert figures["exited_after_s"] < 15
    released_at_shutdown = figures["reservations"].get("released", 0)
    if figures["reservations"].get("held"):
        # Left held by a shutdown that did not wait for the cancelled requests to release
        # their credits: the next process releases them once they expire.
        with service_process(figures["_env"], figures["_port"]):

            async def released() -> bool:
                return (await money(database_url, figures["_account_id"])).held == 0

            await wait_until(released, 45, "released by the next process")
    final = await money(database_url, figures["_account_id"])
    record(
        f"sigterm_past_grace_{figures['database']}",
        {**_public(figures), "released_at_shutdown": released_at_shutdown},
    )
    assert final.reservations == Counter({"released": 4})
    assert final.ledger == final.balance == 1000
