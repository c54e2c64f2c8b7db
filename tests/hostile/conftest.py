"""Fixtures of the hostile-input tests: no external program may ever be started."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

SPAWNERS = ("posix_spawn", "posix_spawnp", "system", "fork", "forkpty", "execv", "execve")


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every way Python starts another program fails for the test's duration, and is recorded
    (so an attempt that the code under test swallows is still seen). Pillow's EPS reader, for
    one, runs Ghostscript through ``subprocess``."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args[:2]!r}")
            raise PermissionError(f"{name} is not allowed while hostile input is processed")

        return refused

    class RefusedPopen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            refuse("subprocess.Popen")(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RefusedPopen)
    for name in SPAWNERS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    yield attempts
    assert attempts == [], f"an external program was started: {attempts}"
