"""``alt_text.create`` and ``alt_text.batch`` of both clients against a running service."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.sdk.conftest import STARTING_CREDITS, Credentials, ImageHost, RunningService, photo

if TYPE_CHECKING:
    from alttext_client import AltText


def _client(service: RunningService, account: Credentials) -> AltText:
    from alttext_client import AltText

    return AltText(api_key=account.key, base_url=service.base_url)


def test_create_from_path_str_path_bytes_and_file(
    sdk_service: RunningService, account: Credentials, tmp_path: Path
) -> None:
    from alttext_client import AltTextResult

    image = tmp_path / "cat.jpg"
    image.write_bytes(photo(fmt="JPEG", seed=1))
    with _client(sdk_service, account) as client:
        results = [
            client.alt_text.create(str(image)),
            client.alt_text.create(image, context="A cat on our blog's about page"),
            client.alt_text.create(photo(seed=2)),
            client.alt_text.create(io.BytesIO(photo(seed=3))),
        ]
        with image.open("rb") as handle:
            results.append(client.alt_text.create(handle, max_length=80))
        for result in results:
            assert isinstance(result, AltTextResult)
            assert result.id.startswith("req_")
            assert result.usage.credits == 1
            assert result.image is not None
            assert result.image.width == 320
        assert results[0].image is not None
        assert results[0].image.format == "jpeg"
        assert results[2].image is not None
        assert results[2].image.format == "png"
        assert results[-1].credits_remaining == STARTING_CREDITS - 5
        assert client.account.get().credits_remaining == STARTING_CREDITS - 5


def test_create_from_url_with_options(
    sdk_service: RunningService, account: Credentials, image_host: ImageHost
) -> None:
    with _client(sdk_service, account) as client:
        result = client.alt_text.create(
            f"{image_host.base_url}/cat.png",
            language=["en", "de"],
            keywords=["cat"],
            role="informative",
            max_length=100,
        )
        assert set(result.alt_texts) == {"en", "de"}
        assert result.image is not None
        assert result.image.format == "png"
        assert "/cat.png" in image_host.hits
        # The same through the explicit keyword.
        again = client.alt_text.create(image_url=f"{image_host.base_url}/cat.png")
        assert again.language == "en"


def test_multipart_options_reach_the_service(
    sdk_service: RunningService, account: Credentials
) -> None:
    with _client(sdk_service, account) as client:
        result = client.alt_text.create(photo(seed=4), language=["fr"], role="decorative")
        assert result.decorative is True
        assert result.alt_text == ""
        assert set(result.alt_texts) == {"fr"}


def test_batch_mixes_inputs_and_charges_only_successes(
    sdk_service: RunningService, account: Credentials, image_host: ImageHost, tmp_path: Path
) -> None:
    from alttext_client import Batch

    path = tmp_path / "a.png"
    path.write_bytes(photo(seed=5))
    with _client(sdk_service, account) as client:
        batch = client.alt_text.batch(
            [
                {"id": "file", "image": path},
                {"id": "bytes", "image": photo(seed=6), "language": "de"},
                {"id": "url", "image_url": f"{image_host.base_url}/cat.png"},
                {"id": "missing", "image": f"{image_host.base_url}/nope.png"},
            ],
            defaults={"max_length": 90},
        )
        assert isinstance(batch, Batch)
        assert [item.id for item in batch.data] == ["file", "bytes", "url", "missing"]
        assert (batch.succeeded, batch.failed, batch.credits_used) == (3, 1, 1 * 3)
        assert batch["bytes"].result is not None
        assert batch["bytes"].result.language == "de"
        failed = batch["missing"]
        assert not failed.ok
        assert failed.error is not None
        assert failed.error.code == "image_fetch_failed"
        assert batch.credits_remaining == STARTING_CREDITS - 3
        # Plain images get their index as id.
        plain = client.alt_text.batch([photo(seed=8), photo(seed=9)])
        assert [item.id for item in plain.data] == ["0", "1"]


def test_batch_is_checked_before_sending(sdk_service: RunningService, account: Credentials) -> None:
    with _client(sdk_service, account) as client:
        with pytest.raises(ValueError, match="1 to 50"):
            client.alt_text.batch([photo()] * 51)
        with pytest.raises(ValueError, match="no image"):
            client.alt_text.batch([{"id": "x"}])
    with _client(sdk_service, account) as client:
        assert client.account.get().credits_remaining == STARTING_CREDITS


def test_models_list(sdk_service: RunningService, account: Credentials) -> None:
    with _client(sdk_service, account) as client:
        models = client.models.list()
    assert models.data
    assert all(m.credits_per_image >= 1 for m in models.data)
    assert sum(m.default for m in models.data) == 1


async def test_async_client_create_batch_and_models(
    sdk_service: RunningService, account: Credentials, image_host: ImageHost
) -> None:
    from alttext_client import AsyncAltText

    async with AsyncAltText(api_key=account.key, base_url=sdk_service.base_url) as client:
        single = await client.alt_text.create(photo(seed=10), context="Product photo")
        assert single.usage.credits == 1
        from_url = await client.alt_text.create(f"{image_host.base_url}/cat.png")
        assert from_url.image is not None
        batch = await client.alt_text.batch(
            [{"id": "a", "image": photo(seed=11)}, {"id": "b", "image": b"not an image"}]
        )
        assert (batch.succeeded, batch.failed) == (1, 1)
        assert batch["b"].error is not None
        assert batch["b"].error.code == "unsupported_media_type"
        models = await client.models.list()
        assert models.data
        account_now = await client.account.get()
        assert account_now.credits_remaining == STARTING_CREDITS - 3
