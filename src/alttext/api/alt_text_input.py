"""Parsing ``POST /v1/alt-text`` bodies (JSON or multipart) into one validated request.

The image is decoded once and the body's copies of it are let go as soon as it is: a JSON
body's base64 text leaves the parsed request (its ``image`` becomes ``""``, as for an upload),
so only the decoded bytes live on while the engine works.
"""

from __future__ import annotations

import asyncio
import binascii
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from alttext.errors import InvalidImage, InvalidRequest, UnsupportedMediaType
from alttext.generation.image_input import decode_image_field
from alttext.generation.schemas import AltTextRequest
from alttext.http.body import load_json, read_body, read_multipart

# Fields that may repeat in a form, or hold a comma-separated value or a JSON list.
LIST_FIELDS = ("language", "keywords")
# Base64 is 4/3 of the bytes; leave room for the other fields.
_FIELDS_ALLOWANCE = 256 * 1024
# Base64 is decoded in slices of this many characters (a multiple of 4), the event loop
# getting a turn between two: a 20 MB image is ~27 slices of ~2 ms, not one stall of ~50 ms.
_SLICE = 1 << 20
# The data URI prefix generation.image_input accepts.
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[^;,]*)*);base64,", re.I)


@dataclass(frozen=True)
class ParsedRequest:
    options: AltTextRequest
    image: bytes | None  # uploaded or decoded bytes; None when image_url is given


def validation_problem(exc: ValidationError) -> InvalidRequest:
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]) or None, "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return InvalidRequest("The request has invalid or missing fields.", errors=errors)


async def decode_image(value: str) -> bytes:
    """The JSON ``image`` field as bytes, as ``decode_image_field`` defines it, fast.

    What clients send — standard, padded base64 without whitespace, bare or in a data URI — is
    decoded in one strict pass (C speed, no copy of the text first). Anything else (line breaks,
    the URL-safe alphabet, missing padding, or not base64 at all) takes
    ``decode_image_field``, which accepts or refuses it with its own messages.
    """
    start = 0
    if value.startswith("data:"):
        match = _DATA_URI.match(value, 0, 1024)
        if match is None:
            return decode_image_field(value)
        start = match.end()
    if start == len(value):
        return decode_image_field(value)
    parts: list[bytes] = []
    try:
        for offset in range(start, len(value), _SLICE):
            if offset > start:
                await asyncio.sleep(0)
            piece = value[offset : offset + _SLICE]
            if piece[-1] == "=" and offset + _SLICE < len(value):
                return decode_image_field(value)  # padding before the end: not one base64 text
            parts.append(binascii.a2b_base64(piece, strict_mode=True))
    except (binascii.Error, ValueError):
        return decode_image_field(value)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return data if data else decode_image_field(value)


def body_caps(max_image_bytes: int) -> tuple[int, int]:
    """(JSON cap, multipart cap) in bytes."""
    return max_image_bytes * 4 // 3 + _FIELDS_ALLOWANCE, max_image_bytes + _FIELDS_ALLOWANCE


def _form_value(name: str, values: list[str]) -> Any:
    if name in LIST_FIELDS:
        if len(values) > 1:
            return values
        value = values[0].strip()
        if value.startswith("["):
            return load_json(value, what=f"Form field {name!r}")
        if name == "keywords":
            return [v.strip() for v in value.split(",") if v.strip()]
        return [v.strip() for v in value.split(",")] if "," in value else value
    if len(values) > 1:
        raise InvalidRequest(f"Form field {name!r} is given more than once.")
    return values[0]


async def parse_alt_text_request(request: Request, max_image_bytes: int) -> ParsedRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    json_cap, multipart_cap = body_caps(max_image_bytes)
    if content_type == "application/json" or content_type.endswith("+json"):
        payload = load_json(await read_body(request, json_cap))
        if not isinstance(payload, dict):
            raise InvalidRequest("The body must be a JSON object.", status=400)
        try:
            options = AltTextRequest.model_validate(payload)
        except ValidationError as exc:
            raise validation_problem(exc) from None
        del payload  # the request now holds the only reference to the base64 text
        if options.image is None:
            return ParsedRequest(options=options, image=None)
        image = await decode_image(options.image)
        # Decoded once: the text goes, only the bytes stay (as for an upload).
        return ParsedRequest(options=options.model_copy(update={"image": ""}), image=image)
    if content_type == "multipart/form-data":
        form = await read_multipart(request, multipart_cap)
        if "image" in form.fields:
            raise InvalidRequest(
                "In a multipart body, send the image as a file in field 'image' "
                "(base64 is for JSON bodies)."
            )
        unknown_files = set(form.files) - {"image"}
        if unknown_files:
            raise InvalidRequest(f"Unexpected file field(s): {', '.join(sorted(unknown_files))}.")
        upload = form.files.get("image")
        payload = {name: _form_value(name, values) for name, values in form.fields.items()}
        if upload is not None and "image_url" in payload:
            raise InvalidRequest("Give exactly one of an uploaded image and image_url.")
        if upload is None and "image_url" not in payload:
            raise InvalidRequest("Upload the image in field 'image' or give image_url.")
        try:
            options = AltTextRequest.model_validate(
                {**payload, "image": "" if upload is not None else None}
            )
        except ValidationError as exc:
            raise validation_problem(exc) from None
        if upload is not None and not upload.data:
            raise InvalidImage("The uploaded file is empty.")
        return ParsedRequest(options=options, image=upload.data if upload else None)
    raise UnsupportedMediaType("Send the request as application/json or multipart/form-data.")
