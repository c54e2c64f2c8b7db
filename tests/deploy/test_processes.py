"""The process model of the recipe, without a container engine: the entry point's `migrate`,
`api` and `worker` run the real `alttext` (the one beside this Python) as separate processes
on the machine's PostgreSQL and Redis, with production settings. The API answers /healthz and
/readyz (and the image's HEALTHCHECK command passes); a worker stays up and exits 0 on SIGTERM;
the API shuts down gracefully on it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from alttext.db import create_engine
from tests.conftest import PG_URL, REDIS_URL
from tests.deploy.recipe import ENTRYPOINT, dockerfile_stages, exec_form
from tests.processes import free_port

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(
        not (PG_URL and REDIS_URL),
        reason="needs ALTTEXT_TEST_DATABASE_URL and ALTTEXT_TEST_REDIS_URL",
    ),
]


async def _admin(statement: str) -> None:
    assert PG_URL is not None
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


@pytest.fixture
def database() -> Iterator[str]:
    """An empty database of its own: `migrate` has everything to do."""
    assert PG_URL is not None
    name = f"alttext_deploy_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def production_env(database_url: str, port: int) -> dict[str, str]:
    assert REDIS_URL is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTTEXT_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {
        **env,
        # The real alttext, found on PATH by the entry point as in the image.
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        "ALTTEXT_ENV": "production",
        "ALTTEXT_SECRET_KEY": "deploy-test-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_REDIS_URL": REDIS_URL,
        "ALTTEXT_SMTP_URL": "smtp://127.0.0.1:1",  # never reached: no mail is sent here
        "ALTTEXT_PUBLIC_URL": "https://alttext.example.com",
        # The image listens on 0.0.0.0; a test listens on loopback only.
        "ALTTEXT_HOST": "127.0.0.1",
        "ALTTEXT_PORT": str(port),
        "ALTTEXT_WORKERS": "1",
        "ALTTEXT_LOG_LEVEL": "INFO",  # the shutdown lines are checked
    }


def entrypoint(command: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ENTRYPOINT), command],
        env=env,
        cwd=cwd,  # no .env file there
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_migrate_then_api_and_worker(database: str, tmp_path: Path) -> None:
    port = free_port()
    env = production_env(database, port)
    migrate = entrypoint("migrate", env, tmp_path)
    _out, err = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, err.decode()

    api = entrypoint("api", env, tmp_path)
    worker = entrypoint("worker", env, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert api.poll() is None, api.communicate()[1].decode()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"] == {"status": "ok", "backend": "postgresql"}
        assert checks["limits"]["backend"] == "redis"
        assert checks["limits"]["status"] == "ok"

        # The image's HEALTHCHECK command, as Docker would run it inside the API's container.
        (healthcheck,) = dockerfile_stages()[-1].all("HEALTHCHECK")
        argv = exec_form(healthcheck.partition("CMD ")[2])
        assert argv[0] == "python"
        subprocess.run([sys.executable, *argv[1:]], env=env, check=True, timeout=30)
        down = {**env, "ALTTEXT_PORT": str(free_port())}
        assert subprocess.run([sys.executable, *argv[1:]], env=down, timeout=30).returncode != 0

        # The worker has started (it reads the queue) and stays up.
        time.sleep(3)
        assert worker.poll() is None, worker.communicate()[1].decode()
    finally:
        worker_status = stop(worker)
        api_status = stop(api)
    worker_log = worker.communicate()[1].decode()
    assert worker_status == 0, worker_log
    assert "worker stopped" in worker_log
    # uvicorn finishes its graceful shutdown, then re-raises the SIGTERM it caught, so the API
    # ends "killed by SIGTERM" (Docker's 143, a normal stop) once its lifespan has closed.
    api_log = api.communicate()[1].decode()
    assert api_status in (0, -signal.SIGTERM), api_log
    assert "Application shutdown complete" in api_log


def test_production_refuses_to_start_without_what_it_needs(tmp_path: Path) -> None:
    env = production_env("postgresql+asyncpg://alttext:change-me@db/alttext", free_port())
    del env["ALTTEXT_SMTP_URL"]
    for command in ("migrate", "worker", "api"):
        proc = entrypoint(command, env, tmp_path)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, command
        message = err.decode()
        assert "ALTTEXT_SMTP_URL is unset" in message
        assert "ALTTEXT_DATABASE_URL still holds" in message
