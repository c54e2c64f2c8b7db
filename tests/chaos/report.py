"""Write docs/reliability.md from the figures the chaos scenarios recorded in var/chaos/*.json.

``make chaos`` runs the scenarios, then this (``python -m tests.chaos.report``). Every number in
the document comes from a JSON file of that run: nothing here is typed in by hand but the words
saying what each scenario does and which test holds its promise.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "var" / "chaos"
OUT = ROOT / "docs" / "reliability.md"

# Scenario name prefix -> (title, what it does and what must hold, the test).
SCENARIOS: list[tuple[str, str, str, str]] = [
    (
        "upstream_faults_load",
        "Upstream faults under load",
        "5,000 requests at concurrency 64; the first model of the chain fails 30% of its calls "
        "(5xx, 429 with Retry-After, timeouts, errors inside a 200, truncated JSON, a slow drip), "
        "the second is healthy. Must hold: ≥ 99.5% succeed, every failure is an upstream 5xx "
        "problem, credits spent = successful answers not served from the cache, exactly.",
        "tests/chaos/test_upstream_faults_load.py",
    ),
    (
        "sigkill",
        "SIGKILL under load, then restart",
        "The API process is killed (SIGKILL) while clients send and requests wait in the model "
        "call, then restarted, several times. Must hold: the ledger's sum equals the balance, "
        "no reservation stays held once its TTL passes, no credit is charged twice; credits "
        "spent equal answers received but for a request killed between its charge's commit and "
        "its answer leaving the process (`charged_without_answer`; an `Idempotency-Key` retry "
        "replays that answer).",
        "tests/chaos/test_crashes.py",
    ),
    (
        "sigterm",
        "SIGTERM: a graceful stop",
        "SIGTERM with requests in flight: they finish within the grace (or, past it, are "
        "cancelled uncharged with a 503), new connections are refused, the process exits.",
        "tests/chaos/test_crashes.py",
    ),
    (
        "redis",
        "Redis cut under load",
        "The line to Redis is cut (refused: a stopped server; partition: packets dropped) while "
        "clients send, jobs run or are created. Must hold: service goes on (limits per process, "
        "cache bypassed, jobs wait: a job created meanwhile is accepted), and everything "
        "returns to Redis without a restart of ours or of the workers.",
        "tests/chaos/test_dependencies.py",
    ),
    (
        "postgres",
        "PostgreSQL cut under load",
        "The line to PostgreSQL is cut (refused, a partition, or in the middle of a statement) "
        "while clients send. Must hold: clients get 503 `service_unavailable` with "
        "`Retry-After`, never a 500; service returns on its own; no credit is lost or doubled.",
        "tests/chaos/test_dependencies.py",
    ),
]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows += _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return [(prefix, ", ".join(_show(v) for v in value) or "—")]
    if isinstance(value, list):
        return [row for i, v in enumerate(value) for row in _flatten(v, f"{prefix}[{i}]")]
    return [(prefix, _show(value))]


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "—"
    return str(value).replace("|", "\\|")


def _scenario_of(name: str) -> tuple[str, str, str, str] | None:
    for scenario in SCENARIOS:
        if name.startswith(scenario[0]):
            return scenario
    return None


def _machine() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except OSError:
        commit = ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; CPython "
        f"{platform.python_version()}; load average {load} when written"
        + (f"; commit {commit}" if commit else "")
    )


def render(figures: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Reliability: what fails, what clients get, what it costs",
        "",
        f"Written by `make chaos` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from "
        f"the figures of that run's scenarios (`var/chaos/*.json`). Machine: {_machine()}.",
        "",
        "Every scenario below is a test: its assertions are the promises stated with it, so a "
        "run that breaks one fails instead of writing a worse figure. The short variants run in "
        "`make test`; the long ones are marked `chaos` and run by `make chaos` (CI runs both, "
        "the faulty-model load at 2,500 requests per database). "
        "Scenarios needing PostgreSQL or Redis run when `ALTTEXT_TEST_DATABASE_URL` / "
        "`ALTTEXT_TEST_REDIS_URL` are set (CI sets both). The policies themselves are in "
        "[operations.md](operations.md); hostile input, SSRF, access control and erasure are "
        "covered by tests/hostile, tests/describe/test_fetch_ssrf.py, tests/security and "
        "tests/privacy (see their modules).",
        "",
    ]
    if not figures:
        lines += ["No figures were recorded: run `make chaos`.", ""]
        return "\n".join(lines)
    lines += ["## Scenarios run", "", "| scenario | database | recorded |", "|---|---|---|"]
    for name, data in figures.items():
        lines.append(f"| [{name}](#{name}) | {data.get('database', '—')} | {data['recorded_at']} |")
    lines.append("")
    seen: set[str] = set()
    for prefix, title, what, test in SCENARIOS:
        names = [n for n in figures if _scenario_of(n) == (prefix, title, what, test)]
        if not names:
            continue
        seen.update(names)
        lines += [f"## {title}", "", what, "", f"Test: `{test}`.", ""]
        for name in names:
            lines += _table(name, figures[name])
    rest = [n for n in figures if n not in seen]
    if rest:
        lines += ["## Other scenarios", ""]
        for name in rest:
            lines += _table(name, figures[name])
    return "\n".join(lines)


def _table(name: str, data: dict[str, Any]) -> list[str]:
    rows = [(k, v) for k, v in _flatten(data) if k not in ("scenario", "recorded_at")]
    out = [f'<a id="{name}"></a>', "", f"### `{name}`", "", "| figure | value |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in rows]
    return [*out, ""]


def load(folder: Path = FIGURES) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        figures[str(data.get("scenario", path.stem))] = data
    return figures


def main() -> int:
    figures = load()
    OUT.write_text(render(figures) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} from {len(figures)} scenario(s) in {FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
