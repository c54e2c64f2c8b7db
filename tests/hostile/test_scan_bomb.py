"""A CPU bomb that fits in 350 kB: a progressive JPEG whose last scan is repeated 20,000 times.

libjpeg decodes each scan of a progressive JPEG over the whole image's coefficients, so its time
grows with the number of scans, and nothing caps that number (libjpeg-turbo's djpeg has
``-maxscans``; Pillow offers no such limit). A flat image's refinement scans take 14 bytes each
(one end-of-band run), so a few hundred kilobytes keep a CPU worker busy for minutes: here, on a
2000x2000 image (4 megapixels, far under every limit), 2,000 extra scans took 12 s and 20,000
about two minutes; a 1.6 MB upload of 7000x7000 with 10,000 scans, about twenty. ``read_header``
is unaffected (it decodes nothing).

The decode runs in a child process, so the test ends on time whatever the engine does.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pytest
from PIL import Image

from alttext.describe.errors import InvalidImage
from alttext.describe.image import prepare_image, read_header

DEADLINE_S = 3.0
# Reads the image from stdin once imports are done, prepares it, prints the outcome.
CHILD = """
import sys
from alttext.describe.errors import AppError
from alttext.describe.image import prepare_image
print("ready", flush=True)
data = sys.stdin.buffer.read()
try:
    prepare_image(data)
    print("ok", flush=True)
except AppError as exc:
    print(exc.http_status, flush=True)
"""


def _scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan: its SOS segment and the entropy-coded data after it."""
    found, at = [], 2
    while at < len(data) - 1:
        marker = data[at + 1]
        if marker == 0xD9:  # EOI
            break
        end = at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == 0xDA:  # SOS: the data runs to the next marker (not FF00, not RSTn)
            while not (data[end] == 0xFF and data[end + 1] not in (0, *range(0xD0, 0xD8))):
                end += 1
            found.append((at, end))
        at = end
    return found


def progressive_scan_bomb(side: int = 2000, extra_scans: int = 20_000) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 30, 200)).save(
        buf, "JPEG", progressive=True, quality=90, subsampling=0
    )
    data = buf.getvalue()
    start, end = _scans(data)[-1]  # a refinement scan: an end-of-band run, 14 bytes
    eoi = data.rindex(b"\xff\xd9")
    return data[:eoi] + data[start:end] * extra_scans + data[eoi:]


def test_the_bomb_is_small_and_its_header_harmless() -> None:
    data = progressive_scan_bomb()
    assert len(data) < 400_000
    assert len(_scans(data)) > 20_000
    # Refused from its bytes before any decoding, so the decorative (header-only) path too.
    with pytest.raises(InvalidImage, match="scans"):
        read_header(data)
    header = read_header(progressive_scan_bomb(extra_scans=0))
    assert (header.width, header.height) == (2000, 2000)
    # Its 10 ordinary scans take well under a second.
    started = time.monotonic()
    prepare_image(progressive_scan_bomb(extra_scans=0))
    assert time.monotonic() - started < DEADLINE_S


def test_a_jpeg_with_20000_scans_is_refused_or_prepared_within_the_deadline() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == b"ready"
        child.stdin.write(progressive_scan_bomb())
        child.stdin.close()
        started = time.monotonic()
        try:
            child.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"prepare_image is still decoding after {DEADLINE_S} s")
        outcome = child.stdout.read().strip().decode()
        assert outcome in ("ok", "400", "413"), outcome
        assert time.monotonic() - started < DEADLINE_S
    finally:
        child.kill()
        child.wait()
