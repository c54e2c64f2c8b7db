"""Reading request bodies with a hard cap, entirely in memory, and parsing JSON from clients.

Every byte read here has been counted on the request's memory lease by ``RequestGuard``'s
receive channel (``alttext.inflight``): a body the budget cannot take fails its read with 503.

Starlette's own form parser spools uploaded parts over 1 MB to temporary files; images must
never touch disk, so multipart bodies are parsed here into memory with python-multipart's
streaming parser, under the same cap as every other body. Every JSON a client sends (bodies,
JSON-valued form fields, and the bodies FastAPI validates, see ``alttext.http.routing``) is
parsed by ``load_json``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from alttext.errors import InvalidRequest, RequestTooLarge

__all__ = [
    "MAX_JSON_DEPTH",
    "FormParts",
    "RequestTooLarge",
    "UploadedFile",
    "capped_stream",
    "load_json",
    "read_body",
    "read_multipart",
]

MAX_FIELDS = 40
MAX_FIELD_BYTES = 64 * 1024
# Our deepest document is a batch: object > items list > item > keywords list.
MAX_JSON_DEPTH = 32


class _NotJson(ValueError):
    """NaN, Infinity or -Infinity: Python's parser takes them, JSON (RFC 8259) has no such value."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep(what: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} nests arrays and objects too deeply (at most {MAX_JSON_DEPTH} levels).",
        status=400,
    )


def load_json(raw: bytes | str, *, what: str = "The body") -> Any:
    """Parse JSON sent by a client; anything malformed is a 400 ``invalid_request``, never a 500.

    Besides bad syntax and bytes that are not UTF-8 this refuses what Python's parser raises
    other errors for, or takes though it is not JSON: nesting deeper than ``MAX_JSON_DEPTH``
    (around 1,000 levels the parser raises RecursionError), integers over Python's
    4,300-digit conversion limit (ValueError), and NaN/Infinity.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep(what) from None
    except _NotJson as exc:
        raise InvalidRequest(f"{what} holds {exc}, which is not JSON.", status=400) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidRequest(f"{what} is not valid JSON.", status=400) from None
    except ValueError:
        # Only the integer conversion limit is left: valid JSON, but too many digits to read.
        raise InvalidRequest(f"{what} holds a number with too many digits.", status=400) from None
    if isinstance(value, dict | list) and _deeper_than(value, MAX_JSON_DEPTH):
        raise _too_deep(what)
    return value


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidRequest("Content-Length is not a number.", status=400) from exc


async def capped_stream(request: Request, cap: int) -> AsyncIterator[bytes]:
    """Yield the body's chunks; refuse a declared or actual size over ``cap`` with 413."""
    declared = _declared_length(request)
    if declared is not None and declared > cap:
        raise RequestTooLarge(f"The request body is {declared} bytes; the limit is {cap} bytes.")
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            raise RequestTooLarge(f"The request body is over the limit of {cap} bytes.")
        if chunk:
            yield chunk


async def read_body(request: Request, cap: int) -> bytes:
    # Joined once at the end: one copy of the body, not a growing buffer and a copy of it.
    chunks = [chunk async for chunk in capped_stream(request, cap)]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class FormParts:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class _Collector:
    """python-multipart callbacks that keep every part in memory, with caps."""

    def __init__(self, charset: str) -> None:
        self.charset = charset
        self.parts = FormParts()
        self.count = 0
        self.part = _Part()
        self.header_field = bytearray()
        self.header_value = bytearray()

    def on_part_begin(self) -> None:
        self.count += 1
        if self.count > MAX_FIELDS:
            raise InvalidRequest(f"Too many form fields (at most {MAX_FIELDS}).", status=400)
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers.append((bytes(self.header_field).lower(), bytes(self.header_value)))
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        for name, value in self.part.headers:
            if name == b"content-disposition":
                _, params = parse_options_header(value)
                self.part.name = params.get(b"name", b"").decode(self.charset, "replace")
                if b"filename" in params:
                    self.part.filename = params[b"filename"].decode(self.charset, "replace")
            elif name == b"content-type":
                self.part.content_type = value.decode("latin-1")
        if not self.part.name:
            raise InvalidRequest("A form part has no name.", status=400)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        # File parts are capped by the body cap; text fields by MAX_FIELD_BYTES. A view, so
        # the chunk is copied once, into the part, not first into a slice.
        self.part.data += memoryview(data)[start:end]
        if self.part.filename is None and len(self.part.data) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"Form field {self.part.name!r} is too long.", status=400)

    def on_part_end(self) -> None:
        part = self.part
        if part.filename is not None:
            if part.name in self.parts.files:
                raise InvalidRequest(f"More than one file in field {part.name!r}.", status=400)
            self.parts.files[part.name] = UploadedFile(
                part.filename, part.content_type, bytes(part.data)
            )
        else:
            try:
                text = part.data.decode(self.charset)
            except UnicodeDecodeError as exc:
                raise InvalidRequest(
                    f"Form field {part.name!r} is not valid text.", status=400
                ) from exc
            self.parts.fields.setdefault(part.name, []).append(text)
        self.part = _Part()


async def read_multipart(request: Request, cap: int) -> FormParts:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest("The multipart body has no boundary.", status=400)
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "utf-8"
    collector = _Collector(charset)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": collector.on_part_begin,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
        },
    )
    try:
        async for chunk in capped_stream(request, cap):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise InvalidRequest("The multipart body is malformed.", status=400) from exc
    return collector.parts
