"""Startup time of the command line: `alttext --help` and `alttext keys --help`, median of runs.

Each run is a fresh interpreter, as a user's shell starts it. Modules are imported only when a
command needs them, so help stays fast (tests/cli/test_startup.py checks which modules load).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15
COMMANDS = [["--help"], ["keys", "--help"], ["describe", "--help"]]


def measure(args: list[str]) -> list[float]:
    subprocess.run([sys.executable, "-m", "alttext", *args], capture_output=True, check=True)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "alttext", *args], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - start
    print(f"{RUNS} runs each, wall clock; a bare `python -c pass` took {bare * 1000:.0f} ms.\n")
    print("| command | median ms | p90 ms |")
    print("|---|---:|---:|")
    for args in COMMANDS:
        times = sorted(measure(args))
        p90 = times[int(0.9 * (len(times) - 1))]
        print(
            f"| `alttext {' '.join(args)}` | {statistics.median(times) * 1000:.0f} | "
            f"{p90 * 1000:.0f} |"
        )


if __name__ == "__main__":
    main()
