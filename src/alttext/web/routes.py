"""The dashboard's routers and static files, as the app factory wires them.

Modules by page group: ``pages`` (landing, /docs, /privacy, /terms), ``auth`` (sign-up,
confirmation, log in/out, password reset), ``dashboard`` (overview, keys), ``credits``,
``try_it``, ``jobs`` (bulk jobs, webhook secret and deliveries), ``account`` (rights, password,
address confirmation).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from alttext.web import account, auth, credits, dashboard, jobs, pages, try_it
from alttext.web.security import HtmlProblems, login_required
from alttext.web.session import LoginRequired

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)
for module in (pages, auth, dashboard, credits, try_it, jobs, account):
    router.include_router(module.router)

html_problems = HtmlProblems()


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def install(app: FastAPI) -> None:
    """The pages' routes, static files and the login redirect."""
    app.include_router(router)
    app.mount("/static", static_files(), name="static")
    app.add_exception_handler(LoginRequired, login_required)
