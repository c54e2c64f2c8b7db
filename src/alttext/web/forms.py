"""Reading the dashboard's forms: capped, in memory, CSRF checked before anything else.

Small forms are ``application/x-www-form-urlencoded`` (64 KB at most; a caller may allow more,
as the jobs page does for its list of up to 10,000 image URLs); the Try it form is
``multipart/form-data``, parsed in memory by ``alttext.http.body`` so an image never touches
disk (Starlette's own parser would spool it to a temporary file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.requests import Request

from alttext.errors import InvalidRequest
from alttext.http.body import UploadedFile, read_body, read_multipart
from alttext.process import Services
from alttext.web.session import CSRF_FIELD, check_csrf

MAX_FORM_BYTES = 64 * 1024
# The image cap plus room for the other fields.
_MULTIPART_ALLOWANCE = 256 * 1024


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def checked(self, name: str) -> bool:
        return name in self.fields and self.get(name) not in ("", "0", "false", "off")


async def read_form(
    request: Request, services: Services, *, files: bool = False, max_bytes: int = MAX_FORM_BYTES
) -> Form:
    """The posted form, after its CSRF token was checked (403 otherwise). ``max_bytes`` raises
    the cap of an url-encoded form that carries a long list (the jobs page's image URLs)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        raw = await read_body(request, max_bytes)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("The form is not valid UTF-8.", status=400) from exc
        form = Form(fields=parse_qs(text, keep_blank_values=True, max_num_fields=60))
    elif content_type == "multipart/form-data":
        cap = (services.settings.max_image_bytes if files else 0) + _MULTIPART_ALLOWANCE
        parts = await read_multipart(request, cap)
        form = Form(fields=parts.fields, files=parts.files if files else {})
    else:  # no form at all: nothing carries a token, so this is the CSRF refusal (403)
        form = Form()
    check_csrf(request, services, form.get(CSRF_FIELD) or None)
    return form
