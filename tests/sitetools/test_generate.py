"""Generation on the local engine (in-process) and on a running service over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from alttext.cli import app
from alttext.config import Settings
from alttext.sitetools.documents import decode, load
from alttext.sitetools.fixing import FixOptions, Summary, fix_document, write
from alttext.sitetools.generate import RemoteGenerator, open_generator
from tests.conftest import Account, Service
from tests.sitetools.helpers import assert_only_alt_changed


def local_settings(tmp: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp}/gen.db",
        provider="local",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )


async def test_local_engine_fixes_the_corpus_byte_preserving(site: Path, tmp_path: Path) -> None:
    names = ["valid.html", "tricky.md", "crlf-bom.html", "malformed.html"]
    before = {n: decode((site / n).read_bytes()) for n in names}
    summary = Summary()
    async with open_generator(local_settings(tmp_path), None, None) as generator:
        for n in names:
            result = await fix_document(load(site / n), generator, FixOptions(), summary)
            write(result)
    assert summary.fixed >= 5
    assert summary.credits == 0
    for n in names:
        assert_only_alt_changed(before[n], site / n)
    again = Summary()
    async with open_generator(local_settings(tmp_path), None, None) as generator:
        for n in names:
            assert not (await fix_document(load(site / n), generator, FixOptions(), again)).changed


async def test_remote_generator_against_the_service(
    site: Path, service: Service, account: Account
) -> None:
    generator = RemoteGenerator(service.client, account.key)
    summary = Summary()
    before = decode((site / "valid.html").read_bytes())
    result = await fix_document(load(site / "valid.html"), generator, FixOptions(), summary)
    write(result)
    assert summary.fixed == 3
    assert summary.credits == 3
    assert_only_alt_changed(before, site / "valid.html")
    bad = RemoteGenerator(service.client, "sk_wrong")
    summary = Summary()
    await fix_document(load(site / "valid.html"), bad, FixOptions(overwrite=False), summary)
    assert summary.fixed == 0  # every image now has an alt: nothing to ask


async def test_remote_errors_are_skips(site: Path, service: Service) -> None:
    summary = Summary()
    gen = RemoteGenerator(service.client, "sk_wrong")
    await fix_document(load(site / "valid.html"), gen, FixOptions(), summary)
    assert summary.fixed == 0
    assert all("HTTP 401" in s.reason for s in summary.skipped)
    unreachable = RemoteGenerator(httpx.AsyncClient(base_url="http://127.0.0.1:9"), "k")
    summary = Summary()
    await fix_document(load(site / "valid.html"), unreachable, FixOptions(), summary)
    assert len(summary.skipped) == 3


def test_cli_fix_dry_run_then_write(site: Path, tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setenv("ALTTEXT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    mp.setenv("ALTTEXT_PROVIDER", "local")
    mp.delenv("ALTTEXT_API_URL", raising=False)
    runner = CliRunner()
    target = site / "crlf-bom.html"
    raw = target.read_bytes()
    result = runner.invoke(app, ["fix", str(target)])
    assert result.exit_code == 0, result.output
    assert "+<img alt=" in result.stdout
    assert target.read_bytes() == raw
    assert "1 fixed, 0 skipped, 0 credits spent" in result.stderr
    result = runner.invoke(app, ["fix", "--write", str(target)])
    assert result.exit_code == 0
    assert target.read_bytes() != raw
    assert_only_alt_changed(decode(raw), target)
    result = runner.invoke(app, ["fix", str(target)])
    assert result.stdout == ""
    assert "0 fixed" in result.stderr
