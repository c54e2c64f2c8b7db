"""Schemathesis runs every check against /openapi.json and a real server: no failure.

A real uvicorn process (offline engine, its own SQLite database, a fake Stripe) is tested
through HTTP with a valid key, in every phase (schema examples, coverage of each constraint,
fuzzing, stateful sequences over the links between operations) and with every check: no 5xx,
every status, content type, header and body as documented, schema-valid requests accepted and
schema-invalid ones refused, a missing required header refused, undocumented methods answered
405 with a truthful ``Allow``, authentication enforced, a created resource readable.

The schema states every constraint the code checks on a request's shape. What no schema can
state is listed in STATE_REFUSALS: a schema-valid request the service may still refuse because
of its state (a token that was never issued, the 51st key), of a rule across fields (``from``
after ``to``) or of an image's content. Nothing else is excused.

``ALTTEXT_FUZZ_EXAMPLES`` (default 10) sets the generated cases per operation and phase; a
bigger run: ``ALTTEXT_FUZZ_EXAMPLES=200 pytest tests/api/test_fuzz_openapi.py``.
``ALTTEXT_FUZZ_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.db import create_engine, session_factory, transaction
from alttext.migrate import upgrade
from tests.fakes.stripe import run_fake_stripe
from tests.processes import free_port, service_process

EXAMPLES = int(os.environ.get("ALTTEXT_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("ALTTEXT_FUZZ_SEED", "20261130"))
# Erasing or restricting the fuzzing account would end the run early; their own tests cover
# those endpoints' bad input.
SKIP = ("erase_account", "restrict_processing")

Problem = dict[str, Any]


def _fields(problem: Problem) -> set[str | None]:
    return {error.get("field") for error in problem.get("errors") or []}


def _language_listed_twice(problem: Problem) -> bool:
    # ["en", "EN"] or ["en", " en"]: different strings (uniqueItems holds), one language.
    errors = problem.get("errors") or []
    return bool(errors) and all("is listed twice" in str(e.get("message")) for e in errors)


def _unusable_link(problem: Problem) -> bool:
    return str(problem["detail"]).startswith("This link is invalid, was used already")


# The image's bytes (what they decode to, whether a URL serves one): no schema can say.
IMAGE_CONTENT = {"invalid_image", "image_fetch_failed", "unsupported_media_type", "image_too_large"}

# operationId -> the refusals of schema-valid requests that depend on state, on other fields
# or on an image's content (see the module docstring). Matched on the problem document.
STATE_REFUSALS: dict[str, Callable[[Problem], bool]] = {
    # The image's content; a model this deployment does not offer (GET /v1/models).
    "create_alt_text": lambda p: (
        p["code"] in IMAGE_CONTENT or _fields(p) == {"model"} or _language_listed_twice(p)
    ),
    # Item ids unique within the batch (the schema can say items are unique, not their ids).
    "create_batch": lambda p: (
        p["detail"] == "Item ids must be unique within a batch." or _language_listed_twice(p)
    ),
    "create_job": _language_listed_twice,
    # Tokens that were never mailed.
    "verify_signup": _unusable_link,
    "confirm_email_change": _unusable_link,
    # A signature by a secret the client does not have.
    "receive_stripe_event": lambda p: p["title"] == "Invalid webhook signature",
    # `from` after `to`, or more than 731 days apart.
    "get_usage": lambda p: (
        p["detail"] in ("'from' must not be after 'to'.", "Ask for at most 731 days at once.")
    ),
    # An item id of another job (or of none) as the cursor.
    "job_results": lambda p: _fields(p) == {"starting_after"},
    # At most 50 active keys; never the last one without allow_last.
    "create_key": lambda p: str(p["detail"]).startswith("An account can hold at most"),
    "revoke_key": lambda p: _fields(p) == {"allow_last"},
}


@dataclass
class Run:
    failures: list[str]
    excused: Counter[str]
    statuses: Counter[int]
    tested: set[str]
    operations: set[str]


def _excused(failure: Any, case: Any, response: Any, excused: Counter[str]) -> bool:
    operation_id = case.operation.definition.raw.get("operationId")
    kind = type(failure).__name__
    if kind == "RejectedPositiveData" and operation_id in STATE_REFUSALS:
        try:
            problem = json.loads(response.content)
        except ValueError:
            return False
        if isinstance(problem, dict) and STATE_REFUSALS[operation_id](problem):
            excused[f"{operation_id} {response.status_code} {problem.get('code')}"] += 1
            return True
    if kind == "UseAfterFree" and "DELETE /v1/jobs/" in failure.message:
        # DELETE /v1/jobs/{id} cancels (API.md): the job stays readable, with its results.
        excused["cancel_job then read"] += 1
        return True
    return False


def _fuzz(base: str, secret: str, key_id: str) -> Run:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "cache": {"enabled": False},  # nothing written into the working directory
            "headers": {"Authorization": f"Bearer {secret}"},
            "workers": 1,  # hypothesis' lambda reprs are not thread-safe (AST recursion errors)
            "request-timeout": 30,
            "checks": {"enabled": True},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "operations": [{"include-operation-id": list(SKIP), "enabled": False}],
        }
    )
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)
    run = Run(failures=[], excused=Counter(), statuses=Counter(), tested=set(), operations=set())
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") not in SKIP:
            run.operations.add(operation.label)
    addresses = itertools.count(1)

    @schema.hook
    def filter_case(context: Any, case: Any) -> bool:
        # Revoking the run's own key would leave every later request a 401.
        return (case.path_parameters or {}).get("key_id") != key_id

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        # Each case from its own client address (uvicorn trusts X-Forwarded-For from
        # 127.0.0.1): the checks that send wrong keys on purpose would otherwise spend the
        # failed-authentication budget of 127.0.0.1 (http/deps.py) and every later request
        # would be a 429.
        n = next(addresses)
        address = f"198.18.{n // 250 % 250}.{n % 250 + 1}"
        case.headers = {**(case.headers or {}), "X-Forwarded-For": address}
        return case

    @schema.hook
    def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
        return not _excused(failure, case, response, run.excused)

    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, interaction in recorder.interactions.items():
                if interaction.response is not None:
                    run.statuses[interaction.response.status_code] += 1
                    run.tested.add(recorder.cases[case_id].value.operation.label)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        interaction = recorder.interactions.get(case_id)
                        response = interaction.response if interaction else None
                        sent = interaction.request if interaction else None
                        run.failures.append(
                            f"{check.name}: {failure.operation} "
                            f"({sent.method if sent else '?'} {sent.uri if sent else '?'} -> "
                            f"{response.status_code if response else '?'}): "
                            f"{failure.title}: {failure.message[:300]}"
                        )
        elif isinstance(event, events.NonFatalError):
            run.failures.append(f"engine error at {event.label}: {event.info.message[:300]}")
        elif isinstance(event, events.FatalError):
            run.failures.append(f"fatal engine error: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.failures += [f"{f.title}: {f.message[:300]}" for f in event.failures]
    return run


# About 4 s per example (every operation, every phase) on top of ~40 s (server, coverage phase).
@pytest.mark.timeout(120 + 12 * EXAMPLES)
def test_every_check_passes_on_every_operation(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    upgrade(url)

    async def seed() -> tuple[str, str]:
        engine = create_engine(url)
        async with transaction(session_factory(engine)) as session:
            account = await create_account(session, "fuzz@example.com")
            await grant_starting_credits(session, account, 100_000)
            key, secret = await create_key(session, account.id)
        await engine.dispose()
        return secret, key.id

    secret, key_id = asyncio.run(seed())
    port = free_port()
    with run_fake_stripe() as stripe:
        env = {
            "ALTTEXT_ENV": "test",
            "ALTTEXT_DATABASE_URL": url,
            "ALTTEXT_PROVIDER": "local",
            "ALTTEXT_RATE_LIMIT_PER_MINUTE": "1000000",
            "ALTTEXT_LOG_LEVEL": "WARNING",
            "ALTTEXT_STRIPE_SECRET_KEY": stripe.api_key,
            "ALTTEXT_STRIPE_API_BASE": stripe.base_url,
            "ALTTEXT_STRIPE_WEBHOOK_SECRET": stripe.webhook_secret,
        }
        with service_process(env, port):
            run = _fuzz(f"http://127.0.0.1:{port}", secret, key_id)

    assert run.failures == [], "\n".join(sorted(set(run.failures)))
    # Every operation was reached, and past authentication and validation: creations, reads,
    # deletions, refusals of each kind; few 429s (the run is not throttled into meaning nothing).
    assert len(run.operations) == 27
    assert run.operations <= run.tested, sorted(run.operations - run.tested)
    assert {200, 201, 202, 204, 400, 401, 404, 405, 409, 422} <= set(run.statuses), run.statuses
    assert not [s for s in run.statuses if s >= 500], run.statuses
    assert run.statuses[429] < sum(run.statuses.values()) // 50, run.statuses
