"""The memory budget counts request bodies while they are read and URL downloads while they
arrive: past it a request gets 503 with Retry-After (never an out-of-memory kill), and every
byte is given back when the request ends."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from alttext.errors import ServiceUnavailable
from alttext.inflight import EXPANSION, InflightBudget
from tests.conftest import Service, ServiceFactory, make_settings, running_service
from tests.fakes.fixtures import running_image_host

KB = 1024
MB = 1024 * KB


def noisy_jpeg(width: int, height: int) -> bytes:
    """A JPEG that does not compress much (so its size is roughly width * height / 2)."""
    buf = io.BytesIO()
    Image.effect_noise((width, height), 80).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return (
        head + image + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


class Paused:
    """A request body sent in two halves, the second only after ``resume()``."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent_first = asyncio.Event()
        self._go = asyncio.Event()

    def resume(self) -> None:
        self._go.set()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        half = len(self.body) // 2
        yield self.body[:half]
        self.sent_first.set()
        await self._go.wait()
        yield self.body[half:]


def tiny_budget(svc: Service, max_bytes: int) -> InflightBudget:
    budget = InflightBudget(max_bytes, wait_s=2.0)
    svc.app.state.services.inflight = budget
    return budget


async def until(condition: object, what: str) -> None:
    for _ in range(500):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def svc(service_factory: ServiceFactory) -> AsyncIterator[Service]:
    async with service_factory() as s:
        yield s


# -- the budget itself ----------------------------------------------------------------------------


def test_leases_grow_until_their_share_then_refuse_with_retry_after() -> None:
    budget = InflightBudget(10 * MB)
    first, second = budget.lease(), budget.lease()
    first.grow(3 * MB)
    second.grow(2 * MB)
    assert budget.bodies == budget.used == 5 * MB
    with pytest.raises(ServiceUnavailable) as refused:
        second.grow(1)  # the bodies' half of the budget is full
    assert refused.value.http_status == 503
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    assert second.held == 2 * MB  # nothing taken by the refused growth
    first.release()
    first.release()  # once only
    second.grow(1 * MB)
    second.release()
    assert budget.used == budget.bodies == 0


def test_one_body_larger_than_the_share_still_runs_on_its_own() -> None:
    budget = InflightBudget(10 * MB)
    lease = budget.lease()
    lease.grow(30 * MB)  # charged the whole share, never more
    assert lease.held == budget.used == 5 * MB
    with pytest.raises(ServiceUnavailable):
        budget.lease().grow(1)
    lease.release()
    assert budget.used == 0


async def test_holds_wait_in_order_and_time_out_with_503() -> None:
    budget = InflightBudget(8 * MB, wait_s=0.2)  # a hold costs at most 4 MB (the other half)
    order: list[str] = []

    async def decode(name: str, nbytes: int, gate: asyncio.Event) -> None:
        async with budget.hold(nbytes):
            order.append(name)
            await gate.wait()

    body = budget.lease()
    body.grow(MB)  # a request body being read: 1 MB
    first_gate, later = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(decode("first", MB, first_gate))  # 4 MB: 5 of 8 in use
    await until(lambda: budget.used == MB + EXPANSION * MB, "the first hold")
    second = asyncio.create_task(decode("second", MB, later))  # 4 more do not fit: waits
    third = asyncio.create_task(decode("third", 1, later))  # fits, but must not overtake
    await asyncio.sleep(0.05)
    assert order == ["first"]
    first_gate.set()
    await first
    await until(lambda: order == ["first", "second", "third"], "the waiters in order")
    later.set()
    await asyncio.gather(second, third)
    assert budget.used == MB

    blocking = asyncio.Event()
    holder = asyncio.create_task(decode("holder", MB, blocking))
    await until(lambda: budget.used == 5 * MB, "the holder")
    with pytest.raises(ServiceUnavailable) as timed_out:
        async with budget.hold(MB):
            pass
    assert timed_out.value.retry_after is not None
    blocking.set()
    await holder
    body.release()
    assert budget.used == 0


async def test_a_declared_body_waits_in_turn_for_room_instead_of_503() -> None:
    budget = InflightBudget(8 * MB, wait_s=5.0)  # bodies may hold 4 MB together
    holder = budget.lease()
    holder.grow(3 * MB)
    first, second = budget.lease(), budget.lease()
    waiting_first = asyncio.create_task(first.reserve(2 * MB))  # does not fit: waits
    await until(lambda: budget.waiting == 1, "the first body waiting")
    waiting_second = asyncio.create_task(second.reserve(1))  # would fit, must not overtake
    await until(lambda: budget.waiting == 2, "the second body waiting")
    assert first.held == second.held == 0
    holder.release()  # room: both are served, in turn
    await asyncio.gather(waiting_first, waiting_second)
    assert (first.held, second.held) == (2 * MB, 1)
    assert budget.bodies == budget.used == 2 * MB + 1
    first.release()
    second.release()
    assert budget.used == budget.waiting == 0


async def test_a_waiting_body_gets_503_after_the_wait_and_holds_nothing() -> None:
    budget = InflightBudget(8 * MB, wait_s=0.1)
    holder = budget.lease()
    holder.grow(4 * MB)
    lease = budget.lease()
    with pytest.raises(ServiceUnavailable) as refused:
        await lease.reserve(MB)
    assert refused.value.retry_after is not None
    assert lease.held == 0
    assert budget.waiting == 0
    holder.release()
    assert budget.used == 0


async def test_waiting_holds_are_served_before_waiting_bodies() -> None:
    """A hold belongs to a request already read: when room frees up it goes first, and a body
    behind it waits even if it would fit."""
    budget = InflightBudget(8 * MB, wait_s=5.0)
    reading = budget.lease()
    reading.grow(MB)
    gate = asyncio.Event()

    async def decode() -> None:
        async with budget.hold(MB):  # 4 MB
            await gate.wait()

    first = asyncio.create_task(decode())
    await until(lambda: budget.used == 5 * MB, "the first hold")
    second = asyncio.create_task(decode())  # 4 more do not fit: waits
    await until(lambda: budget.waiting == 1, "the second hold waiting")
    body = budget.lease()
    body_task = asyncio.create_task(body.reserve(2 * MB))  # 7 MB would fit, but a hold waits
    await until(lambda: budget.waiting == 2, "the body waiting")
    assert body.held == 0
    gate.set()
    await asyncio.gather(first, second, body_task)
    assert body.held == 2 * MB
    body.release()
    reading.release()
    assert budget.used == budget.waiting == 0


# -- request bodies -------------------------------------------------------------------------------


async def test_a_second_large_upload_waits_for_the_first_then_runs(svc: Service) -> None:
    account = await svc.create_account()
    image = noisy_jpeg(900, 700)
    budget = tiny_budget(svc, 2 * len(image))  # bodies may hold one such upload, not two
    budget.wait_s = 30.0
    body, content_type = multipart(image)
    slow = Paused(body)
    headers = {**account.headers, "Content-Type": content_type}
    first = asyncio.create_task(
        svc.client.post(
            "/v1/alt-text",
            headers={**headers, "Content-Length": str(len(body))},
            content=slow,
        )
    )
    await slow.sent_first.wait()
    await until(lambda: budget.bodies >= len(body) // 2, "the first body's lease")
    second = asyncio.create_task(svc.client.post("/v1/alt-text", headers=headers, content=body))
    await until(lambda: budget.waiting == 1, "the second body waiting for room")
    slow.resume()
    done, after = await asyncio.gather(first, second)
    assert done.status_code == 200, done.text
    assert after.status_code == 200, after.text  # held, not refused
    assert budget.used == budget.waiting == 0


async def test_a_second_large_upload_gets_503_while_the_first_completes(svc: Service) -> None:
    account = await svc.create_account()
    image = noisy_jpeg(900, 700)  # ~0.5-0.9 MB
    budget = tiny_budget(svc, 2 * len(image))  # bodies may hold one such upload, not two
    body, content_type = multipart(image)
    slow = Paused(body)
    headers = {**account.headers, "Content-Type": content_type}
    first = asyncio.create_task(
        svc.client.post(
            "/v1/alt-text",
            headers={**headers, "Content-Length": str(len(body))},
            content=slow,
        )
    )
    await slow.sent_first.wait()
    await until(lambda: budget.bodies >= len(body) // 2, "the first body's lease")
    assert budget.bodies == min(len(body), budget.body_max)  # declared length, taken up front

    second = await svc.client.post("/v1/alt-text", headers=headers, content=body)
    assert second.status_code == 503, second.text
    assert second.json()["code"] == "service_unavailable"
    assert int(second.headers["retry-after"]) >= 1
    assert second.headers.get("connection") != "close"  # read to its end and dropped

    slow.resume()
    done = await first
    assert done.status_code == 200, done.text
    assert budget.used == 0  # everything given back

    again = await svc.client.post("/v1/alt-text", headers=headers, content=body)
    assert again.status_code == 200, again.text
    assert budget.used == 0


async def test_a_chunked_body_is_counted_as_it_arrives(svc: Service) -> None:
    account = await svc.create_account()
    image = noisy_jpeg(900, 700)
    budget = tiny_budget(svc, 16 * len(image))
    body, content_type = multipart(image)
    slow = Paused(body)
    request = asyncio.create_task(
        svc.client.post(
            "/v1/alt-text",
            headers={**account.headers, "Content-Type": content_type},  # no Content-Length
            content=slow,
        )
    )
    await slow.sent_first.wait()
    await until(lambda: budget.bodies > 0, "the lease")
    # Only what arrived so far is held: the first half.
    assert budget.bodies == len(body) // 2
    slow.resume()
    response = await request
    assert response.status_code == 200, response.text
    assert budget.used == 0


async def test_a_chunked_body_over_the_budget_is_refused_mid_stream(svc: Service) -> None:
    account = await svc.create_account()
    image = noisy_jpeg(900, 700)
    budget = tiny_budget(svc, len(image))  # bodies: half of one image
    body, content_type = multipart(image)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * KB):
            yield body[start : start + 64 * KB]

    # Alone, a body larger than the bodies' share still runs (its lease is charged the share).
    response = await svc.client.post(
        "/v1/alt-text",
        headers={**account.headers, "Content-Type": content_type},
        content=chunks(),
    )
    assert response.status_code == 200, response.text
    # With another request holding half the share, the body is refused once it outgrows the
    # rest: in the middle of the stream, having never held more than the budget allowed.
    other = budget.lease()
    other.grow(budget.body_max // 2)
    try:
        refused = await svc.client.post(
            "/v1/alt-text",
            headers={**account.headers, "Content-Type": content_type},
            content=chunks(),
        )
    finally:
        other.release()
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "service_unavailable"
    assert "retry-after" in refused.headers
    assert budget.used == 0


async def test_a_caller_without_a_valid_key_cannot_hold_the_budget(svc: Service) -> None:
    image = noisy_jpeg(900, 700)
    budget = tiny_budget(svc, len(image))
    body, content_type = multipart(image)
    slow = Paused(body)
    request = asyncio.create_task(
        svc.client.post(
            "/v1/alt-text",
            headers={
                "Authorization": "Bearer at_live_notakey",
                "Content-Type": content_type,
                "Content-Length": str(len(body)),
            },
            content=slow,
        )
    )
    response = await request  # answered before the body is read
    slow.resume()
    assert response.status_code == 401
    assert budget.used == 0


async def test_json_bodies_are_counted_and_given_back(svc: Service) -> None:
    import base64

    account = await svc.create_account()
    budget = tiny_budget(svc, 64 * MB)
    seen: list[int] = []
    real_hold = budget.hold

    def watching_hold(nbytes: int):  # type: ignore[no-untyped-def]
        seen.append(budget.bodies)  # while the engine works, the body is still counted
        return real_hold(nbytes)

    budget.hold = watching_hold  # type: ignore[method-assign]
    image = noisy_jpeg(300, 200)
    payload = {"image": base64.b64encode(image).decode()}
    response = await svc.client.post("/v1/alt-text", headers=account.headers, json=payload)
    assert response.status_code == 200, response.text
    assert seen
    assert seen[0] >= len(payload["image"])
    assert budget.used == 0


# -- URL downloads --------------------------------------------------------------------------------


async def test_an_image_url_download_is_counted_and_refused_past_the_budget(
    database_url: str,
) -> None:
    image = noisy_jpeg(900, 700)
    settings = make_settings(database_url, allow_private_urls=True)
    with running_image_host() as host:
        host.image("/big.jpg", image)
        async with running_service(settings) as svc:
            account = await svc.create_account()
            budget = tiny_budget(svc, 2 * len(image))
            url = host.url("/big.jpg")

            ok = await svc.client.post(
                "/v1/alt-text", headers=account.headers, json={"image_url": url}
            )
            assert ok.status_code == 200, ok.text
            assert budget.used == 0

            # Another request holds most of the bodies' share: the download does not fit.
            other = budget.lease()
            other.grow(budget.body_max - len(image) // 2)
            try:
                refused = await svc.client.post(
                    "/v1/alt-text", headers=account.headers, json={"image_url": url}
                )
            finally:
                other.release()
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "service_unavailable"
            assert int(refused.headers["retry-after"]) >= 1
            assert budget.used == 0
            balance = await svc.client.get("/v1/account", headers=account.headers)
            assert balance.json()["credits_remaining"] == 99  # the refused one was not charged


async def test_the_budget_is_given_back_after_failures(svc: Service) -> None:
    account = await svc.create_account()
    budget = tiny_budget(svc, 8 * MB)
    bad = await svc.client.post(
        "/v1/alt-text", headers=account.headers, files={"image": ("a.jpg", b"not an image")}
    )
    assert bad.status_code in (400, 415)  # not an image format we read
    malformed = await svc.client.post(
        "/v1/alt-text",
        headers={**account.headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert malformed.status_code == 400
    assert budget.used == 0


async def test_every_request_of_a_real_run_gives_its_bytes_back(database_url: str) -> None:
    async with running_service(make_settings(database_url)) as svc:
        account = await svc.create_account()
        image = noisy_jpeg(200, 150)
        answers = await asyncio.gather(
            *(
                svc.client.post(
                    "/v1/alt-text", headers=account.headers, files={"image": ("a.jpg", image)}
                )
                for _ in range(6)
            )
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert svc.app.state.services.inflight.used == 0


# -- over a real socket ---------------------------------------------------------------------------


async def test_a_client_still_sending_a_refused_upload_gets_the_503(database_url: str) -> None:
    """Refused before its first byte (after its wait), a 5 MB upload is read to its end and
    thrown away: the client
    gets the 503 and its Retry-After, not a reset connection, and may send again on it."""
    from alttext.app import create_app
    from tests.http.live import live_server, seed_key

    key = await seed_key(database_url)
    settings = make_settings(database_url, inflight_wait_s=0.2)
    app = create_app(settings)
    with live_server(app, settings) as live:
        budget: InflightBudget = app.state.services.inflight
        assert budget.wait_s == 0.2  # ALTTEXT_INFLIGHT_WAIT_S
        other = budget.lease()
        other.grow(budget.body_max)  # another request holds all the bodies may hold
        image = b"\xff\xd8" + bytes(5 * MB)
        body, content_type = multipart(image)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            refused = await client.post("/v1/alt-text", headers=headers, content=body)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "service_unavailable"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers.get("connection") != "close"
            assert (await client.get("/healthz")).status_code == 200  # same connection, fine
        other.release()
        assert budget.used == 0
