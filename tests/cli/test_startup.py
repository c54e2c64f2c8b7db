"""``alttext --help`` and commands that need no model load no heavy module (docs/cli.md).

A behaviour test, not a timing one: ``python -X importtime`` lists every module a run imports,
and none of the database, web, image or model stacks may be among them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "PIL",
    "numpy",
    "onnxruntime",
    "rapidocr",
    "httpx",
    "mcp",
    "pydantic_settings",
    "alttext.describe",
    "alttext.db",
    "alttext.process",
)


def imported(*args: str) -> set[str]:
    """Modules a fresh interpreter imports while running ``python -X importtime *args``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["describe", "--help"],
        ["keys", "--help"],
        ["credits", "adjust", "--help"],
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
