"""The route dependencies run on the event loop: none hops through FastAPI's threadpool."""

from __future__ import annotations

import inspect
import threading
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import State

from alttext.api.alt_text import router
from tests.conftest import Account, Service


def _calls(dependant: Dependant) -> list[Any]:
    found = []
    for sub in dependant.dependencies:
        found.append(sub.call)
        found.extend(_calls(sub))
    return found


def _runs_on_the_loop(call: Any) -> bool:
    if inspect.iscoroutinefunction(call):
        return True
    method = getattr(type(call), "__call__", None)  # a security scheme's instance
    return inspect.isfunction(call) is False and inspect.iscoroutinefunction(method)


def test_every_dependency_of_alt_text_is_async() -> None:
    routes = [
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == "/v1/alt-text" and "POST" in r.methods
    ]
    assert len(routes) == 1
    calls = _calls(routes[0].dependant)
    assert calls  # the services container and the caller at least
    sync = [getattr(c, "__qualname__", repr(c)) for c in calls if not _runs_on_the_loop(c)]
    assert sync == []  # a plain def would run in the threadpool


class _RecordingState(State):
    """The app's state, noting which thread reads ``services``."""

    def __init__(self, state: dict[str, Any], threads: list[int]) -> None:
        super().__init__(state)
        object.__setattr__(self, "_threads", threads)

    def __getattr__(self, key: Any) -> Any:
        if key == "services":
            self._threads.append(threading.get_ident())
        return super().__getattr__(key)


async def test_services_are_taken_on_the_event_loop_thread(
    service: Service, account: Account
) -> None:
    threads: list[int] = []
    app = service.app
    app.state = _RecordingState(dict(app.state._state), threads)
    response = await service.client.post(
        "/v1/alt-text", headers=account.headers, json={"image": "not an image"}
    )
    assert response.status_code == 415, response.text  # after the dependencies ran
    assert threads  # the dependency did read the container
    assert set(threads) == {threading.get_ident()}
