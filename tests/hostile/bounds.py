"""What one call costs: its wall time and how far it grows the process's resident memory.

Resident memory is sampled every 2 ms from /proc/self/statm while the call runs, so the peak of
a decode that allocates and frees is seen too (tracemalloc would miss the C allocations of
Pillow, libvips and libheif, which are the ones that matter here).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Generous for slow CI machines; every sample of the corpus takes well under a second here.
TIME_LIMIT_S = 10.0
# An image at the pixel limit (50 MP) decodes to 200 MB as RGBX; a progressive JPEG of that
# size holds ~300 MB of coefficients while it is decoded. Anything near 1 GB is a bomb.
MEMORY_LIMIT_MB = 768

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    if not _STATM.exists():  # not Linux: memory is not measured
        return 0
    return int(_STATM.read_text().split()[1]) * _PAGE


@dataclass
class Usage:
    seconds: float = 0.0
    peak_growth_mb: float = 0.0

    def within_bounds(self) -> bool:
        return self.seconds < TIME_LIMIT_S and self.peak_growth_mb < MEMORY_LIMIT_MB

    def __str__(self) -> str:
        return f"{self.seconds:.2f} s, +{self.peak_growth_mb:.0f} MB resident"


@contextmanager
def measured() -> Iterator[Usage]:
    usage = Usage()
    base = resident_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], resident_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        yield usage
    finally:
        usage.seconds = time.monotonic() - started
        done.set()
        sampler.join()
        peak[0] = max(peak[0], resident_bytes())
        usage.peak_growth_mb = (peak[0] - base) / 2**20
