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
    lines = [json.loads(line) for line in ok.stdout.strip().splitlines()]
    assert len(lines) == 1  # the .txt file is not an image
    assert "Open Daily" in lines[0]["alt_text"]
    # ...and is listed on stderr with why, followed by the summary.
    assert f"skipped {folder / 'notes.txt'}: not an image (.txt)" in ok.stderr
    assert "1 described (0 decorative), 0 failed, 1 skipped in " in ok.stderr

    bad = runner.invoke(app, ["describe", str(tmp_path / "broken.jpg"), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout.strip().splitlines()[-1])["error"]["code"] == "invalid_image"
    assert "0 described (0 decorative), 1 failed, 0 skipped" in bad.stderr

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


def test_describe_a_folder_shows_progress_summary_and_decorative(env: str, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / name)
    (folder / "report.pdf").write_bytes(b"%PDF-1.4")
    (folder / ".hidden.png").write_bytes(b"")  # hidden: neither described nor listed

    result = runner.invoke(app, ["describe", str(folder), "--role", "decorative"])
    assert result.exit_code == 0, result.output
    rows = result.stdout.strip().splitlines()
    assert rows == [
        f'{folder / "a.png"}\talt=""  (decorative)',
        f'{folder / "sub/b.png"}\talt=""  (decorative)',
    ]
    assert "Describing 2 images" in result.stderr
    assert f"skipped {folder / 'report.pdf'}: not an image (.pdf)" in result.stderr
    assert "2 described (2 decorative), 0 failed, 1 skipped in " in result.stderr
    assert ".hidden" not in result.output


@pytest.mark.parametrize("files", [[], ["notes.txt"]])
def test_describe_with_nothing_to_describe_says_so_and_exits_1(
    env: str, tmp_path: Path, files: list[str]
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("x")
    result = runner.invoke(app, ["describe", str(folder)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Nothing to describe: no images" in result.stderr
    if not files:
        assert f"{folder}: the folder is empty" in result.stderr


def test_lists_and_balance(env: str) -> None:
    assert "No accounts yet" in runner.invoke(app, ["accounts", "list"]).stderr
    runner.invoke(app, ["accounts", "create", "a@example.com", "--credits", "3"])
    runner.invoke(app, ["accounts", "create", "b@example.com", "--credits", "9"])
    listed = runner.invoke(app, ["accounts", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["email"], r["credits"]) for r in rows] == [
        ("a@example.com", 3),
        ("b@example.com", 9),
    ]
    assert "b@example.com\tactive\t9 credits" in runner.invoke(app, ["accounts", "list"]).stdout

    assert "has no API keys" in runner.invoke(app, ["keys", "list", "a@example.com"]).stderr
    created = runner.invoke(app, ["keys", "create", "a@example.com", "--name", "ci"])
    secret = created.stdout.strip().splitlines()[-1]
    key_id = created.stdout.split()[1].rstrip(".")
    runner.invoke(app, ["keys", "revoke", key_id])
    runner.invoke(app, ["keys", "create", "a@example.com"])
    keys_out = runner.invoke(app, ["keys", "list", "a@example.com"])
    assert keys_out.exit_code == 0, keys_out.output
    first, second = keys_out.stdout.strip().splitlines()
    assert first.startswith(key_id)
    assert "\tci\t" in first
    assert first.endswith("revoked")
    assert second.endswith("active")
    assert secret not in keys_out.stdout  # never the secret
    as_json = [
        json.loads(x)
        for x in runner.invoke(app, ["keys", "list", "a@example.com", "--json"]).stdout.splitlines()
    ]
    assert as_json[0]["id"] == key_id
    assert as_json[0]["revoked_at"] is not None

    balance = runner.invoke(app, ["credits", "balance", "b@example.com"])
    assert balance.stdout == "b@example.com\t9 credits\n"
    assert (
        json.loads(runner.invoke(app, ["credits", "balance", "b@example.com", "--json"]).stdout)[
            "credits"
        ]
        == 9
    )
    assert runner.invoke(app, ["credits", "balance", "nobody@example.com"]).exit_code == 1


def test_negative_adjustment_books_an_entry_and_never_goes_below_zero(env: str) -> None:
    runner.invoke(app, ["accounts", "create", "adj@example.com", "--credits", "10"])
    taken = runner.invoke(app, ["credits", "adjust", "adj@example.com", "-4", "--reason", "dup"])
    assert taken.exit_code == 0, taken.output
    assert "Adjusted by -4 credits (txn_" in taken.stdout
    assert "balance is now 6" in taken.stdout

    too_much = runner.invoke(app, ["credits", "adjust", "adj@example.com", "-7", "--reason", "x"])
    assert too_much.exit_code == 1
    assert "would take it below zero" in too_much.output
    assert "Traceback" not in too_much.output
    assert "6 credits" in runner.invoke(app, ["credits", "balance", "adj@example.com"]).stdout

    back = runner.invoke(app, ["credits", "adjust", "adj@example.com", "2", "--reason", "undo"])
    assert "balance is now 8" in back.stdout
    to_zero = runner.invoke(app, ["credits", "adjust", "adj@example.com", "-8", "--reason", "x"])
    assert to_zero.exit_code == 0, to_zero.output
    for bad in (["0", "--reason", "x"], ["-1", "--reason", " "], ["-1"]):
        assert runner.invoke(app, ["credits", "adjust", "adj@example.com", *bad]).exit_code != 0

    exported = json.loads(runner.invoke(app, ["accounts", "export", "adj@example.com"]).stdout)
    text = json.dumps(exported)
    assert text.count('"adjustment"') == 3


@pytest.mark.parametrize(
    "args",
    [["accounts", "list"], ["keys", "list", "a@example.com"], ["credits", "grant", "a@b.c", "1"]],
)
def test_a_missing_sqlite_database_is_named_with_the_fix(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "db.sqlite"
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    result = runner.invoke(app, [*args, "--reason", "x"] if args[0] == "credits" else args)
    assert result.exit_code == 1, result.output
    assert f"No database at {missing}" in result.output
    assert "alttext db upgrade" in result.output
    assert not missing.parent.exists()  # nothing was created on the way


def test_an_unreachable_database_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A port nothing listens on: the connection is refused at once.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", f"postgresql+asyncpg://u@127.0.0.1:{port}/db")
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    result = runner.invoke(app, ["accounts", "list"])
    assert result.exit_code == 1, result.output
    assert "Database unavailable:" in result.output
    assert "Traceback" not in result.output
