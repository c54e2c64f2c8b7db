"""The command line's garbage-collector policy (cli/group.py): off while a quick command runs,
back on for any other command before its arguments are parsed, frozen at exit."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from alttext.cli import app
from alttext.cli.group import Group, quick

# The commands that may run with the collector off: one query or one small transaction each.
# Anything long-running or over unbounded data (serve, worker, mcp, describe, eval, audit, fix,
# accounts export/erase, purge) must stay off this list.
QUICK = {
    "accounts create",
    "accounts list",
    "keys create",
    "keys list",
    "keys revoke",
    "credits grant",
    "credits adjust",
    "credits balance",
    "db upgrade",
    "usage",
    "dev-key",
}


@pytest.fixture
def collector_off() -> Iterator[None]:
    """As ``alttext.cli.main`` starts a command-line process; restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


def _toy() -> tuple[typer.Typer, dict[str, bool]]:
    seen: dict[str, bool] = {}
    toy = typer.Typer(cls=Group)
    sub = typer.Typer(cls=Group)
    toy.add_typer(sub, name="sub")

    @toy.command("short")
    @quick
    def short() -> None:
        seen["short"] = gc.isenabled()

    @toy.command("long")
    def long() -> None:
        seen["long"] = gc.isenabled()

    @sub.command("short")
    @quick
    def sub_short() -> None:
        seen["sub short"] = gc.isenabled()

    @sub.command("long")
    def sub_long() -> None:
        seen["sub long"] = gc.isenabled()

    return toy, seen


@pytest.mark.usefixtures("collector_off")
@pytest.mark.parametrize(
    ("args", "collecting"),
    [
        (["short"], False),
        (["long"], True),
        (["sub", "short"], False),
        (["sub", "long"], True),
    ],
)
def test_quick_commands_run_without_the_collector_and_others_with_it(
    args: list[str], collecting: bool
) -> None:
    toy, seen = _toy()
    result = CliRunner().invoke(toy, args)
    assert result.exit_code == 0, result.output
    assert seen == {" ".join(args): collecting}


def test_only_short_bounded_commands_are_quick() -> None:
    def walk(group: typer.Typer, prefix: str) -> Iterator[tuple[str, bool]]:
        command = typer.main.get_command(group)
        assert isinstance(command, TyperGroup)
        for name, sub in command.commands.items():
            path = f"{prefix}{name}"
            if isinstance(sub, TyperGroup):
                for sub_name, sub_command in sub.commands.items():
                    yield (
                        f"{path} {sub_name}",
                        bool(getattr(sub_command.callback, "_alttext_quick", False)),
                    )
            else:
                yield path, bool(getattr(sub.callback, "_alttext_quick", False))

    commands = dict(walk(app, ""))
    assert {"serve", "worker", "mcp", "describe", "audit", "fix", "purge"} <= commands.keys()
    assert {"accounts export", "accounts erase"} <= commands.keys()
    assert {name for name, is_quick in commands.items() if is_quick} == QUICK


def test_main_freezes_the_heap_before_the_interpreter_shuts_down() -> None:
    # atexit handlers run after main() has returned (or raised SystemExit), before shutdown's
    # collections: the heap must be frozen by then so they skip it.
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, gc.isenabled()))\n"
        "sys.argv = ['alttext', '--help']\n"
        "from alttext.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    # --help chooses no command: the collector stayed off from main()'s start.
    assert run.stdout.strip().splitlines()[-1] == "frozen True False"
