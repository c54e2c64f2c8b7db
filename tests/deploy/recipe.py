"""The files of the container recipe and small parsers for them (no container engine needed)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
CADDYFILE = ROOT / "docker" / "Caddyfile"
SCHEMA = Path(__file__).with_name("compose-spec.json")


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, …
    args: str  # the rest of the (joined) line


@dataclass
class Stage:
    image: str  # after ARG defaults are applied
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def dockerfile_stages(text: str | None = None) -> list[Stage]:
    """The Dockerfile's stages: continuation lines joined, comments dropped, global ARG defaults
    substituted into FROM."""
    text = DOCKERFILE.read_text() if text is None else text
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[str(m[1] or m[2])], words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return stages


def exec_form(args: str) -> list[str]:
    """A JSON-array instruction argument (CMD ["a", "b"]) or a shell-form one, as words."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines (Compose's .env format as .env.example uses it: no quotes)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (enough for compose.yaml)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3]
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op and op.endswith("-") else ""

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def variables(text: str) -> set[str]:
    """The names that ${…} refers to in ``text``."""
    return {m[1] for m in _VARIABLE.finditer(text.replace("$$", ""))}
