"""The benchmark harness (bench/) on canned numbers and a tiny local server: tables, target
checks and the load generator's counting. No timing is asserted: speed is `make bench`'s job."""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.loadgen import CUT, closed_loop, percentile, summarize
from bench.run import parse_tables
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench import plan, report
from tests.fakes.server import serve_in_thread


def cell(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model_delay_s": 0.0,
        "processes": 1,
        "concurrency": 16,
        "body": "multipart",
        "issued": 100,
        "ok": 100,
        "errors": {},
        "first_errors": {},
        "ok_per_s": 40.0,
        "p50_ms": 100.0,
        "p99_ms": 250.0,
        "server_cpu_ms_per_ok": 15.0,
        "reference_cpu_ms": 12.5,
        "cpu_over_thumbnail": 1.2,
        "server_cpu_percent": 80.0,
        "peak_rss_mib": 400.0,
        "load_generator_cpu_percent": 50.0,
    }
    values.update(overrides)
    return values


SERVICE: dict[str, Any] = {
    "plan": {"name": "quick"},
    "image": {"width": 1155, "height": 866, "megapixels": 1.0, "bytes": 390_000},
    "reference": {
        "label": "Pillow draft + thumbnail",
        "long_side": 768,
        "runs": 5,
        "cpu_ms": 12.5,
        "with_encode_cpu_ms": 15.0,
    },
    "load": [
        cell(),
        cell(
            processes=2,
            p99_ms=400.0,
            server_cpu_ms_per_ok=17.0,
            reference_cpu_ms=10.0,  # the machine ran slower around this cell
            cpu_over_thumbnail=1.7,
        ),
    ],
    "flood": {
        "issued": 1000,
        "ok": 990,
        "errors": {"503": 10},
        "statuses": {"200": 990, "503": 10},
        "first_errors": {"503": "busy `now`\nretry"},
        "p50_ms": 9000.0,
        "p99_ms": 20000.0,
        "peak_rss_mib": 900.0,
        "start_rss_mib_by_process": [300.0],
        "wall_s": 30.0,
    },
    "uploads": {
        "issued": 256,
        "ok": 100,
        "upload_mb": 19.9,
        "upload_bytes": 19_900_000,
        "image_width": 4900,
        "image_height": 3675,
        "peak_from": "VmHWM",
        "statuses": {"200": 100, "503": 150, "client: RemoteProtocolError": 6},
        "errors": {"503": 150, "client: RemoteProtocolError": 6},
        "first_errors": {},
        "p50_ms": 20000.0,
        "p99_ms": 60000.0,
        "peak_rss_mib": 1500.0,
        "start_rss_mib_by_process": [300.0],
        "wall_s": 70.0,
    },
    "cache": {
        "rounds": 5,
        "first_median_ms": 850.0,
        "repeat_median_ms": 30.0,
        "first_cached_true": 0,
        "repeat_cached_true": 5,
    },
}


def test_targets_say_which_are_met_and_which_are_not() -> None:
    rows = report.targets(SERVICE)
    met = {(r["scenario"], r["target"].split(" (")[0]): r["met"] for r in rows}
    p99 = "p99 ≤ 3 × p50"
    cpu = "server CPU per request ≤ 1.5 × thumbnail"
    assert met[("instant model, concurrency 16, 1 API process(es)", p99)] is True
    assert met[("instant model, concurrency 16, 2 API process(es)", p99)] is False
    assert met[("instant model, concurrency 16, 1 API process(es)", cpu)] is True
    assert met[("instant model, concurrency 16, 2 API process(es)", cpu)] is False
    # Each cell is divided by the reference timed around it, not the run's first one.
    two = next(r for r in rows if r["target"].startswith(cpu) and "2 API" in r["scenario"])
    assert two["measured"].startswith("17.0 ms ÷ 10.0 ms (timed around the cell) = 1.70×")
    # 6 clients got no answer; 1,500 MiB is 1.57 GB, over 1.5 GB.
    assert met[("256 concurrent 19.9 MB uploads", "every client answered 200 or 503")] is False
    assert met[("256 concurrent 19.9 MB uploads", "peak server RSS < 1.5 GB")] is False
    assert met[("identical repeated request (800 ms model)", "answered from the result cache")]
    flood = next(r for r in rows if r["scenario"].startswith("1,000 concurrent"))
    assert flood["met"] is False


def test_a_missing_measurement_is_not_a_pass() -> None:
    service = copy.deepcopy(SERVICE)
    service["load"] = [cell(ok=0, p50_ms=None, p99_ms=None, cpu_over_thumbnail=None)]
    rows = report.targets(service)
    assert [r["met"] for r in rows[:2]] == [None, None]
    assert "n/a" in report.targets_table(rows)


def test_the_document_shows_the_misses_and_every_scenario() -> None:
    text = report.service_markdown(SERVICE) + report.targets_table(report.targets(SERVICE))
    assert "**NO**" in text
    assert "**yes**" in text
    for heading in ("### Under load", "### Many requests", "### Concurrent large", "cache"):
        assert heading in text
    assert "client: RemoteProtocolError: 6" in text
    assert "busy 'now' retry" in text  # error bodies cannot break the Markdown


def test_tables_of_a_scripts_output_become_rows_with_numbers() -> None:
    out = "intro\n\n| input | bytes | median ms | mime |\n|---|---:|---:|---|\n"
    out += "| 12 MP JPEG | 4,655,793 | 90 | `image/jpeg` |\n| PNG | 1 | 7.5 | image/png |\n\ntail"
    assert parse_tables(out) == [
        [
            {"input": "12 MP JPEG", "bytes": 4_655_793, "median ms": 90, "mime": "image/jpeg"},
            {"input": "PNG", "bytes": 1, "median ms": 7.5, "mime": "image/png"},
        ]
    ]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([5.0], 99) == 5
    assert percentile([], 50) is None


def test_the_quick_plan_is_smaller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_QUICK", "1")
    assert plan.current() is plan.QUICK
    monkeypatch.setenv("BENCH_QUICK", "0")
    assert plan.current() is plan.FULL
    assert plan.QUICK.flood_requests < plan.FULL.flood_requests
    assert plan.QUICK.upload_clients < plan.FULL.upload_clients
    assert plan.FULL.upload_bytes <= 20_000_000  # accepted by the default image cap


async def test_the_load_generator_counts_answers_failures_and_cuts() -> None:
    async def answer(request: Request) -> Response:
        n = int(request.query_params["n"])
        if n % 4 == 3:
            return JSONResponse({"detail": "busy"}, status_code=503)
        if n == 9:
            await asyncio.sleep(3)  # still in flight at the cap (2.3 s)
        return JSONResponse({"cached": n == 0, "timing_ms": {"prepare": 3}})

    app = Starlette(routes=[Route("/a", answer, methods=["POST"])])
    with serve_in_thread(app, "bench smoke server") as port:
        outcome = await closed_loop(
            lambda i: (f"http://127.0.0.1:{port}/a?n={i}", {"content": b"x"}),
            concurrency=4,
            max_requests=12,
            cap_s=2.0,
            drain_s=0.3,
        )
    summary = summarize(outcome)
    assert summary["issued"] == 12
    assert summary["statuses"] == {"200": 8, "503": 3, CUT: 1}
    assert summary["cached_true"] == 1
    assert summary["server_timing_median_ms"] == {"prepare": 3}
    assert "busy" in summary["first_errors"]["503"]


def test_the_upstream_client_bench_compares_every_client_on_both_transports() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "bench/bench_upstream.py", "--calls", "4"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [rows] = parse_tables(done.stdout)
    assert [(r["transport"], r["client"]) for r in rows] == [
        ("http", "aiohttp, HTTP/1.1 (the service's)"),
        ("http", "httpx (HTTP/1.1 only): HTTP/1.1"),
        ("http", "httpx (HTTP/2 offered): HTTP/1.1"),
        ("TLS", "aiohttp, HTTP/1.1 (the service's)"),
        ("TLS", "httpx (HTTP/1.1 only): HTTP/1.1"),
        ("TLS", "httpx (HTTP/2 offered): HTTP/2"),
    ]
    assert all(isinstance(r["CPU ms per call"], float) for r in rows)
