"""The alttext command line, run in-process with Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from alttext.accounts import keys
from alttext.cli import app

runner = CliRunner()


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", database_url)
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    monkeypatch.setenv("ALTTEXT_PROVIDER", "local")
    monkeypatch.setenv("ALTTEXT_FREE_CREDITS", "25")
    return database_url


def test_accounts_keys_credits_and_usage(env: str) -> None:
    created = runner.invoke(app, ["accounts", "create", "cli@example.com", "--credits", "7"])
    assert created.exit_code == 0, created.output
    assert "7 credits" in created.output
    default = runner.invoke(app, ["accounts", "create", "free@example.com"])
    assert "25 credits" in default.output  # ALTTEXT_FREE_CREDITS when --credits is not given

    key = runner.invoke(app, ["keys", "create", "cli@example.com", "--name", "ci"])
    assert key.exit_code == 0
    secret = key.output.strip().splitlines()[-1]
    assert keys.is_well_formed(secret)

    granted = runner.invoke(
        app, ["credits", "grant", "cli@example.com", "5", "--reason", "goodwill"]
    )
    assert granted.exit_code == 0, granted.output
    assert "balance is now 12" in granted.output

    usage = runner.invoke(app, ["usage", "cli@example.com", "--json"])
    assert usage.exit_code == 0
    assert json.loads(usage.output) == []


@pytest.mark.parametrize(
    "args",
    [
        ["credits", "grant", "cli@example.com", "0", "--reason", "x"],
        ["credits", "grant", "cli@example.com", "100000000", "--reason", "x"],
        ["credits", "grant", "cli@example.com", "5", "--reason", "  "],
        ["credits", "grant", "nobody@example.com", "5", "--reason", "x"],
        ["accounts", "create", "not-an-email"],
        ["keys", "revoke", "key_doesnotexist"],
    ],
)
def test_bad_admin_input_fails_cleanly(env: str, args: list[str]) -> None:
    runner.invoke(app, ["accounts", "create", "cli@example.com", "--credits", "1"])
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def test_keys_revoke(env: str) -> None:
    runner.invoke(app, ["accounts", "create", "rev@example.com"])
    created = runner.invoke(app, ["keys", "create", "rev@example.com"])
    key_id = created.output.split()[1].rstrip(".")
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0
    assert key_id in revoked.output


def test_describe_files_folders_and_json(env: str, tmp_path: Path) -> None:
    image = Image.new("RGB", (700, 200), "white")
    ImageDraw.Draw(image).text(
        (30, 60), "Open Daily", fill="black", font=ImageFont.load_default(size=64)
    )
    folder = tmp_path / "imgs"
    folder.mkdir()
    image.save(folder / "sign.png")
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")

    ok = runner.invoke(app, ["describe", str(folder), "--json", "--role", "text"])
    assert ok.exit_code == 0, ok.output
    lines = [json.loads(line) for line in ok.output.strip().splitlines()]
    assert len(lines) == 1  # the .txt file is not an image
    assert "Open Daily" in lines[0]["alt_text"]

    bad = runner.invoke(app, ["describe", str(tmp_path / "broken.jpg"), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.output.strip().splitlines()[-1])["error"]["code"] == "invalid_image"

    wrong_role = runner.invoke(app, ["describe", str(folder), "--role", "banana"])
    assert wrong_role.exit_code != 0


def test_dev_key_is_stable_and_works(env: str) -> None:
    first = runner.invoke(app, ["dev-key"])
    second = runner.invoke(app, ["dev-key"])
    assert first.exit_code == 0, first.output
    k1 = first.output.strip().splitlines()
    k2 = second.output.strip().splitlines()
    secret = next(line for line in k1 if line.startswith("at_live_"))
    assert secret in k2
    assert keys.is_well_formed(secret)
