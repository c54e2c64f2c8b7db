"""`make bench`: run every benchmark and write their tables to docs/benchmarks.md."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = [
    ("CLI startup", "bench/bench_cli.py"),
    ("Image preparation", "bench/bench_image.py"),
    ("Offline engine", "bench/bench_local.py"),
    ("Service end to end", "bench/bench_api.py"),
]


def main() -> None:
    parts = [
        "# Benchmarks\n",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, Python {platform.python_version()}. Re-run to refresh; "
        "numbers vary with machine load.\n",
    ]
    for title, script in BENCHES:
        print(f"== {title} ({script})", flush=True)
        result = subprocess.run(
            [sys.executable, script], cwd=ROOT, capture_output=True, text=True, check=True
        )
        print(result.stdout, flush=True)
        parts.append(f"## {title}\n\n`python {script}`\n\n{result.stdout.strip()}\n")
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print("Wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
