"""The route class of the API's routers: ``ApiRoute``, with a 405 that names every method.

Starlette answers a method a path does not take with 405 and ``Allow`` listing the methods of
the first route on that path only: ``OPTIONS /v1/account`` said ``Allow: GET`` though PATCH and
DELETE are served there too (RFC 9110 §15.5.6: Allow lists the methods the target resource
supports). ``ResourceRoute`` lists the methods of every route of the app whose path matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import routing as fastapi_routing
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from alttext.http.routing import ApiRoute


def _route_views(routes: Sequence[BaseRoute]) -> Iterable[Any]:
    """Every route as mounted, included routers opened (``iter_route_contexts`` where FastAPI
    has it: routers included with ``include_router`` are not copied into the app since 0.16x)."""
    contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    return contexts(routes) if contexts is not None else routes


def methods_at(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """Every method some route of ``routes`` serves at ``path``, sorted."""
    found: set[str] = set()
    for route in _route_views(routes):
        regex = getattr(route, "path_regex", None)
        methods = getattr(route, "methods", None)
        if regex is not None and methods and regex.match(path):
            found.update(methods)
    return sorted(found)


class ResourceRoute(ApiRoute):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            app = scope.get("app")
            routes: Sequence[BaseRoute] = getattr(app, "routes", None) or [self]
            allowed = methods_at(routes, scope["path"]) or sorted(self.methods)
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(allowed)})
        await super().handle(scope, receive, send)
