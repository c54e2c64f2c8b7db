"""The model server's connection pool: HTTP/1.1 keep-alive over aiohttp, to OpenRouter over TLS
as to Ollama or vLLM over plain http, with no cookie kept and no proxy read from the
environment (docs/decisions.md has why not HTTP/2)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from alttext.describe.errors import UpstreamUnavailable
from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from alttext.runtime import provider_client
from tests.conftest import make_settings
from tests.describe.providers.test_openrouter import CHAIN, make_request
from tests.fakes.openrouter import run_fake_openrouter
from tests.fakes.tls import tls_material

SETTINGS = make_settings("sqlite+aiosqlite:///:memory:")


async def _calls(base_url: str, api_key: str, verify: object = True, n: int = 3) -> None:
    client = provider_client(SETTINGS, verify=verify)  # type: ignore[arg-type]
    async with client:
        config = ChatConfig(base_url=base_url, api_key=api_key, models=CHAIN, openrouter=True)
        provider = ChatCompletionsProvider(config, client)
        for _ in range(2):  # the second round goes over the connections the first opened
            replies = await asyncio.gather(*(provider.complete(make_request()) for _ in range(n)))
            assert all(reply.content for reply in replies)


async def test_calls_over_tls_are_verified_against_the_given_ca(tmp_path: Path) -> None:
    tls = tls_material(tmp_path, "localhost")
    with run_fake_openrouter(tls=tls) as fake:
        await _calls(fake.base_url, fake.api_key, tls.client)
        assert [r.http_version for r in fake.chat_requests] == ["1.1"] * 6


async def test_a_server_whose_certificate_is_not_trusted_is_not_reached(tmp_path: Path) -> None:
    tls = tls_material(tmp_path, "localhost")
    with run_fake_openrouter(tls=tls) as fake:
        with pytest.raises(UpstreamUnavailable, match="could not be reached"):
            await _calls(fake.base_url, fake.api_key, True, n=1)
        assert fake.chat_requests == []


async def test_plain_http_servers_keep_connections_alive() -> None:
    with run_fake_openrouter() as fake:
        await _calls(fake.base_url, fake.api_key)
        assert [r.http_version for r in fake.chat_requests] == ["1.1"] * 6
        # Six calls, three at a time: no more connections than calls at once.
        assert len({r.peer for r in fake.chat_requests}) <= 3
