"""The JSON log lines: plain text (no ANSI colour codes), extras kept."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import click
import pytest

from alttext.logging_setup import JsonFormatter


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger named like uvicorn's, writing through our formatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("uvicorn.error.test_logging_setup")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_uvicorn_color_message_is_dropped(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    # What uvicorn.server does at start-up: the same message, coloured, in extra["color_message"].
    color_message = "Uvicorn running on " + click.style("%s://%s:%d", bold=True) + " (Press CTRL+C)"
    assert "\x1b" in color_message
    logger.info(
        "Uvicorn running on %s://%s:%d (Press CTRL+C)",
        "http",
        "127.0.0.1",
        8000,
        extra={"color_message": color_message},
    )
    [line] = lines(stream)
    assert "\x1b" not in line
    assert "\\u001b" not in line.lower()
    record = json.loads(line)
    assert "color_message" not in record
    assert record["event"] == "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C)"
    assert record["logger"] == "uvicorn.error.test_logging_setup"


def test_ansi_codes_are_stripped_from_messages_and_values(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.warning(
        "worker %s " + click.style("stopped", fg="red"),
        click.style("w-1", fg="green", bold=True),
        extra={"phase": click.style("shutdown", underline=True), "detail": ["\x1b[2Kdone"]},
    )
    [line] = lines(stream)
    assert "\x1b" not in line
    assert "\\u001b" not in line.lower()
    record = json.loads(line)
    assert record["event"] == "worker w-1 stopped"
    assert record["phase"] == "shutdown"
    assert record["detail"] == ["done"]


def test_normal_extras_survive(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info(
        "request done",
        extra={"request_id": "req_123", "status": 201, "duration_ms": 12.5, "bytes": None},
    )
    [line] = lines(stream)
    record = json.loads(line)
    assert record["event"] == "request done"
    assert record["level"] == "info"
    assert record["request_id"] == "req_123"
    assert record["status"] == 201
    assert record["duration_ms"] == 12.5
    assert record["bytes"] is None
    assert record["ts"].endswith("+00:00")


def test_exceptions_keep_type_and_traceback(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"request_id": "req_9"})
    record = json.loads(lines(stream)[0])
    assert record["error_type"] == "ValueError"
    assert "Traceback" in record["traceback"]
    assert record["request_id"] == "req_9"


def test_image_metadata_read_at_debug_never_reaches_a_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Pillow logs each EXIF tag's value as it reads it, at DEBUG (a GPS position included):
    even with the service's level at DEBUG, none of it is logged."""
    from PIL import Image

    from alttext.logging_setup import configure_logging

    root = logging.getLogger()
    # A fresh configuration (restored afterwards), keeping caplog's own handler.
    fresh = [h for h in root.handlers if not getattr(h, "_alttext", False)]
    monkeypatch.setattr(root, "handlers", fresh)
    monkeypatch.setattr(root, "level", root.level)
    for name in ("PIL", "PIL.TiffImagePlugin"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    configure_logging("DEBUG")
    exif = Image.Exif()
    exif[0x010E] = "secret-description"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", exif=exif.tobytes())
    with caplog.at_level(logging.DEBUG, logger="alttext"):
        read = Image.open(io.BytesIO(buf.getvalue())).getexif()
        assert read[0x010E] == "secret-description"
        assert read.get_ifd(0x8825)
    assert not [r for r in caplog.records if r.name.startswith("PIL")], caplog.text
    assert "secret-description" not in caplog.text
