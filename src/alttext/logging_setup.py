"""Structured logs: one JSON object a line, with the fields passed in ``extra``.

Only ids, sizes, codes and timings are ever passed; never image bytes, alt text, URLs or keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the traceback's code locations; exception messages can hold user input.
            out["error_type"] = record.exc_info[0].__name__
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


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
    # its parameters at DEBUG (alt text, e-mail addresses): keep them quiet.
    for name in ("httpx", "httpcore", "uvicorn.access", "RapidOCR", "rapidocr", "aiosqlite"):
        logging.getLogger(name).setLevel(logging.WARNING)
