"""The model server's connection pool: HTTP/2 where the server offers it (openrouter.ai does),
HTTP/1.1 keep-alive elsewhere (Ollama or vLLM over plain http)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from alttext.runtime import provider_client
from tests.conftest import make_settings
from tests.describe.providers.test_openrouter import CHAIN, make_request
from tests.fakes.openrouter import run_fake_openrouter
from tests.fakes.tls import tls_material


async def _three_calls(base_url: str, api_key: str, verify: object = True) -> None:
    client = provider_client(make_settings("sqlite+aiosqlite:///:memory:"), verify=verify)  # type: ignore[arg-type]
    async with client:
        config = ChatConfig(base_url=base_url, api_key=api_key, models=CHAIN, openrouter=True)
        provider = ChatCompletionsProvider(config, client)
        replies = await asyncio.gather(*(provider.complete(make_request()) for _ in range(3)))
    assert all(reply.content for reply in replies)


async def test_calls_go_over_http2_where_the_server_offers_it(tmp_path: Path) -> None:
    tls = tls_material(tmp_path, "localhost")
    with run_fake_openrouter(tls=tls) as fake:
        await _three_calls(fake.base_url, fake.api_key, tls.client)
        assert [r.http_version for r in fake.chat_requests] == ["2", "2", "2"]


async def test_plain_http_servers_get_http11() -> None:
    with run_fake_openrouter() as fake:
        await _three_calls(fake.base_url, fake.api_key)
        assert [r.http_version for r in fake.chat_requests] == ["1.1", "1.1", "1.1"]
