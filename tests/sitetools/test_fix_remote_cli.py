"""``alttext fix --api-url … --api-key …`` end to end: the CLI against a real ``alttext serve``
process (the SDK tests' service), which describes and charges every image."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from alttext.cli import app
from alttext.sitetools.documents import decode, load
from tests.sdk.conftest import RunningService, sdk_service
from tests.sitetools.helpers import assert_only_alt_changed

__all__ = ["sdk_service"]  # the fixture, shared with the SDK tests
runner = CliRunner()


def credits_remaining(service: RunningService, key: str) -> int:
    answer = httpx.get(
        f"{service.base_url}/v1/account", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["credits_remaining"])


def test_fix_on_a_running_service(
    site: Path, sdk_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALTTEXT_API_URL", raising=False)
    monkeypatch.delenv("ALTTEXT_API_KEY", raising=False)
    account = sdk_service.new_account()
    before = credits_remaining(sdk_service, account.key)
    page = site / "valid.html"
    raw = page.read_bytes()
    remote = ["--api-url", sdk_service.base_url, "--api-key", account.key]

    dry = runner.invoke(app, ["fix", *remote, str(page)])
    assert dry.exit_code == 0, dry.output
    assert page.read_bytes() == raw
    added = [line for line in dry.stdout.splitlines() if line.startswith("+<")]
    assert len(added) == 3
    assert all(" alt=" in line for line in added)
    assert "3 fixed, 0 skipped, 3 credits spent (dry run" in dry.stderr

    written = runner.invoke(app, ["fix", "--write", *remote, str(page)])
    assert written.exit_code == 0, written.output
    assert "3 fixed, 0 skipped, 3 credits spent" in written.stderr
    assert_only_alt_changed(decode(raw), page)
    assert all(image.alt is not None for image in load(page).images)
    assert credits_remaining(sdk_service, account.key) == before - 6  # both runs were charged

    again = runner.invoke(app, ["fix", "--write", *remote, str(page)])
    assert "0 fixed, 0 skipped, 0 credits spent" in again.stderr
    assert credits_remaining(sdk_service, account.key) == before - 6


def test_fix_with_a_wrong_key_skips_every_image(
    site: Path, sdk_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTTEXT_API_URL", sdk_service.base_url)
    monkeypatch.setenv("ALTTEXT_API_KEY", "at_live_wrong")
    page = site / "valid.html"
    raw = page.read_bytes()
    result = runner.invoke(app, ["fix", "--write", str(page)])
    assert result.exit_code == 0, result.output
    assert page.read_bytes() == raw
    assert "0 fixed, 3 skipped" in result.stderr
    assert "HTTP 401" in result.stderr
