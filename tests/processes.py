"""Running the real service as a separate OS process (crash and multi-process tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service_process(
    env: dict[str, str], port: int, *, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``alttext serve`` on ``port``; its log goes to ``log`` when given (read on failure)."""
    with _log_file(log) as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alttext", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the service exited during start-up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def _log_file(log: Path | None) -> Iterator[int | IO[bytes]]:
    if log is None:
        yield subprocess.DEVNULL
        return
    with log.open("ab") as handle:
        yield handle  # the child holds its own descriptor once started


def logged(*logs: Path) -> str:
    """What the processes logged (the end of each log), for an assertion's message."""
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}" for log in logs if log.exists()
    )
