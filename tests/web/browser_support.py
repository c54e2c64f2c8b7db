"""The real service in a real uvicorn (a thread, the options of ``alttext serve``), driven by
Debian's Chromium through Playwright, with axe-core injected from the npm-installed file.

Nothing here downloads a browser: Chromium is /usr/bin/chromium (``apt-get install chromium``;
.ci/run installs it), axe-core is ``.tools/axe`` (tools/install_axe.sh). Mail is read from the
log, as a developer reads it (``ALTTEXT_SMTP_URL`` unset writes mail to logger alttext.mail).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from alttext.app import create_app
from alttext.http.server import uvicorn_options
from tests.conftest import make_settings
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--mute-audio",
]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("ALTTEXT_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class MailLog(logging.Handler):
    """Keeps what the log mailer writes (To:, Subject:, body with the link)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.messages.append(record.getMessage())

    def link(self, to: str, path: str, timeout: float = 10.0) -> str:
        """The latest mailed link to ``path`` for ``to`` (waits: mail goes out after the
        response)."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(rf"(https?://\S+{re.escape(path)}\?token=[A-Za-z0-9_%\-]+)")
        while True:
            with self._lock:
                mails = [m for m in self.messages if f"To: {to}\n" in m]
            for mail in reversed(mails):
                match = pattern.search(mail)
                if match:
                    return match.group(1)
            assert time.monotonic() < deadline, f"no mail to {to} with a {path} link"
            time.sleep(0.05)


@contextmanager
def capture_mail() -> Iterator[MailLog]:
    logger = logging.getLogger("alttext.mail")
    handler = MailLog()
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@dataclass
class LiveService:
    url: str
    settings: Any
    app: Any
    mail: MailLog


@contextmanager
def live_service(template_db: Path, tmp: Path, **overrides: Any) -> Iterator[LiveService]:
    """The app on a free port; its public URL follows the host and port (no
    ALTTEXT_PUBLIC_URL), so mailed links point at this very server."""
    db = tmp / "browser.db"
    shutil.copy(template_db, db)
    port = free_port()
    settings = make_settings(
        f"sqlite+aiosqlite:///{db}",
        host="127.0.0.1",
        port=port,
        public_url="",
        rate_limit_per_minute=10_000,
        **overrides,
    )
    assert settings.public_url == f"http://127.0.0.1:{port}"
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, loop="asyncio", **uvicorn_options(settings)
        )
    )
    with capture_mail() as mail:
        thread = threading.Thread(target=server.run, name="browser-uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server exited during start-up"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        try:
            yield LiveService(settings.public_url, settings, app, mail)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@dataclass
class PageWatch:
    """What a page did that it should not: CSP violations, script errors, other origins."""

    origin: str
    problems: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        def console(message: Any) -> None:
            text = message.text
            if message.type == "error" and (
                "Content Security Policy" in text or "Refused to" in text
            ):
                self.problems.append(text)

        def request(req: Any) -> None:
            if not req.url.startswith((self.origin, "data:", "blob:", "about:")):
                self.foreign.append(req.url)

        page.on("console", console)
        page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        page.on("request", request)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the current page (WCAG 2.x A and AA, and best practices).

    The script is evaluated through the DevTools protocol, which the page's CSP does not govern,
    so the policy under test stays exactly as served.
    """
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return list(result)


@dataclass
class AxeReport:
    pages: dict[str, dict[str, int]] = field(default_factory=dict)  # page -> impact -> count
    serious: list[str] = field(default_factory=list)

    def check(self, page: Any, name: str) -> None:
        violations = axe_violations(page)
        counts: dict[str, int] = {}
        for v in violations:
            impact = v["impact"] or "unknown"
            counts[impact] = counts.get(impact, 0) + 1
            if impact in ("serious", "critical"):
                self.serious.append(f"{name}: {v['id']} ({impact}) {v['help']} at {v['nodes']}")
        self.pages[name] = counts

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"pages": self.pages, "serious": self.serious}, indent=2))
