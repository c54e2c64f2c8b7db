"""The Dockerfile, linted by parsing: a build stage with uv and uv.lock, a slim final stage with
no build tools that runs as a non-root user, a health check on /healthz, port 8000."""

from __future__ import annotations

import re

from tests.deploy.recipe import DOCKERFILE, DOCKERIGNORE, Stage, dockerfile_stages, exec_form

BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|apt-get|apt|apk|pip install|uv (sync|pip)|"
    r"python3?-dev|libc6-dev|curl|wget)\b"
)


def final_stage() -> Stage:
    return dockerfile_stages()[-1]


def test_two_stages_from_one_slim_python() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    build, final = stages[0], stages[-1]
    assert build.name == "build"
    assert re.fullmatch(r"python:3\.1[1-3]-slim(-\w+)?", final.image), final.image
    # The environment is copied, not rebuilt: both stages must have the same Python at one path.
    assert build.image == final.image


def test_the_build_stage_installs_exactly_the_lock_without_dev_tools() -> None:
    build = dockerfile_stages()[0]
    runs = " ".join(build.all("RUN"))
    copies = " ".join(build.all("COPY"))
    assert "uv.lock" in copies
    assert "tools/bootstrap_uv.py" in copies  # uv pinned and checksum-checked
    syncs = re.findall(r"uv sync [^&;]*", runs)
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
    assert "--no-editable" in syncs[-1]  # the final stage needs no source tree


def test_the_final_stage_has_no_build_tools_and_copies_the_environment() -> None:
    final = final_stage()
    for instruction in final.instructions:
        if instruction.keyword in ("RUN", "COPY", "ADD"):
            assert not BUILD_TOOLS.search(instruction.args), instruction
    assert not final.all("ADD")
    assert any(c.startswith("--from=build ") for c in final.all("COPY"))
    sources = [c for c in final.all("COPY") if not c.startswith("--from=")]
    assert sources == ["--chmod=0755 docker/entrypoint.sh /usr/local/bin/alttext-entrypoint"]


def test_it_runs_as_a_non_root_user() -> None:
    final = final_stage()
    users = final.all("USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", "")
    # The uid USER names is the one created for it.
    assert f"--uid {user} " in " ".join(final.all("RUN"))
    # No instruction after USER switches back.
    last_user = max(i for i, x in enumerate(final.instructions) if x.keyword == "USER")
    assert not [x for x in final.instructions[last_user + 1 :] if x.keyword in ("RUN", "USER")]


def test_health_check_port_and_production_defaults() -> None:
    final = final_stage()
    (healthcheck,) = final.all("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    argv = exec_form(command.strip())
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2]
    assert "urllib.request" in argv[2]
    assert final.all("EXPOSE") == ["8000"]
    env = " ".join(final.all("ENV"))
    for setting in (
        "ALTTEXT_ENV=production",
        "ALTTEXT_PORT=8000",
        "PYTHONDONTWRITEBYTECODE=1",
        "HOME=/tmp",
    ):
        assert setting in env


def test_the_build_context_keeps_secrets_out() -> None:
    """.dockerignore lets in only what the Dockerfile copies: never a .env, .git or .venv."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    assert not [a for a in allowed if a.startswith((".env", ".git", ".venv", "var"))]
    copied: list[str] = []
    for stage in dockerfile_stages():
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            words = [w for w in args.split() if not w.startswith("--")]
            copied += words[:-1]
    for source in copied:
        assert any(source == a or source.startswith(a + "/") for a in allowed), source


def test_the_parser_reads_continuations_and_arg_defaults() -> None:
    stages = dockerfile_stages(
        "ARG BASE=python:3.13-slim\n# c\nFROM ${BASE} AS one\nRUN a \\\n  # inside\n  b\n"
        "FROM $BASE\nUSER 1:1\n"
    )
    assert [(s.image, s.name) for s in stages] == [
        ("python:3.13-slim", "one"),
        ("python:3.13-slim", None),
    ]
    assert stages[0].all("RUN") == ["a b"]
    assert stages[1].all("USER") == ["1:1"]
    assert DOCKERFILE.is_file()
