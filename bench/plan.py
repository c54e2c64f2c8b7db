"""Every size, concurrency, count and time cap of `make bench`, in one place.

``BENCH_QUICK=1`` (``make bench BENCH_QUICK=1``) picks the short plan: the same scenarios with
fewer requests and shorter caps, to check the harness while developing (its numbers are not the
record; run.py writes them to var/bench/, not docs/).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    # Scenario 1: the service under load (every combination of these three).
    model_delays_s: tuple[float, ...]
    processes: tuple[int, ...]
    concurrencies: tuple[int, ...]
    # A cell issues up to max(cell_min_requests, cell_requests_per_slot * concurrency)
    # requests, and none after cell_cap_s + cell_cap_per_slot_s * concurrency (more
    # concurrency needs longer to get past the first burst); requests still in flight then
    # get drain_cap_s.
    cell_min_requests: int
    cell_requests_per_slot: int
    cell_cap_s: float
    cell_cap_per_slot_s: float
    drain_cap_s: float
    # JSON base64 bodies, instant model: (processes, concurrency) cells.
    json_cells: tuple[tuple[int, int], ...]
    # The upload: a JPEG of about image_megapixels.
    image_megapixels: float
    # Reference: Pillow (or libvips) thumbnail of the same image, timed this many times.
    thumbnail_runs: int
    # Scenario 2: this many requests at once against the slow model, one process.
    flood_requests: int
    flood_delay_s: float
    flood_cap_s: float
    # Scenario 3: this many concurrent uploads of upload_bytes each, one process.
    upload_clients: int
    upload_bytes: int
    upload_cap_s: float
    # Scenario 4: identical requests sent twice (miss, then hit), this many times.
    cache_rounds: int
    cache_delay_s: float
    # Other scripts: runs per command (bench_cli.py) and per input (bench_local.py).
    cli_runs: int
    local_runs: int
    # bench/bench_upstream.py: calls per client and transport.
    upstream_calls: int
    # Hard limit for one script run by run.py (a stuck script fails the run, it does not hang).
    script_cap_s: float


FULL = Plan(
    name="full",
    model_delays_s=(0.0, 0.8),
    processes=(1, 2),
    concurrencies=(1, 16, 64, 256),
    cell_min_requests=40,
    cell_requests_per_slot=8,
    cell_cap_s=6.0,
    cell_cap_per_slot_s=0.05,
    drain_cap_s=20.0,
    json_cells=((1, 16), (2, 16)),
    image_megapixels=1.0,
    thumbnail_runs=20,
    flood_requests=1000,
    flood_delay_s=0.8,
    flood_cap_s=120.0,
    upload_clients=256,
    # "20 MB": just under the default ALTTEXT_MAX_IMAGE_BYTES (20,000,000), so it is accepted.
    upload_bytes=19_900_000,
    upload_cap_s=150.0,
    cache_rounds=5,
    cache_delay_s=0.8,
    cli_runs=15,
    local_runs=10,
    upstream_calls=300,
    script_cap_s=900.0,
)

QUICK = Plan(
    name="quick",
    model_delays_s=(0.0, 0.8),
    processes=(1, 2),
    concurrencies=(1, 16),
    cell_min_requests=10,
    cell_requests_per_slot=2,
    cell_cap_s=2.0,
    cell_cap_per_slot_s=0.01,
    drain_cap_s=20.0,
    json_cells=((1, 16),),
    image_megapixels=1.0,
    thumbnail_runs=5,
    flood_requests=100,
    flood_delay_s=0.8,
    flood_cap_s=30.0,
    upload_clients=32,
    upload_bytes=19_900_000,
    upload_cap_s=60.0,
    cache_rounds=2,
    cache_delay_s=0.8,
    cli_runs=3,
    local_runs=2,
    upstream_calls=50,
    script_cap_s=300.0,
)


def is_quick() -> bool:
    return os.environ.get("BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def cell_cap_s(plan: Plan, concurrency: int) -> float:
    return plan.cell_cap_s + plan.cell_cap_per_slot_s * concurrency


def current() -> Plan:
    return QUICK if is_quick() else FULL
