"""alttext.metrics on its own: the series, the route label, the provider's observer, and the
multiprocess mode (two real processes writing, a third summing)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from alttext import metrics
from alttext.describe.errors import UpstreamError, UpstreamTimeout
from alttext.describe.providers.base import ModelRequest
from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from alttext.describe.types import DescribeOptions
from alttext.http.middleware import RequestMetricsMiddleware, route_template
from tests.fakes.openrouter import ErrorIn200, FakeOpenRouter, Reply, Slow, Status

ROOT = Path(__file__).resolve().parents[1]
GEMINI = "google/gemini-2.5-flash-lite"
QWEN = "qwen/qwen2.5-vl-72b-instruct"


def families(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(text: str | bytes, name: str, **labels: str) -> float:
    """The value of one sample (exactly these labels), 0.0 when the series does not exist yet:
    counters are process-wide, so tests compare a value before and after."""
    if isinstance(text, bytes):
        text = text.decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def scrape() -> str:
    return metrics.render().decode()


# -- the series -------------------------------------------------------------------------------


def test_recorded_series_render_with_their_labels() -> None:
    before = scrape()
    metrics.record_request("/v1/jobs/{job_id}", "get", 404, 0.02)
    metrics.record_request("/v1/jobs/{job_id}", "BREW", 405, 0.01)
    metrics.record_upstream_call(GEMINI, "timeout", 30.0)
    metrics.record_credits_spent(3)
    metrics.record_credits_spent(0)
    metrics.record_webhook_delivery("delivered")
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    route = "/v1/jobs/{job_id}"
    assert delta("alttext_http_requests_total", route=route, method="GET", status="404") == 1
    # A method clients invent gets no series of its own.
    assert delta("alttext_http_requests_total", route=route, method="other", status="405") == 1
    assert delta("alttext_http_request_duration_seconds_count", route=route, method="GET") == 1
    assert delta(
        "alttext_http_request_duration_seconds_bucket", route=route, method="GET", le="0.025"
    ) == (1)
    assert delta("alttext_upstream_calls_total", model=GEMINI, outcome="timeout") == 1
    assert delta("alttext_upstream_call_duration_seconds_sum", model=GEMINI) == 30.0
    assert delta("alttext_credits_spent_total") == 3
    assert delta("alttext_webhook_deliveries_total", outcome="delivered") == 1
    kinds = {name: family.type for name, family in families(after).items()}
    assert kinds["alttext_http_requests"] == "counter"
    assert kinds["alttext_http_request_duration_seconds"] == "histogram"
    assert kinds["alttext_upstream_calls"] == "counter"
    assert kinds["alttext_upstream_call_duration_seconds"] == "histogram"
    assert kinds["alttext_credits_spent"] == "counter"
    assert kinds["alttext_webhook_deliveries"] == "counter"


def test_computed_gauges_are_rendered_with_the_recorded_series() -> None:
    text = metrics.render(
        [
            metrics.gauge("alttext_queue_depth", "Pending items.", 7),
            metrics.labelled_gauge("alttext_jobs", "Jobs.", "status", {"queued": 2, "running": 0}),
        ]
    )
    assert sample(text, "alttext_queue_depth") == 7
    assert sample(text, "alttext_jobs", status="queued") == 2
    assert sample(text, "alttext_jobs", status="running") == 0
    assert "alttext_http_requests" in families(text)
    # Computed per scrape, never stored: the next scrape without them has none.
    assert "alttext_queue_depth" not in families(metrics.render())


def test_labels_chosen_by_others_are_bounded() -> None:
    bounded = metrics._BoundedLabel(2)
    assert [bounded(v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]


# -- the route label --------------------------------------------------------------------------


async def test_the_route_label_is_the_template_through_routers_and_mounts(
    tmp_path: Path,
) -> None:
    """Pins route_template to the installed FastAPI: prefixes of nested routers included,
    405 on a known route, a mount, and unmatched paths."""
    inner = APIRouter(prefix="/things")

    @inner.get("/{thing_id}/parts/{part}")
    async def get_part(thing_id: str, part: str) -> dict[str, str]:
        return {}

    outer = APIRouter(prefix="/v9")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)

    @app.get("/plain/{name}")
    async def plain(name: str) -> dict[str, str]:
        return {}

    (tmp_path / "a.css").write_text("body{}")
    app.mount("/assets", StaticFiles(directory=tmp_path), name="assets")
    seen: list[str] = []

    class Spy:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            root = scope.get("root_path", "")
            await self.app(scope, receive, send)
            seen.append(route_template(scope, root))

    app.add_middleware(Spy)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/v9/things/abc/parts/7")).status_code == 200
        assert (await client.post("/v9/things/abc/parts/7")).status_code == 405
        assert (await client.get("/plain/x")).status_code == 200
        assert (await client.get("/assets/a.css")).status_code == 200
        assert (await client.get("/v9/things")).status_code == 404
        assert (await client.get("/nowhere/at/all")).status_code == 404
    assert seen == [
        "/v9/things/{thing_id}/parts/{part}",
        "/v9/things/{thing_id}/parts/{part}",
        "/plain/{name}",
        "/assets/{path}",
        metrics.UNMATCHED_ROUTE,
        metrics.UNMATCHED_ROUTE,
    ]


async def test_the_middleware_counts_an_unexpected_error_as_500() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    before = scrape()
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    with pytest.raises(RuntimeError):
        await RequestMetricsMiddleware(broken)(scope, None, None)  # type: ignore[arg-type]
    labels = {"route": metrics.UNMATCHED_ROUTE, "method": "GET", "status": "500"}
    assert (
        sample(scrape(), "alttext_http_requests_total", **labels)
        - sample(before, "alttext_http_requests_total", **labels)
        == 1
    )


# -- the provider's observer ------------------------------------------------------------------


class Observed:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, model: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((model, outcome))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _no_wait(seconds: float) -> None:
    return None


def _provider(
    fake: FakeOpenRouter, http: aiohttp.ClientSession, observer: Any, **config: Any
) -> ChatCompletionsProvider:
    values: dict[str, Any] = {
        "base_url": fake.base_url,
        "api_key": fake.api_key,
        "models": (GEMINI, QWEN),
        "timeout_s": 5.0,
        **config,
    }
    return ChatCompletionsProvider(
        ChatConfig(**values), http, sleep=_no_wait, jitter=lambda: 0.0, on_upstream=observer
    )


def _request() -> ModelRequest:
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 120, 40)).save(out, "JPEG")
    return ModelRequest(
        system="You write alt text.",
        user="Describe the image.",
        image=out.getvalue(),
        mime="image/jpeg",
        options=DescribeOptions(),
    )


async def test_every_http_call_is_observed_with_its_outcome(
    fake_openrouter: FakeOpenRouter, http: aiohttp.ClientSession
) -> None:
    observed = Observed()
    provider = _provider(fake_openrouter, http, observed)
    fake_openrouter.script(
        Status(503), ErrorIn200("length"), ErrorIn200("choice_error", code=504), Reply()
    )
    await provider.complete(_request())
    assert observed.calls == [
        (GEMINI, "unavailable"),
        (GEMINI, "truncated"),
        (GEMINI, "timeout"),
        (GEMINI, "ok"),
    ]

    observed.calls.clear()
    fake_openrouter.script(Status(403, metadata={"reasons": ["violence"]}))
    with pytest.raises(UpstreamError):
        await provider.complete(_request())
    assert observed.calls == [(GEMINI, "refused")]

    observed.calls.clear()
    fake_openrouter.script(Status(400, message="bad things"))
    with pytest.raises(UpstreamError):
        await provider.complete(_request())
    assert observed.calls == [(GEMINI, "error")]


async def test_a_fallback_is_observed_under_the_model_that_answered(
    fake_openrouter: FakeOpenRouter, http: aiohttp.ClientSession
) -> None:
    observed = Observed()
    fake_openrouter.fail_model(GEMINI, code=503)
    reply = await _provider(fake_openrouter, http, observed).complete(_request())
    assert reply.model == QWEN
    assert observed.calls == [(QWEN, "ok")]


async def test_a_timeout_is_observed_and_a_broken_observer_fails_nothing(
    fake_openrouter: FakeOpenRouter, http: aiohttp.ClientSession
) -> None:
    observed = Observed()
    provider = _provider(fake_openrouter, http, observed, timeout_s=0.2, max_retries=0)
    fake_openrouter.script(Slow(2.0))
    with pytest.raises(UpstreamTimeout):
        await provider.complete(_request())
    assert observed.calls == [(GEMINI, "timeout")]

    def broken(model: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("observer bug")

    fake_openrouter.script(Reply("A red bicycle."))
    reply = await _provider(fake_openrouter, http, broken).complete(_request())
    assert reply.content == "A red bicycle."


# -- multiprocess mode ------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import os
    from prometheus_client import values
    from alttext import metrics

    # prometheus-client chose file-backed values because the variable was set at its import.
    assert values.ValueClass is not values.MutexValue
    metrics.record_request("/v1/jobs/{job_id}", "GET", 200, 0.05)
    metrics.record_upstream_call("google/gemini-2.5-flash-lite", "ok", 1.5)
    metrics.record_credits_spent(2)
    metrics.record_webhook_delivery("delivered")
    print(metrics.render().decode())
    """
)


def _worker(directory: Path) -> str:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_sums_every_process_of_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _worker(tmp_path)
    second = _worker(tmp_path)
    route = {"route": "/v1/jobs/{job_id}", "method": "GET", "status": "200"}
    assert sample(first, "alttext_http_requests_total", **route) == 1
    # The second process's scrape includes the first's counts, read from the shared files.
    assert sample(second, "alttext_http_requests_total", **route) == 2
    assert len(list(tmp_path.glob("*.db"))) >= 2  # one file per process and kind

    # Any process with the variable set answers the same sums (this one recorded nothing
    # into the files: its own values live in memory).
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    text = scrape()
    assert sample(text, "alttext_http_requests_total", **route) == 2
    assert sample(
        text, "alttext_http_request_duration_seconds_count", route=route["route"], method="GET"
    ) == (2)
    assert sample(
        text, "alttext_upstream_calls_total", model="google/gemini-2.5-flash-lite", outcome="ok"
    ) == (2)
    assert sample(text, "alttext_credits_spent_total") == 4
    assert sample(text, "alttext_webhook_deliveries_total", outcome="delivered") == 2
    # The per-process collectors are not summed across processes: left out in this mode.
    assert "process_cpu_seconds" not in families(text)
