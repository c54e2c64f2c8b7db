"""The system under test: a temp SQLite database prepared with the CLI, the fake model in its own
process, and `alttext serve` processes (uvicorn) on free ports.

Settings come from the environment only: every ``ALTTEXT_*`` variable of the caller is dropped
and the processes run in the temp folder (no ``.env`` is read), so a developer's configuration
cannot leak into the numbers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FAKE_API_KEY = "sk-or-v1-fake-0123456789abcdef0123456789abcdef"  # tests/fakes/openrouter.py
MODELS = "google/gemini-2.5-flash-lite,qwen/qwen2.5-vl-72b-instruct"
ACCOUNT = "bench@bench.example"
CREDITS = 10_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (inherited by the servers we start)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def stop_on_eof(proc: subprocess.Popen[str]) -> None:
    """End a helper process that exits when its stdin closes; kill it after 10 s."""
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class FakeModel:
    proc: subprocess.Popen[str]
    base_url: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def set_delay(self, seconds: float) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"delay {seconds}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer.startswith("ok delay"):
            raise RuntimeError(f"the fake model did not take the delay: {answer!r}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    def __init__(self, workdir: Path, logs: Path) -> None:
        self.workdir = workdir
        self.logs = logs  # server and fake model logs (kept after the run, for errors)
        self.db_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        self.secret_key = secrets.token_urlsafe(48)
        self.api_key = ""
        self.setup_s: dict[str, float] = {}

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALTTEXT_")}
        env.update(
            {
                "ALTTEXT_ENV": "development",  # production also wants SMTP, Stripe, ...
                "ALTTEXT_SECRET_KEY": self.secret_key,
                "ALTTEXT_DATABASE_URL": self.db_url,
                "ALTTEXT_LOG_LEVEL": "INFO",
                "ALTTEXT_RATE_LIMIT_PER_MINUTE": "1000000",
                "ALTTEXT_MAX_CONCURRENT_PER_ACCOUNT": "10000",
            }
        )
        return env

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "alttext", *args],
            env=self.base_env(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"alttext {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        """Migrate the database and create the account and its key, through the CLI."""
        for name, args in [
            ("db upgrade", ("db", "upgrade")),
            ("accounts create", ("accounts", "create", ACCOUNT, "--credits", str(CREDITS))),
        ]:
            started = time.perf_counter()
            self.cli(*args)
            self.setup_s[name] = round(time.perf_counter() - started, 2)
        # The secret is printed alone on the last line.
        self.api_key = (
            self.cli("keys", "create", ACCOUNT, "--name", "bench").strip().splitlines()[-1]
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @contextlib.contextmanager
    def fake_model(self) -> Iterator[FakeModel]:
        with open(self.logs / "fake-model.log", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "fake_model.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=ROOT,
            )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("ready "):
                raise RuntimeError(f"the fake model did not start: {line!r}")
            yield FakeModel(proc, line.split()[1])
        finally:
            stop_on_eof(proc)

    @contextlib.contextmanager
    def servers(self, count: int, model: FakeModel) -> Iterator[list[Server]]:
        env = self.base_env()
        env.update(
            {
                "ALTTEXT_PROVIDER": "openrouter",
                "ALTTEXT_OPENROUTER_API_KEY": FAKE_API_KEY,
                "ALTTEXT_OPENROUTER_BASE_URL": model.base_url,
                "ALTTEXT_MODELS": MODELS,
            }
        )
        started: list[Server] = []
        try:
            for _ in range(count):
                port = free_port()
                log = self.logs / f"server-{port}.log"
                with open(log, "wb") as err:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "alttext", "serve", "--port", str(port)],
                        env=env,
                        cwd=self.workdir,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                started.append(Server(proc, port, log))
            for server in started:
                _wait_healthy(server)
            yield started
        finally:
            for server in started:
                if server.proc.poll() is None:
                    server.proc.terminate()
            for server in started:
                try:
                    server.proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    server.proc.kill()
                    server.proc.wait()


def _wait_healthy(server: Server, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"alttext serve exited during start-up:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"alttext serve did not start in {limit_s:.0f} s")
        time.sleep(0.2)
