"""CPU time and memory of processes, read from /proc (Linux; no psutil needed).

CPU time is user + system of every thread of the process (``/proc/<pid>/stat`` fields 14 and
15), so it measures the server whatever else the machine runs, the load generator included.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0.0 if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name (field 2) may contain spaces; the fields after it are plain.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def status_kib(pid: int, key: str) -> int | None:
    """A ``/proc/<pid>/status`` value in KiB (VmRSS, VmHWM), or None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current resident set (Linux 4.0+, own processes)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples VmRSS of some processes in a thread; with VmHWM (reset at start) gives the peak.

    The sampling is a fallback for when clear_refs is refused; the high-water mark catches
    spikes between samples.
    """

    def __init__(self, pids: list[int], interval_s: float = 0.1) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.peak_kib = dict.fromkeys(pids, 0)
        self.start_kib = {pid: status_kib(pid, "VmRSS") or 0 for pid in pids}
        self.hwm_reset = all(reset_peak(pid) for pid in pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self.hwm_reset:
            for pid in self.pids:
                hwm = status_kib(pid, "VmHWM") or 0
                self.peak_kib[pid] = max(self.peak_kib[pid], hwm)

    def _sample(self) -> None:
        for pid in self.pids:
            rss = status_kib(pid, "VmRSS") or 0
            self.peak_kib[pid] = max(self.peak_kib[pid], rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def peak_mib(self) -> float:
        """The largest peak of one process (MiB)."""
        return max(self.peak_kib.values(), default=0) / 1024

    def summary(self) -> dict[str, object]:
        return {
            "peak_rss_mib": round(self.peak_mib(), 1),
            "peak_rss_mib_by_process": [round(self.peak_kib[p] / 1024, 1) for p in self.pids],
            "start_rss_mib_by_process": [round(self.start_kib[p] / 1024, 1) for p in self.pids],
            "peak_from": "VmHWM after clear_refs, and VmRSS sampled every "
            f"{self.interval_s * 1000:.0f} ms"
            if self.hwm_reset
            else f"VmRSS sampled every {self.interval_s * 1000:.0f} ms (clear_refs refused)",
        }
