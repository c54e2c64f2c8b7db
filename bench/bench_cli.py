"""Startup time of the command line: `alttext --help` and `alttext keys --help`, median of runs.

Each run is a fresh interpreter, as a user's shell starts it. Modules are imported only when a
command needs them, so help stays fast (tests/cli/test_startup.py checks which modules load).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 15
COMMANDS = [["--help"], ["keys", "--help"], ["describe", "--help"]]


def measure(args: list[str], runs: int) -> list[float]:
    subprocess.run([sys.executable, "-m", "alttext", *args], capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "alttext", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per command (median)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - start
    print(f"{args.runs} runs each, wall clock; a bare `python -c pass` took {bare * 1000:.0f} ms.")
    print()
    print("| command | median ms | p90 ms |")
    print("|---|---:|---:|")
    rows = []
    for command in COMMANDS:
        times = sorted(measure(command, args.runs))
        p90 = times[int(0.9 * (len(times) - 1))]
        rows.append(
            {
                "command": f"alttext {' '.join(command)}",
                "runs": len(times),
                "median_ms": round(statistics.median(times) * 1000, 1),
                "p90_ms": round(p90 * 1000, 1),
                "times_ms": [round(t * 1000, 1) for t in times],
            }
        )
        r = rows[-1]
        print(f"| `{r['command']}` | {r['median_ms']:.0f} | {r['p90_ms']:.0f} |")
    if args.json:
        numbers = {"bare_python_ms": round(bare * 1000, 1), "commands": rows}
        args.json.write_text(json.dumps(numbers))


if __name__ == "__main__":
    main()
