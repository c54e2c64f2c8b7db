"""Schemathesis drives every operation of /openapi.json against a real server: never a 500.

A real uvicorn process (offline engine, its own SQLite database) is fuzzed through HTTP with a
valid key, so authentication passes and the generated bodies reach the handlers.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.db import create_engine, session_factory, transaction
from alttext.migrate import upgrade
from tests.processes import free_port, service_process

# Erasing or restricting the fuzzing account would end the run early; their own tests cover
# those endpoints' bad input.
SKIP = {("DELETE", "/v1/account"), ("POST", "/v1/account/restrict")}
EXAMPLES = int(os.environ.get("ALTTEXT_FUZZ_EXAMPLES", "25"))


def test_no_operation_answers_500(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    upgrade(url)

    async def seed() -> str:
        engine = create_engine(url)
        async with transaction(session_factory(engine)) as session:
            account = await create_account(session, "fuzz@example.com")
            await grant_starting_credits(session, account, 100_000)
            _, secret = await create_key(session, account.id)
        await engine.dispose()
        return secret

    secret = asyncio.run(seed())
    port = free_port()
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": url,
        "ALTTEXT_PROVIDER": "local",
        "ALTTEXT_RATE_LIMIT_PER_MINUTE": "1000000",
        "ALTTEXT_LOG_LEVEL": "WARNING",
    }
    failures: list[str] = []
    statuses: dict[int, int] = {}
    with service_process(env, port):
        base = f"http://127.0.0.1:{port}"
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        headers = {"Authorization": f"Bearer {secret}"}
        operations = [op.ok() for op in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:
            if (operation.method.upper(), operation.path) in SKIP:
                continue

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(), authed=st.booleans())
            def run(case: schemathesis.Case, authed: bool) -> None:
                response = case.call(base_url=base, headers=headers if authed else {}, timeout=30)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500 and response.status_code != 503:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:200]}"
                    )

            run()
    assert failures == []
    # The run reached the handlers, not only the authentication and validation layers.
    assert sum(statuses.values()) >= 10 * len(operations)
    assert {200, 401, 422} <= set(statuses), statuses
