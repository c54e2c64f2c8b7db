"""The CPU pool: tasks run in the order their requests arrived; the first task of a request is
refused with 503 and Retry-After when its estimated wait is past the bound or ``queue`` tasks
already wait.

Speed is measured by bench/bench_api.py (p50 and p99 at concurrency 16), never asserted here.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import pytest
from PIL import Image

from alttext.errors import ServiceUnavailable
from alttext.runtime import CpuPool, arrival
from tests.conftest import ServiceFactory


@contextmanager
def pool(workers: int = 1, queue: int = 3) -> Iterator[CpuPool]:
    p = CpuPool(workers, queue)
    try:
        yield p
    finally:
        p.shutdown(wait=True, cancel_futures=True)


@contextmanager
def pool_with_wait(workers: int, queue: int, max_wait_s: float, task_s: float) -> Iterator[CpuPool]:
    p = CpuPool(workers, queue, max_wait_s=max_wait_s, task_s=task_s)
    try:
        yield p
    finally:
        p.shutdown(wait=True, cancel_futures=True)


def blocker(p: CpuPool) -> tuple[threading.Event, Future[Any]]:
    """Occupy one worker until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    future = p.submit(hold)
    assert started.wait(5)
    return release, future


def as_request(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as the code of one HTTP request that arrives now (its own context)."""

    def run() -> Any:
        with arrival():
            return fn()

    return contextvars.copy_context().run(run)


def test_tasks_run_in_arrival_order() -> None:
    ran: list[int] = []
    with pool(workers=1, queue=10) as p:
        release, _ = blocker(p)
        futures = [p.submit(ran.append, i) for i in range(6)]
        release.set()
        for f in futures:
            f.result(5)
    assert ran == [0, 1, 2, 3, 4, 5]


def test_an_earlier_requests_later_task_runs_before_a_newer_requests_first() -> None:
    """Request A arrives, then B and C; A's second step (after its model call) is queued after
    theirs but runs first: a request already paid for is not starved by newcomers."""
    ran: list[str] = []
    with pool(workers=1, queue=10) as p:
        release, _ = blocker(p)
        ctx_a = contextvars.copy_context()
        ticket_a = ctx_a.run(arrival)  # A's request context stays open
        ctx_a.run(ticket_a.__enter__)
        first_a = ctx_a.run(p.submit, ran.append, "A1")
        b = as_request(lambda: p.submit(ran.append, "B1"))
        c = as_request(lambda: p.submit(ran.append, "C1"))
        second_a = ctx_a.run(p.submit, ran.append, "A2")
        release.set()
        for f in (first_a, b, c, second_a):
            f.result(5)
        ctx_a.run(ticket_a.__exit__, None, None, None)
    assert ran == ["A1", "A2", "B1", "C1"]


def test_past_the_queue_a_new_request_is_refused_with_retry_after() -> None:
    with pool(workers=1, queue=3) as p:
        release, _ = blocker(p)
        waiting = [as_request(lambda i=i: p.submit(lambda: i)) for i in range(3)]
        assert p.waiting == 3
        with pytest.raises(ServiceUnavailable) as refused:
            as_request(lambda: p.submit(lambda: "one too many"))
        assert refused.value.http_status == 503
        assert refused.value.code == "service_unavailable"
        assert refused.value.retry_after is not None
        assert refused.value.retry_after >= 1
        assert p.waiting == 3  # the refused task never queued
        release.set()
        assert [f.result(5) for f in waiting] == [0, 1, 2]
        # Room again once the queue has drained.
        assert as_request(lambda: p.submit(lambda: "welcome")).result(5) == "welcome"


def test_a_burst_is_admitted_while_its_estimated_wait_is_within_the_bound() -> None:
    """Admission by the wait a newcomer faces (tasks waiting x task time / threads), not by a
    fixed length: with 0.25 s tasks and a 1 s bound, five requests wait and the sixth is
    refused, although the hard cap would hold a hundred."""
    with pool_with_wait(workers=1, queue=100, max_wait_s=1.0, task_s=0.25) as p:
        release, _ = blocker(p)
        admitted = [as_request(lambda i=i: p.submit(lambda: i)) for i in range(5)]
        assert p.waiting == 5
        assert p.expected_wait_s == pytest.approx(1.25)
        with pytest.raises(ServiceUnavailable) as refused:
            as_request(lambda: p.submit(lambda: "one too many"))
        assert refused.value.retry_after is not None
        assert refused.value.retry_after >= 1
        assert p.waiting == 5
        release.set()
        assert [f.result(5) for f in admitted] == [0, 1, 2, 3, 4]


def test_more_threads_hold_a_longer_queue_for_the_same_wait() -> None:
    with pool_with_wait(workers=2, queue=100, max_wait_s=1.0, task_s=0.25) as p:
        releases = [blocker(p)[0], blocker(p)[0]]
        admitted = [as_request(lambda i=i: p.submit(lambda: i)) for i in range(9)]
        assert p.waiting == 9  # the ninth saw 8 x 0.25 / 2 = 1 s of wait: within the bound
        with pytest.raises(ServiceUnavailable):
            as_request(lambda: p.submit(lambda: "one too many"))
        for release in releases:
            release.set()
        assert [f.result(5) for f in admitted] == list(range(9))


def test_the_hard_cap_holds_whatever_the_estimate() -> None:
    with pool_with_wait(workers=1, queue=2, max_wait_s=600.0, task_s=0.0001) as p:
        release, _ = blocker(p)
        admitted = [as_request(lambda i=i: p.submit(lambda: i)) for i in range(2)]
        with pytest.raises(ServiceUnavailable):
            as_request(lambda: p.submit(lambda: "past the cap"))
        release.set()
        assert [f.result(5) for f in admitted] == [0, 1]


def test_the_settings_build_a_pool_bounded_by_wait_with_a_large_hard_cap() -> None:
    from alttext.runtime import CPU_QUEUE_PER_WORKER, cpu_pool
    from tests.conftest import make_settings

    p = cpu_pool(make_settings("sqlite+aiosqlite:///:memory:", workers=2))
    try:
        assert p.workers == 2
        assert p.queue == 2 * CPU_QUEUE_PER_WORKER
        assert p.max_wait_s == 20.0  # ALTTEXT_CPU_QUEUE_WAIT_S
    finally:
        p.shutdown()
    p = cpu_pool(
        make_settings("sqlite+aiosqlite:///:memory:", workers=1, cpu_queue=5, cpu_queue_wait_s=0)
    )
    try:
        assert (p.queue, p.max_wait_s) == (5, 0.0)
    finally:
        p.shutdown()


def test_an_admitted_request_and_background_work_are_never_refused() -> None:
    with pool(workers=1, queue=1) as p:
        release, _ = blocker(p)
        ctx = contextvars.copy_context()
        ticket = ctx.run(arrival)
        ctx.run(ticket.__enter__)
        first = ctx.run(p.submit, lambda: "first step")  # admitted: the queue had room
        background = [p.submit(lambda i=i: i) for i in range(5)]  # a queued job's tasks
        assert p.waiting == 6
        second = ctx.run(p.submit, lambda: "second step")  # same request: not refused
        with pytest.raises(ServiceUnavailable):
            as_request(lambda: p.submit(lambda: "a newcomer"))
        release.set()
        assert first.result(5) == "first step"
        assert second.result(5) == "second step"
        assert [f.result(5) for f in background] == [0, 1, 2, 3, 4]
        ctx.run(ticket.__exit__, None, None, None)


def test_work_started_by_a_request_that_has_ended_is_background_work() -> None:
    with pool(workers=1, queue=0) as p:
        release, _ = blocker(p)
        ctx = contextvars.copy_context()
        ticket = ctx.run(arrival)
        ctx.run(ticket.__enter__)
        ctx.run(ticket.__exit__, None, None, None)
        # A task spawned in the request's context (a job it queued) runs later: never refused.
        later = ctx.run(p.submit, lambda: "job item")
        release.set()
        assert later.result(5) == "job item"


async def test_a_cancelled_waiting_task_leaves_the_queue_at_once() -> None:
    loop = asyncio.get_running_loop()
    with pool(workers=1, queue=2) as p:
        release, _ = blocker(p)
        waiter = loop.run_in_executor(p, lambda: "never needed")
        assert p.waiting == 1
        waiter.cancel()
        for _ in range(100):
            if p.waiting == 0:
                break
            await asyncio.sleep(0.001)
        assert p.waiting == 0
        release.set()


def test_exceptions_reach_the_caller_and_the_worker_carries_on() -> None:
    def fail() -> None:
        raise ValueError("bad pixels")

    with pool(workers=1, queue=2) as p:
        with pytest.raises(ValueError, match="bad pixels"):
            p.submit(fail).result(5)
        assert p.submit(lambda: 42).result(5) == 42
        assert p.running == 0


def test_shutdown_cancels_what_waits() -> None:
    p = CpuPool(1, 5)
    release, _ = blocker(p)
    waiting = p.submit(lambda: "late")
    p.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert waiting.cancelled()
    with pytest.raises(RuntimeError):
        p.submit(lambda: "after")


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), "teal").save(buf, format="JPEG")
    return buf.getvalue()


async def test_a_full_queue_answers_the_api_with_503_and_retry_after(
    service_factory: ServiceFactory,
) -> None:
    async with service_factory(workers=1, cpu_queue=2) as svc:
        account = await svc.create_account()
        executor: CpuPool = svc.app.state.services.runtime.executor
        release, _ = blocker(executor)
        queued = [executor.submit(lambda: None) for _ in range(2)]  # background work
        try:
            r = await svc.client.post(
                "/v1/alt-text", headers=account.headers, files={"image": ("a.jpg", jpeg())}
            )
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "service_unavailable"
            assert int(r.headers["retry-after"]) >= 1
        finally:
            release.set()
            for f in queued:
                f.result(5)
        # Nothing was charged, and the next request goes through.
        ok = await svc.client.post(
            "/v1/alt-text", headers=account.headers, files={"image": ("a.jpg", jpeg())}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["credits_remaining"] == 99


def test_background_work_started_inside_a_request_is_never_refused() -> None:
    from alttext.runtime import background

    with pool(workers=1, queue=0) as p:
        release, _ = blocker(p)

        def job_started_by_the_request() -> Future[str]:
            with background():  # e.g. a queued job's item, run in the request's context
                return p.submit(lambda: "job item")

        job = as_request(job_started_by_the_request)
        release.set()
        assert job.result(5) == "job item"
