"""Structured logs: one JSON object a line, with the fields passed in ``extra``.

Only ids, sizes, codes and timings are ever passed; never image bytes, alt text, URLs or keys.
Logs are plain text for machines: uvicorn's ``color_message`` extra (the message again, with ANSI
colour codes) is dropped, and any ANSI escape sequence left in a message or a value is removed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Extras that are terminal decoration, not data (uvicorn sets color_message on its records).
_DROPPED = {"color_message"}
# CSI sequences (colours, cursor moves), other two-byte escapes, then any ESC left alone.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|\x1b")


def _plain(value: Any) -> Any:
    """``value`` with every ANSI escape sequence removed from its strings, nested ones too."""
    if isinstance(value, str):
        return _ANSI.sub("", value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _plain(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _DROPPED and not key.startswith("_"):
                out[key] = _plain(value)
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the traceback's code locations; exception messages can hold user input.
            out["error_type"] = record.exc_info[0].__name__
            out["traceback"] = _plain(self.formatException(record.exc_info))
        return json.dumps(out, default=lambda v: _plain(str(v)))


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_alttext", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._alttext = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request lines or URLs at INFO, or (aiosqlite) every SQL statement with
    # its parameters at DEBUG (alt text, e-mail addresses), or (pyvips) the image bytes they
    # are given, or (Pillow) every EXIF tag's value it reads at DEBUG, GPS position included:
    # keep them quiet.
    for name in (
        "httpx",
        "httpcore",
        "aiohttp",
        "uvicorn.access",
        "RapidOCR",
        "rapidocr",
        "aiosqlite",
        "pyvips",
        "PIL",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
