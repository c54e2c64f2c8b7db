"""``/docs``: the API reference, rendered on the server from the app's own OpenAPI document.

No script, no CDN, no third-party request: the page is plain HTML built from ``/openapi.json``
(the same document, so it cannot drift), readable with a screen reader and without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class Param:
    name: str
    where: str
    required: bool
    type: str
    description: str


@dataclass
class Operation:
    id: str
    method: str
    path: str
    summary: str
    description: str
    auth: bool
    params: list[Param] = field(default_factory=list)
    body: list[tuple[str, str]] = field(default_factory=list)  # media type, schema
    responses: list[tuple[str, str, str]] = field(default_factory=list)  # status, meaning, schema


@dataclass
class Schema:
    name: str
    description: str
    fields: list[Param]


@dataclass
class Reference:
    title: str
    version: str
    description: str
    groups: list[tuple[str, list[Operation]]]
    schemas: list[Schema]


def type_of(schema: dict[str, Any] | None) -> str:
    """A short human name for a JSON schema: ``AltTextResponse``, ``array of string``, …"""
    if not schema:
        return "any"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            names = [type_of(s) for s in schema[key] if s.get("type") != "null"]
            nullable = any(s.get("type") == "null" for s in schema[key])
            return " or ".join(names) + (" (or null)" if nullable else "")
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {type_of(schema.get('items'))}"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _operation(path: str, method: str, op: dict[str, Any]) -> Operation:
    out = Operation(
        id=str(op.get("operationId", f"{method}-{path}")),
        method=method.upper(),
        path=path,
        summary=str(op.get("summary", "")),
        description=str(op.get("description", "")),
        auth=bool(op.get("security")),
    )
    for p in op.get("parameters", []):
        out.params.append(
            Param(
                name=str(p.get("name")),
                where=str(p.get("in")),
                required=bool(p.get("required")),
                type=type_of(p.get("schema")),
                description=str(p.get("description") or p.get("schema", {}).get("description", "")),
            )
        )
    for media, content in (op.get("requestBody", {}).get("content") or {}).items():
        out.body.append((media, type_of(content.get("schema"))))
    for status, response in sorted(op.get("responses", {}).items()):
        content = response.get("content") or {}
        schema = next((type_of(c.get("schema")) for c in content.values() if c), "")
        out.responses.append((str(status), str(response.get("description", "")), schema))
    return out


def reference(document: dict[str, Any]) -> Reference:
    info = document.get("info", {})
    groups: dict[str, list[Operation]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                op = item[method]
                tag = (op.get("tags") or ["other"])[0]
                groups.setdefault(str(tag), []).append(_operation(path, method, op))
    schemas = []
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        fields = [
            Param(
                name=prop_name,
                where="",
                required=prop_name in required,
                type=type_of(prop),
                description=str(prop.get("description", "")),
            )
            for prop_name, prop in (schema.get("properties") or {}).items()
        ]
        schemas.append(Schema(name, str(schema.get("description", "")), fields))
    return Reference(
        title=str(info.get("title", "API")),
        version=str(info.get("version", "")),
        description=str(info.get("description", "")),
        groups=sorted(groups.items()),
        schemas=schemas,
    )
