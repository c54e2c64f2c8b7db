"""docker/entrypoint.sh dispatches to alttext: run with a stub `alttext` first on PATH that
records its arguments, its pid and the environment it got."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.recipe import ENTRYPOINT

STUB = """#!/bin/sh
{
  printf '%s\\n' "$$"
  printf '%s\\n' "${PROMETHEUS_MULTIPROC_DIR:-}"
  for arg in "$@"; do printf '%s\\n' "$arg"; done
} > "$STUB_RECORD"
exit "${STUB_EXIT:-0}"
"""


def run(tmp_path: Path, *args: str, **env: str) -> tuple[int, int, list[str]]:
    """Runs the entry point; answers its exit status, the stub's pid (0 if the stub never ran)
    compared to the entry point's, and the stub's arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "alttext"
    stub.write_text(STUB)
    stub.chmod(0o755)
    record = tmp_path / "record"
    record.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALTTEXT_")}
    base.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [str(ENTRYPOINT), *args],
        env={**base, "PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_RECORD": str(record), **env},
        cwd=tmp_path,
    )
    status = proc.wait(timeout=30)
    if not record.exists():
        return status, 0, []
    pid, _multiproc, *argv = record.read_text().splitlines()
    # exec: the stub *is* the entry point's process, so the container's SIGTERM reaches alttext.
    assert int(pid) == proc.pid
    return status, int(pid), argv


def test_the_script_is_executable_posix_sh() -> None:
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["serve", "--host", "0.0.0.0"]),
        (("api",), ["serve", "--host", "0.0.0.0"]),
        (("api", "--port", "9000"), ["serve", "--host", "0.0.0.0", "--port", "9000"]),
        (("worker",), ["worker"]),
        (("migrate",), ["db", "upgrade"]),
        (("migrate", "--help"), ["db", "upgrade", "--help"]),
        (("alttext", "keys", "create", "a@example.com"), ["keys", "create", "a@example.com"]),
        (("accounts", "list"), ["accounts", "list"]),
        (("--help",), ["--help"]),
        (("describe", "a file.png"), ["describe", "a file.png"]),
        (("alttext",), []),
    ],
)
def test_dispatch(tmp_path: Path, args: tuple[str, ...], expected: list[str]) -> None:
    status, _pid, argv = run(tmp_path, *args)
    assert status == 0
    assert argv == expected


def test_api_listens_where_alttext_host_says(tmp_path: Path) -> None:
    _status, _pid, argv = run(tmp_path, "api", ALTTEXT_HOST="127.0.0.1")
    assert argv == ["serve", "--host", "127.0.0.1"]


def test_the_exit_status_is_alttexts(tmp_path: Path) -> None:
    status, _pid, argv = run(tmp_path, "migrate", STUB_EXIT="3")
    assert (status, argv) == (3, ["db", "upgrade"])


def test_the_prometheus_folder_is_made_before_the_process_starts(tmp_path: Path) -> None:
    folder = tmp_path / "tmpfs" / "prometheus"
    status, _pid, _argv = run(tmp_path, "worker", PROMETHEUS_MULTIPROC_DIR=str(folder))
    assert status == 0
    assert folder.is_dir()
    assert (tmp_path / "record").read_text().splitlines()[1] == str(folder)


def test_the_image_runs_it(tmp_path: Path) -> None:
    """The Dockerfile installs this script as its ENTRYPOINT, with `api` as the default."""
    from tests.deploy.recipe import dockerfile_stages, exec_form

    final = dockerfile_stages()[-1]
    (entrypoint,) = final.all("ENTRYPOINT")
    (command,) = final.all("CMD")
    copies = [c for c in final.all("COPY") if "docker/entrypoint.sh" in c]
    assert len(copies) == 1
    assert exec_form(entrypoint) == [copies[0].split()[-1]]
    assert exec_form(command) == ["api"]
    assert json.loads(command) == ["api"]
