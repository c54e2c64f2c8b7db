"""`make bench`: run every benchmark, write docs/benchmarks.md and docs/benchmarks.json.

    python bench/run.py [--only cli,image,upstream,local,service]
    BENCH_QUICK=1 python bench/run.py       (make bench BENCH_QUICK=1)

The full plan writes docs/; the quick plan, or a subset, writes var/bench/ (BENCH_OUT=folder
overrides either), so a development run never replaces the record. Every script runs in its
own interpreter with a time cap (bench/plan.py); a failed script is reported as failed in both
files and the run exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.plan import Plan, current

ROOT = Path(__file__).resolve().parents[1]
# (key, title, script, takes --json)
BENCHES = [
    ("cli", "CLI startup", "bench/bench_cli.py", True),
    ("image", "Image preparation", "bench/bench_image.py", False),
    ("upstream", "The model server's HTTP client", "bench/bench_upstream.py", False),
    ("local", "Offline engine", "bench/bench_local.py", True),
    ("service", "Service under load", "bench/bench_api.py", True),
]
LIBRARIES = [
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "pydantic",
    "python-multipart",
    "sqlalchemy",
    "aiosqlite",
    "httpx",
    "aiohttp",
    "pillow",
    "pillow-heif",
    "pyvips",
    "pyvips-binary",
    "numpy",
    "onnxruntime",
    "rapidocr",
    "opencv-python-headless",
    "alttext",
]


def script_args(key: str, plan: Plan) -> list[str]:
    if key == "cli":
        return ["--runs", str(plan.cli_runs)]
    if key == "local":
        return ["--runs", str(plan.local_runs)]
    if key == "upstream":
        return ["--calls", str(plan.upstream_calls)]
    return []


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import pyvips

        out["libvips"] = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    except Exception:  # not installed, or its library does not load
        out["libvips"] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    status = _git("status", "--porcelain")
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "memory_gib": _memory_gib(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": versions(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cell(text: str) -> Any:
    plain = text.strip().strip("`")
    number = plain.replace(",", "")
    if re.fullmatch(r"-?\d+", number):
        return int(number)
    if re.fullmatch(r"-?\d+\.\d*", number):
        return float(number)
    return plain


def parse_tables(markdown: str) -> list[list[dict[str, Any]]]:
    """Every Markdown table in a script's output, as rows keyed by the header (numbers parsed)."""
    tables: list[list[dict[str, Any]]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines) - 1:
        head, rule = lines[i].strip(), lines[i + 1].strip()
        if head.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rule):
            names = [c.strip() for c in head.strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [_cell(c) for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(names, cells, strict=False)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def run_script(key: str, script: str, takes_json: bool, plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "numbers.json"
        argv = [sys.executable, script, *script_args(key, plan)]
        if takes_json:
            argv += ["--json", str(out)]
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=plan.script_cap_s
            )
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout if isinstance(exc.stdout, str) else ""
            return {
                "script": script,
                "error": f"stopped at its {plan.script_cap_s:.0f} s cap",
                "stdout": stdout,
                "seconds": round(time.perf_counter() - started, 1),
            }
        result: dict[str, Any] = {
            "script": " ".join(["python", script, *script_args(key, plan)]),
            "seconds": round(time.perf_counter() - started, 1),
            "stdout": done.stdout,
        }
        if done.returncode != 0:
            result["error"] = f"exited with status {done.returncode} (its stderr is above)"
        if takes_json and out.exists():
            result["numbers"] = json.loads(out.read_text())
        elif not takes_json:
            result["numbers"] = {"tables": parse_tables(done.stdout)}
        return result


def extra_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cli = results.get("cli", {}).get("numbers")
    if cli:
        rows.append(report.cli_target(cli))
    local = results.get("local", {}).get("numbers")
    if local:
        rows.append(
            {
                "scenario": "offline engine, time per image",
                "target": "reported (no numeric target)",
                "measured": ", ".join(
                    f"{r['input']}: {r['median_ms']:.0f} ms" for r in local["rows"]
                ),
                "met": None,
            }
        )
    return rows


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def markdown(meta: dict[str, Any], plan: Plan, results: dict[str, Any], out_dir: Path) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in meta["libraries"].items() if v)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {meta['date_utc']} UTC ({plan.name} plan, "
        f"{meta['total_s']:.0f} s). Machine: {meta['cpu_model']}, {meta['machine']}, "
        f"{meta['cpu_count']} CPUs ({meta['cpus_usable']} usable), {meta['memory_gib']} GiB, "
        f"{meta['platform']}; {meta['python']}. Load average at start "
        f"{' / '.join(map(str, meta['load_average_start']))}, at end "
        f"{' / '.join(map(str, meta['load_average_end']))}. Commit {meta['git_commit']}"
        f"{' (with uncommitted changes)' if meta['git_dirty'] else ''}.",
        "",
        f"Libraries: {libs}.",
        "",
        f"Every number is also in `{_shown(out_dir)}/benchmarks.json`. Comparisons are made side "
        "by side in the same run (ratios), because the machine is noisy; re-run to refresh.",
        "",
        "## Targets",
        "",
    ]
    service = results.get("service", {}).get("numbers")
    rows = (service or {}).get("targets", []) + extra_targets(results)
    lines.append(report.targets_table(rows) if rows else "No target could be measured.")
    for key, title, _script, _ in BENCHES:
        if key not in results:
            continue
        r = results[key]
        lines += ["", f"## {title}", "", f"`{r['script']}` ({r['seconds']:.0f} s)", ""]
        if "error" in r:
            lines += [f"**Failed: {r['error']}.**", ""]
        if key == "service" and r.get("numbers"):
            lines.append(report.service_markdown(r["numbers"]))
        elif r["stdout"].strip():
            lines.append(r["stdout"].strip())
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    keys = [b[0] for b in BENCHES]
    parser.add_argument("--only", default=",".join(keys), help=f"a comma-separated subset: {keys}")
    args = parser.parse_args()
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    plan = current()
    record = plan.name == "full" and set(only) == set(keys)
    out_dir = Path(os.environ.get("BENCH_OUT") or (ROOT / ("docs" if record else "var/bench")))
    out_dir.mkdir(parents=True, exist_ok=True)

    meta = machine()
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for key, title, script, takes_json in BENCHES:
        if key not in only:
            continue
        print(f"== {title} ({script}, {plan.name} plan)", file=sys.stderr, flush=True)
        results[key] = run_script(key, script, takes_json, plan)
        print(results[key]["stdout"], flush=True)
        if "error" in results[key]:
            print(f"!! {script}: {results[key]['error']}", file=sys.stderr, flush=True)
    meta["total_s"] = round(time.perf_counter() - started, 1)
    meta["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    document = {"meta": meta, "plan": plan.name, "benchmarks": results}
    (out_dir / "benchmarks.json").write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / "benchmarks.md").write_text(markdown(meta, plan, results, out_dir))
    print(f"Wrote {out_dir / 'benchmarks.md'} and {out_dir / 'benchmarks.json'}", flush=True)
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
