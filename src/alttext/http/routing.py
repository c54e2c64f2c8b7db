"""The route class of the /v1 routers: bodies that FastAPI validates are read like ours.

FastAPI reads a body that a route declares as a model with ``request.body()`` (no cap) and
``request.json()`` (Python's parser: RecursionError and ValueError on hostile input, which it
answers with a bare 400). ``ApiRoute`` hands it an ``ApiRequest`` instead, whose body is capped
and whose JSON goes through ``load_json``; its errors keep their status and detail (see
``alttext.errors``). Routes that read their body themselves are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from alttext.http.body import load_json, read_body

# The bodies FastAPI validates (account, keys, sign-up, billing) are a few small fields.
MAX_MODEL_BODY = 64 * 1024


class ApiRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            self._body = await read_body(self, MAX_MODEL_BODY)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = load_json(await self.body())
        return self._json


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(ApiRequest(request.scope, request.receive))

        return route_handler
