"""Prometheus metrics: the series the service records and the text ``GET /metrics`` answers.

Counters and histograms are recorded where things happen (HTTP middleware, the provider's
observer, credit settlement, webhook delivery). Gauges of cluster state (jobs, queue, webhook
backlog) are not recorded here: the route computes them from the database at each scrape and
hands them to :func:`render`, so they are right however many processes run.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts; prometheus-client picks its
storage when it is imported), every process of a host writes its counters to files there and
:func:`render` sums the files of all of them; otherwise it reads this process's own registry.
A process that ends cleanly calls :func:`process_exited`, so its live gauges leave the sums.

:func:`scrape` is the whole ``GET /metrics`` (token check, cluster gauges, exposition) for both
surfaces that answer it: the API's route and the worker's listener (``alttext.worker``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

__all__ = [
    "CONTENT_TYPE",
    "DENIED_DETAIL",
    "MULTIPROC_ENV",
    "OFF_DETAIL",
    "UNMATCHED_ROUTE",
    "ClusterCounts",
    "Metric",
    "Scrape",
    "access",
    "cluster_gauges",
    "gauge",
    "labelled_gauge",
    "multiprocess_dir",
    "process_exited",
    "record_circuit_state",
    "record_circuit_transition",
    "record_credits_spent",
    "record_request",
    "record_upstream_call",
    "record_webhook_delivery",
    "render",
    "scrape",
]

log = logging.getLogger("alttext.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"
OTHER = "other"

# Generations take seconds (a model call, perhaps a retry), pages and lists milliseconds.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
_UPSTREAM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
# Methods a client may send are any token; only these get their own series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Module-level objects on a dedicated registry, built once per interpreter. Counters and
# histograms are facts about the process (like its CPU time), not about one app: an app built
# twice in one process (tests, the CLI) would otherwise register its series twice and fail
# with "Duplicated timeseries". A dedicated registry, not prometheus-client's global one, keeps
# any library's own metrics out of our answer. Tests compare values before and after.
_REGISTRY = CollectorRegistry()
# Only meaningful for one process, so only in this registry (multiprocess mode skips it).
ProcessCollector(registry=_REGISTRY)
PlatformCollector(registry=_REGISTRY)
GCCollector(registry=_REGISTRY)

HTTP_REQUESTS = Counter(
    "alttext_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ("route", "method", "status"),
    registry=_REGISTRY,
)
HTTP_DURATION = Histogram(
    "alttext_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by route template and method.",
    ("route", "method"),
    buckets=_HTTP_BUCKETS,
    registry=_REGISTRY,
)
UPSTREAM_CALLS = Counter(
    "alttext_upstream_calls_total",
    "HTTP calls to the model provider (each retry counts), by model and outcome: ok, "
    "truncated, error, timeout, unavailable, refused.",
    ("model", "outcome"),
    registry=_REGISTRY,
)
UPSTREAM_DURATION = Histogram(
    "alttext_upstream_call_duration_seconds",
    "Duration of one HTTP call to the model provider, by model.",
    ("model",),
    buckets=_UPSTREAM_BUCKETS,
    registry=_REGISTRY,
)
CREDITS_SPENT = Counter(
    "alttext_credits_spent_total",
    "Credits settled (kept) for successful generations.",
    registry=_REGISTRY,
)
# Circuit breakers are per process (docs/engine.md): in multiprocess mode each process reports
# its own state, told apart by a ``pid`` label; counters sum as usual. "liveall": the series of
# a process that ended cleanly leave with it (process_exited), not left at their last value.
CIRCUIT_STATE = Gauge(
    "alttext_circuit_state",
    "State of a model's circuit breaker in this process: 0 closed, 1 open, 2 half-open.",
    ("model",),
    multiprocess_mode="liveall",
    registry=_REGISTRY,
)
CIRCUIT_TRANSITIONS = Counter(
    "alttext_circuit_transitions_total",
    "Changes of a model's circuit breaker, by the state it went to.",
    ("model", "to"),
    registry=_REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "alttext_webhook_deliveries_total",
    "Outbound webhook delivery attempts, by outcome.",
    ("outcome",),
    registry=_REGISTRY,
)


class _BoundedLabel:
    """At most ``limit`` distinct values of a label someone else chooses (the model an upstream
    names, the outcome a caller passes); later newcomers are counted as ``other``, so a
    misbehaving upstream cannot grow the number of series without bound."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # recorded from the event loop and worker threads alike

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value


_model_label = _BoundedLabel(50)
_upstream_outcome_label = _BoundedLabel(20)
_webhook_outcome_label = _BoundedLabel(20)


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request. ``route`` is the route template, never the raw path."""
    method = method.upper()
    if method not in _METHODS:
        method = OTHER
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(max(seconds, 0.0))


def record_upstream_call(model: str, outcome: str, seconds: float) -> None:
    """One HTTP call to the model provider (the engine's ``on_upstream`` observer)."""
    model = _model_label(model or "unknown")
    UPSTREAM_CALLS.labels(model, _upstream_outcome_label(outcome)).inc()
    UPSTREAM_DURATION.labels(model).observe(max(seconds, 0.0))


# The gauge's value of each circuit state (as in ``describe.providers.breaker.STATE_VALUES``).
_CIRCUIT_VALUES = {"closed": 0, "open": 1, "half_open": 2}


def record_circuit_state(model: str, state: str) -> None:
    """A circuit's current state (set for the chain's models when a process starts)."""
    CIRCUIT_STATE.labels(_model_label(model or "unknown")).set(_CIRCUIT_VALUES.get(state, 0))


def record_circuit_transition(model: str, state: str) -> None:
    """A circuit changed state (the breakers' ``on_transition`` observer)."""
    model = _model_label(model or "unknown")
    CIRCUIT_STATE.labels(model).set(_CIRCUIT_VALUES.get(state, 0))
    CIRCUIT_TRANSITIONS.labels(model, str(state)).inc()


def record_credits_spent(credits: int) -> None:
    if credits > 0:
        CREDITS_SPENT.inc(credits)


def record_webhook_delivery(outcome: str) -> None:
    """One webhook delivery attempt; ``outcome`` as stored on the attempt (``delivered``,
    ``http_error``, ``timeout``, ``network_error``, ``refused``)."""
    WEBHOOK_DELIVERIES.labels(_webhook_outcome_label(outcome)).inc()


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    """A gauge computed at scrape time, for :func:`render`."""
    return GaugeMetricFamily(name, documentation, value=value)


def labelled_gauge(
    name: str, documentation: str, label: str, values: Mapping[str, float]
) -> GaugeMetricFamily:
    """A gauge with one label computed at scrape time, for :func:`render`."""
    family = GaugeMetricFamily(name, documentation, labels=(label,))
    for key, value in sorted(values.items()):
        family.add_metric((key,), value)
    return family


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def process_exited(pid: int | None = None) -> None:
    """In multiprocess mode, drop the live gauges (``alttext_circuit_state``) of a process that
    ended (this one by default): call it last, on a clean shutdown. Its counters stay summed, so
    totals do not drop. A process killed outright leaves its files until the folder is emptied."""
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(pid if pid is not None else os.getpid(), path)  # type: ignore[no-untyped-call]


class _Scrape:
    """One scrape's collector: the recorded series plus the gauges computed for it."""

    def __init__(self, recorded: Collector, computed: list[Metric]) -> None:
        self._recorded = recorded
        self._computed = computed

    def collect(self) -> Iterator[Metric]:
        yield from self._recorded.collect()
        yield from self._computed


def _recorded() -> Collector:
    path = multiprocess_dir()
    if path is None:
        return _REGISTRY
    # A fresh registry per scrape, as prometheus-client documents for multiprocess mode: the
    # collector reads every process's files at collect time and sums them.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry


def render(computed: Iterable[Metric] = ()) -> bytes:
    """The exposition text (``CONTENT_TYPE``). Reads files in multiprocess mode: call it off the
    event loop."""
    return generate_latest(_Scrape(_recorded(), list(computed)))


# -- GET /metrics: one answer for the API's route and the worker's listener --------------------

OFF_DETAIL = "Metrics are off on this deployment (ALTTEXT_METRICS_TOKEN is not set)."
DENIED_DETAIL = "Send the metrics token as 'Authorization: Bearer <token>'."


def access(token: str | None, authorization: str | None) -> int:
    """The status a scrape gets before anything is read: 404 when metrics are off (no token
    configured, like a route that is not there), 401 without ``Authorization: Bearer <token>``
    (compared in constant time), else 200."""
    if not token:
        return 404
    scheme, _, credentials = (authorization or "").partition(" ")
    given = credentials.strip().encode()
    if scheme.lower() != "bearer" or not given:
        return 401
    return 200 if hmac.compare_digest(given, token.encode()) else 401


class ClusterCounts(Protocol):
    """Cluster-wide counts read from the database at each scrape
    (``alttext.jobstore.stats.JobCounts``)."""

    @property
    def jobs(self) -> Mapping[str, int]: ...

    @property
    def items(self) -> Mapping[str, int]: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def webhook_messages_pending(self) -> int: ...


def cluster_gauges(counts: ClusterCounts | None) -> list[Metric]:
    """The gauges computed at scrape time; ``None``: the database could not be read."""
    database_ok = gauge(
        "alttext_metrics_database_ok",
        "1 when this scrape could read the job gauges from the database, else 0.",
        1 if counts is not None else 0,
    )
    if counts is None:
        return [database_ok]
    return [
        database_ok,
        labelled_gauge(
            "alttext_job_items", "Job items per status (cluster-wide).", "status", counts.items
        ),
        gauge(
            "alttext_queue_depth",
            "Pending items of open (queued, running or paused) jobs, cluster-wide.",
            counts.queue_depth,
        ),
        labelled_gauge("alttext_jobs", "Jobs per status (cluster-wide).", "status", counts.jobs),
        gauge(
            "alttext_webhook_messages_pending",
            "Webhook messages not yet delivered nor given up (cluster-wide).",
            counts.webhook_messages_pending,
        ),
    ]


@dataclass(frozen=True)
class Scrape:
    """What ``GET /metrics`` answers: ``status`` 200 with the exposition in ``body`` (of
    ``CONTENT_TYPE``), 401 (``DENIED_DETAIL``) or 404 (``OFF_DETAIL``) with no body."""

    status: int
    body: bytes = b""


async def scrape(
    token: str | None,
    authorization: str | None,
    read_counts: Callable[[], Awaitable[ClusterCounts]],
) -> Scrape:
    """One scrape: the token check, then the cluster gauges (``read_counts``) and every recorded
    series. The database is read only once the token matched."""
    status = access(token, authorization)
    if status != 200:
        return Scrape(status)
    counts: ClusterCounts | None
    try:
        counts = await read_counts()
    except (SQLAlchemyError, OSError) as exc:
        # The process's own counters matter most while the database is down: answer with them.
        log.warning("metrics: job gauges unavailable", extra={"error_type": type(exc).__name__})
        counts = None
    # Multiprocess mode reads one file per process: off the event loop.
    return Scrape(200, await asyncio.to_thread(render, cluster_gauges(counts)))
