"""Turning a JSON ``image`` field (base64 or a data URI) into bytes, strictly."""

from __future__ import annotations

import base64
import binascii
import re

from alttext.errors import InvalidImage

_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64,", re.I)
_WHITESPACE = re.compile(rb"\s+")


def decode_image_field(value: str) -> bytes:
    """Decode base64 (standard or URL-safe, whitespace allowed) or a base64 data URI."""
    text = value.strip()
    if text.startswith("data:"):
        match = _DATA_URI.match(text)
        if not match:
            raise InvalidImage("The data URI must be of the form data:image/...;base64,<data>.")
        text = text[match.end() :]
    if not text:
        raise InvalidImage("The image field is empty.")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InvalidImage("The image field is not valid base64.") from exc
    raw = _WHITESPACE.sub(b"", raw)
    if b"-" in raw or b"_" in raw:
        raw = raw.replace(b"-", b"+").replace(b"_", b"/")
    raw += b"=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage("The image field is not valid base64.") from exc
    if not data:
        raise InvalidImage("The image field decodes to no bytes.")
    return data
