"""The hostile corpus through the service: ``POST /v1/alt-text`` answers each sample 200 or
with the clean refusal (400 ``invalid_image``, 413 ``image_too_large``, 415
``unsupported_media_type``) as problem+json, never a 500, in bounded time and memory, charging
only what it answered, without starting another program.

Each sample goes in twice: uploaded in a multipart form (the image is prepared for the model),
and as base64 JSON with ``role: decorative`` (only its header is read).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import Account, ServiceFactory
from tests.hostile.bounds import measured
from tests.hostile.corpus import OK, SUPPORTED_CATEGORIES, Outcome, Sample
from tests.hostile.test_engine import CODES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
CREDITS = 10_000


def _expected(outcomes: frozenset[Outcome]) -> set[int]:
    return {200 if outcome == OK else int(outcome) for outcome in outcomes}


def _problems(sample: Sample, how: str, response: Any, allowed: set[int], usage: Any) -> list[str]:
    where = f"{sample.name} ({how})"
    status = response.status_code
    if status not in allowed:
        return [f"{where}: {status} {response.text[:200]}, expected one of {sorted(allowed)}"]
    problems = []
    if status == 200:
        body = response.json()
        if not isinstance(body["alt_text"], str) or body["usage"]["credits"] not in (0, 1):
            problems.append(f"{where}: {body}")
    else:
        problem = response.json()
        if response.headers["content-type"] != "application/problem+json":
            problems.append(f"{where}: {response.headers['content-type']}")
        if problem["code"] != CODES[status] or problem["status"] != status:
            problems.append(f"{where}: {status} with code {problem['code']}")
    if not usage.within_bounds():
        problems.append(f"{where}: {usage}")
    return problems


@pytest.mark.parametrize("category", list(SUPPORTED_CATEGORIES))
async def test_every_sample_is_answered_or_refused_cleanly(
    category: str, service_factory: ServiceFactory, no_subprocess: list[str]
) -> None:
    async with service_factory(rate_limit_per_minute=1_000_000) as service:
        account: Account = await service.create_account(credits=CREDITS)
        problems: list[str] = []
        answered = 0
        for sample in SUPPORTED_CATEGORIES[category]():
            with measured() as usage:
                response = await service.client.post(
                    "/v1/alt-text",
                    headers=account.headers,
                    files={"image": ("image.png", sample.data, "image/png")},
                    data={"context": "A hostile upload"},
                )
            problems += _problems(sample, "upload", response, _expected(sample.outcomes), usage)
            answered += response.status_code == 200
            with measured() as usage:
                response = await service.client.post(
                    "/v1/alt-text",
                    headers=account.headers,
                    json={
                        "image": base64.b64encode(sample.data).decode(),
                        "role": "decorative",
                    },
                )
            allowed = _expected(sample.header_outcomes)
            problems += _problems(sample, "decorative JSON", response, allowed, usage)
        assert problems == [], "\n".join(problems)
        shown = await service.client.get("/v1/account", headers=account.headers)
        # Refusals and decorative answers are free; each image described cost one credit (or
        # none, from the result cache).
        assert CREDITS - answered <= shown.json()["credits_remaining"] <= CREDITS
