"""The request body of a chat completion, as sent."""

from __future__ import annotations

import json
import os

import httpx

from alttext.describe.providers.base import ModelRequest
from alttext.describe.providers.chat_wire import WireOptions, build_body, encode_body
from alttext.describe.types import DescribeOptions


def _request(user: str = "Describe the image.", image: bytes | None = None) -> ModelRequest:
    return ModelRequest(
        system="You write alt text.",
        user=user,
        image=image if image is not None else os.urandom(30_000),
        mime="image/jpeg",
        options=DescribeOptions(),
        json_schema={"type": "object", "properties": {"alt": {"type": "string"}}},
    )


_OPTIONS = WireOptions({"models": ["a/b", "c/d"]}, {"data_collection": "deny"}, True, 400)


def test_the_bytes_are_what_httpx_would_send_for_the_body() -> None:
    request = _request(user='Context: "café" — <b>naïve</b> \\ \u2028 end')
    content, _ = encode_body(request, _OPTIONS)
    expected = httpx.Request("POST", "http://x/", json=build_body(request, _OPTIONS)).content
    assert content == expected


def test_the_image_is_in_the_bytes_only() -> None:
    request = _request()
    content, body = encode_body(request, _OPTIONS)
    sent = json.loads(content)
    url = sent["messages"][-1]["content"][1]["image_url"]["url"]
    assert url == build_body(request, _OPTIONS)["messages"][-1]["content"][1]["image_url"]["url"]
    # The dict is for looking at: it holds a stand-in, not the image.
    shown = body["messages"][-1]["content"][1]["image_url"]["url"]
    assert shown.startswith("data:image/jpeg;base64,alttext-image-")
    assert "response_format" in body


def test_a_caller_text_that_looks_like_the_stand_in_changes_nothing() -> None:
    request = _request(user="alttext-image-00000000000000000000000000000000 alttext-image-")
    content, _ = encode_body(request, _OPTIONS)
    assert json.loads(content) == build_body(request, _OPTIONS)
