"""The uvicorn options of ``alttext serve``."""

from __future__ import annotations

from alttext.http.server import uvicorn_options
from tests.conftest import make_settings


def test_serve_options_cap_the_head_for_h11_and_keep_uvicorns_logs_out() -> None:
    settings = make_settings("sqlite+aiosqlite:///:memory:", max_header_bytes=4096)
    assert uvicorn_options(settings) == {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "limit_concurrency": 1024,
        "timeout_graceful_shutdown": 30,
        "h11_max_incomplete_event_size": 4096,
    }
