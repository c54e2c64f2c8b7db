"""Startup time of the command line: help and the commands that need no model (database reads and
writes, audit), median of runs.

Each run is a fresh interpreter, as a user's shell starts it. Modules are imported only when a
command needs them, so help and the read-only database commands load no web, queue, image or
model module (tests/cli/test_startup.py checks which modules load); writes add only the key
cache. The database commands run against a temp SQLite database migrated and given an account
through the CLI (bench/stack.py). The project's install compiles bytecode (Makefile), as
pip does, so what is timed is a user's installed CLI, not Python compiling it.
The target (issue 12): every command's median under 500 ms (bench/report.py, ``cli_target``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.stack import ACCOUNT, Stack

RUNS = 15
COMMANDS = [
    ["--help"],
    ["keys", "--help"],
    ["describe", "--help"],
    ["fix", "--help"],
    ["keys", "list", ACCOUNT],
    ["accounts", "list"],
    ["credits", "balance", ACCOUNT],
    # Writes: one transaction, with the key cache that tells other processes what changed.
    ["keys", "create", ACCOUNT, "--name", "bench-cli"],
    ["credits", "grant", ACCOUNT, "1", "--reason", "bench"],
    # Over the account's or the database's whole data: the collector stays on (cli/group.py).
    ["accounts", "export", ACCOUNT],
    ["purge"],
    # No database at all: a document scanned for images without alt text.
    ["audit", "page.html"],
]
PAGE = '<!doctype html><html lang="en"><body><h1>Shop</h1><img src="shoes.jpg"></body></html>'


def measure(stack: Stack, args: list[str], runs: int) -> list[float]:
    def once() -> float:
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "alttext", *args],
            env=stack.base_env(),
            cwd=stack.workdir,
            capture_output=True,
            check=False,
        )
        took = time.perf_counter() - start
        expected = 1 if args[0] == "audit" else 0  # audit exits 1 on its finding
        if run.returncode != expected:
            raise SystemExit(f"alttext {' '.join(args)} exited {run.returncode}: {run.stderr}")
        return took

    once()  # warm the page cache and the bytecode caches; not counted
    return [once() for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per command (median)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    bare = statistics.median(measure_bare() for _ in range(5))  # the interpreter alone
    rows = []
    with tempfile.TemporaryDirectory(prefix="alttext-bench-cli-") as tmp:
        stack = Stack(Path(tmp), Path(tmp))
        stack.prepare()
        (stack.workdir / "page.html").write_text(PAGE)
        print(
            f"{args.runs} runs each, wall clock, against a migrated SQLite database; "
            f"a bare `python -c pass` took {bare * 1000:.0f} ms."
        )
        print()
        print("| command | median ms | p90 ms | under 500 ms |")
        print("|---|---:|---:|---|")
        for command in COMMANDS:
            times = sorted(measure(stack, command, args.runs))
            p90 = times[int(0.9 * (len(times) - 1))]
            shown = ["EMAIL" if c == ACCOUNT else c for c in command]
            rows.append(
                {
                    "command": f"alttext {' '.join(shown)}",
                    "runs": len(times),
                    "median_ms": round(statistics.median(times) * 1000, 1),
                    "p90_ms": round(p90 * 1000, 1),
                    "times_ms": [round(t * 1000, 1) for t in times],
                }
            )
            r = rows[-1]
            under = report.yes_no(r["median_ms"] < report.CLI_STARTUP_MAX_MS)
            print(f"| `{r['command']}` | {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {under} |")
    numbers = {"bare_python_ms": round(bare * 1000, 1), "commands": rows}
    target = report.cli_target(numbers)
    print()
    print(f"Target: {target['target']}: {report.yes_no(target['met'])} ({target['measured']}).")
    if args.json:
        args.json.write_text(json.dumps(numbers))


def measure_bare() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
