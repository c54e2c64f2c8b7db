"""The fake OpenRouter (tests/fakes/openrouter.py) in its own process, as the benchmark's model.

    python bench/fake_model.py

Prints ``ready <base_url>`` once it listens, then reads commands on stdin, one a line:
``delay <seconds>`` makes every chat completion wait that long before its (default) answer.
It exits when stdin closes. Its own process keeps its CPU off the load generator's and the
server's, and its records are dropped every second so memory stays flat over many requests.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openrouter import FakeOpenRouter, Reply, Slow, run_fake_openrouter


def _forget(fake: FakeOpenRouter, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with fake._lock:
            fake._requests.clear()
            fake._images.clear()
            fake._generations.clear()


def main() -> None:
    with run_fake_openrouter() as fake:
        stop = threading.Event()
        threading.Thread(target=_forget, args=(fake, stop), daemon=True).start()
        print(f"ready {fake.base_url}", flush=True)
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "delay":
                seconds = float(parts[1])

                def respond(body: dict[str, Any], model: str, s: float = seconds) -> Any:
                    return Slow(s) if s > 0 else Reply()

                fake.respond_with(respond)
                print(f"ok delay {seconds}", flush=True)
        stop.set()


if __name__ == "__main__":
    main()
