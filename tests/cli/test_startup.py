"""``alttext --help`` and commands that need no model load no heavy module (docs/cli.md).

A behaviour test, not a timing one (``make bench`` times them: bench/bench_cli.py):
``python -X importtime`` lists every module a run imports. Help may load none of the database,
settings, web, image or model stacks; the database commands load the settings, SQLAlchemy and
the models (writes also the key cache), but no web app, queue, payment, image or model module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alttext.cli import app

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "PIL",
    "numpy",
    "onnxruntime",
    "rapidocr",
    "httpx",
    "aiohttp",
    "mcp",
    "pydantic",
    "pydantic_settings",
    "rich.markdown",
    "pygments",
    "alttext.describe",
    "alttext.db",
    "alttext.process",
)


# What the database commands that need no model must not load: the process (alttext.process),
# the web app, the queue, Stripe, the metrics, the image and model stacks, Typer's Rich help.
HEAVY_FOR_DATABASE = (
    "fastapi",
    "starlette",
    "taskiq",
    "stripe",
    "prometheus_client",
    "PIL",
    "numpy",
    "onnxruntime",
    "rapidocr",
    "httpx",
    "aiohttp",
    "redis",
    "mcp",
    "rich.markdown",
    "pygments",
    "alttext.process",
    "alttext.app",
    "alttext.runtime",
    "alttext.queue",
)
EMAIL = "startup@example.com"


def run_importtime(*args: str, cwd: Path | None = None) -> tuple[set[str], str]:
    """Run ``python -X importtime *args`` in a fresh interpreter: the modules it imported and
    its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return modules, run.stdout


def imported(*args: str) -> set[str]:
    """Modules a fresh interpreter imports while running ``python -X importtime *args``."""
    return run_importtime(*args)[0]


def heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in names))


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["describe", "--help"],
        ["keys", "--help"],
        ["credits", "adjust", "--help"],
        ["accounts", "list", "--help"],
        ["mcp", "--help"],
        ["fix", "--help"],
    ],
)
def test_help_imports_no_heavy_module(command: list[str]) -> None:
    modules = imported("-m", "alttext", *command)
    assert {"typer", "alttext.cli"} <= modules  # the listing was read
    assert heavy(modules) == []


def test_the_check_sees_a_heavy_import() -> None:
    modules = imported("-c", "import alttext.db")
    assert "sqlalchemy" in heavy(modules)


@pytest.fixture
def account_db(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated database with one account and key, named by the environment the commands
    inherit; the folder to run them in (no .env)."""
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", database_url)
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    monkeypatch.delenv("ALTTEXT_REDIS_URL", raising=False)  # Redis's own test: key_cache tests
    runner = CliRunner()
    for args in (["accounts", "create", EMAIL, "--credits", "3"], ["keys", "create", EMAIL]):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
    return tmp_path


# Writes add the key cache; without ALTTEXT_REDIS_URL it has no Redis client to import.
READ = ({"sqlalchemy", "alttext.db", "alttext.config"}, HEAVY_FOR_DATABASE)
WRITE = ({"sqlalchemy", "alttext.db", "alttext.accounts.key_cache"}, HEAVY_FOR_DATABASE)


@pytest.mark.parametrize(
    ("command", "shows", "kind"),
    [
        (["keys", "list", EMAIL], "active", READ),
        (["keys", "list", EMAIL, "--json"], '"prefix"', READ),
        (["accounts", "list"], EMAIL, READ),
        (["credits", "balance", EMAIL], "3 credits", READ),
        (["credits", "balance", EMAIL, "--json"], '"credits": 3', READ),
        (["usage", EMAIL, "--json"], "[]", READ),
        (["keys", "create", EMAIL, "--name", "second"], "Created key_", WRITE),
        (["credits", "grant", EMAIL, "2", "--reason", "startup"], "balance is now 5", WRITE),
        (["credits", "adjust", EMAIL, "-1", "--reason", "startup"], "balance is now 2", WRITE),
        (["accounts", "create", "other@example.com"], "other@example.com", WRITE),
        (["accounts", "export", EMAIL], '"email"', WRITE),
        # Their own transactions, on the database and key cache alone: no process, no result
        # cache, and no Stripe SDK for an account that never bought.
        (["purge"], "usage events rolled up: 0", WRITE),
        (["accounts", "erase", EMAIL, "--yes"], '"erased": true', WRITE),
    ],
)
def test_database_commands_load_no_process(
    account_db: Path,
    command: list[str],
    shows: str,
    kind: tuple[set[str], tuple[str, ...]],
) -> None:
    """Reads load the database alone; writes also the key cache; neither the process."""
    loads, too_heavy = kind
    modules, stdout = run_importtime("-m", "alttext", *command, cwd=account_db)
    assert shows in stdout  # the command ran and answered
    assert loads <= modules
    assert heavy(modules, too_heavy) == []


# An audit of local files (a pre-commit hook) needs no settings, database, event loop, HTTP
# client or Rich console: it reads, scans and prints. (Pydantic it cannot avoid: Typer coerces
# every command's arguments with it.)
HEAVY_FOR_AUDIT = (
    *(name for name in HEAVY if name != "pydantic"),
    "asyncio",
    "rich",
    "alttext.config",
)
LIGHT_FOR_AUDIT = {
    "alttext.describe",
    "alttext.describe.languages",
    "alttext.describe.types",
    "alttext.describe.errors",
}


def test_an_audit_of_files_loads_no_settings_loop_or_client(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text('<html lang="en"><body><img src="a.png"></body></html>')
    modules, stdout = run_importtime(
        "-m", "alttext", "audit", "page.html", "--fail-on", "never", cwd=tmp_path
    )
    assert "page.html:1:" in stdout  # the finding was printed
    too_heavy = [
        m
        for m in heavy(modules, HEAVY_FOR_AUDIT)
        if m not in LIGHT_FOR_AUDIT and not m.startswith("alttext.describe.rules")
    ]
    assert too_heavy == []


def test_the_database_check_sees_the_process() -> None:
    modules = imported("-c", "import alttext.process")
    assert {"alttext.process", "taskiq"} <= set(heavy(modules, HEAVY_FOR_DATABASE))
