"""``alttext describe --api-url/--api-key`` (and ALTTEXT_API_URL/ALTTEXT_API_KEY) against a real
``alttext serve`` process: the images go to the service, which charges the account, and the
output has the same shape as on the local engine."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from alttext.cli import app
from tests.sdk.conftest import ImageHost, RunningService, image_host, photo, sdk_service

__all__ = ["image_host", "sdk_service"]  # the fixtures, shared with the SDK tests
runner = CliRunner()


def balance(service: RunningService, key: str) -> int:
    answer = httpx.get(
        f"{service.base_url}/v1/account", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["credits_remaining"])


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "one.png").write_bytes(photo(seed=1))
    (folder / "two.jpg").write_bytes(photo(fmt="JPEG", seed=2))
    return folder


def test_describe_on_a_running_service(
    sdk_service: RunningService, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALTTEXT_API_URL", raising=False)
    monkeypatch.delenv("ALTTEXT_API_KEY", raising=False)
    account = sdk_service.new_account()
    before = balance(sdk_service, account.key)
    result = runner.invoke(
        app,
        [
            "describe", "--json", "--language", "en,de", "--max-length", "80",
            "--api-url", sdk_service.base_url, "--api-key", account.key, str(images),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["input"]).name for r in rows] == ["one.png", "two.jpg"]
    for row in rows:
        assert "error" not in row, row
        assert row["alt_text"]
        assert len(row["alt_text"]) <= 80
        assert set(row["alt_texts"]) == {"en", "de"}
        assert row["credits"] == 1
        assert row["role"]
        assert row["model"]
    assert f"on the service at {sdk_service.base_url}" in result.stderr
    assert balance(sdk_service, account.key) == before - 2  # the service did the work


def test_describe_reads_the_service_from_the_environment(
    sdk_service: RunningService,
    images: Path,
    image_host: ImageHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = sdk_service.new_account()
    monkeypatch.setenv("ALTTEXT_API_URL", sdk_service.base_url)
    monkeypatch.setenv("ALTTEXT_API_KEY", account.key)
    monkeypatch.setenv("ALTTEXT_ALLOW_PRIVATE_URLS", "true")  # the image host is on 127.0.0.1
    before = balance(sdk_service, account.key)
    url = f"{image_host.base_url}/cat.png"
    result = runner.invoke(app, ["describe", str(images / "one.png"), url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{images / 'one.png'}\t")
    assert lines[1].startswith(f"{url}\t")
    assert balance(sdk_service, account.key) == before - 2


def test_describe_remote_failures(
    sdk_service: RunningService, images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALTTEXT_API_KEY", raising=False)
    target = str(images / "one.png")
    wrong = runner.invoke(
        app,
        ["describe", "--json", "--api-url", sdk_service.base_url, "--api-key", "at_live_x", target],
    )
    assert wrong.exit_code == 1
    [row] = [json.loads(line) for line in wrong.stdout.splitlines()]
    assert row["error"]["code"] == "unauthorized"
    assert row["error"]["detail"].startswith("HTTP 401")
    no_key = runner.invoke(app, ["describe", "--api-url", sdk_service.base_url, target])
    assert no_key.exit_code == 2
    assert "--api-key" in no_key.output
