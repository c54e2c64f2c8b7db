"""``load_json``: every malformed JSON a client can send is a 400 invalid_request, never a 500."""

from __future__ import annotations

import json

import pytest

from alttext.errors import InvalidRequest
from alttext.http.body import MAX_JSON_DEPTH, load_json


def nested(depth: int) -> str:
    """``depth`` arrays inside each other, a 1 in the middle."""
    return "[" * depth + "1" + "]" * depth


def test_well_formed_json_is_returned_as_parsed() -> None:
    doc = {"items": [{"id": "a", "keywords": ["x", "y"]}], "n": -12.5, "ok": True, "none": None}
    assert load_json(json.dumps(doc).encode()) == doc
    assert load_json('"just a string"') == "just a string"
    assert load_json("1" * 4300) == int("1" * 4300)  # Python's limit itself is fine


def test_nesting_up_to_the_limit_is_accepted() -> None:
    value = load_json(nested(MAX_JSON_DEPTH))
    for _ in range(MAX_JSON_DEPTH):
        assert isinstance(value, list)
        value = value[0]
    assert value == 1
    objects = '{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH
    assert load_json(objects) is not None


DEEP = f"The body nests arrays and objects too deeply (at most {MAX_JSON_DEPTH} levels)."


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (nested(MAX_JSON_DEPTH + 1), DEEP),
        ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), DEEP),
        (nested(1_000), DEEP),  # RecursionError inside Python's parser
        (nested(100_000), DEEP),
        ("[" * 100_000, DEEP),  # unterminated, but too deep before it is malformed
        ("1" * 5_000, "The body holds a number with too many digits."),
        ('{"max_length": ' + "9" * 5_000 + "}", "The body holds a number with too many digits."),
        ("[NaN]", "The body holds NaN, which is not JSON."),
        ('{"a": Infinity}', "The body holds Infinity, which is not JSON."),
        ("-Infinity", "The body holds -Infinity, which is not JSON."),
        ("{", "The body is not valid JSON."),
        ("", "The body is not valid JSON."),
        (b"\xff\xfe\x00{", "The body is not valid JSON."),
        (b'{"a": "\xc3"}', "The body is not valid JSON."),
    ],
)
def test_malformed_json_is_a_400_invalid_request(raw: str | bytes, detail: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        load_json(raw.encode() if isinstance(raw, str) else raw)
    assert caught.value.http_status == 400
    assert caught.value.code == "invalid_request"
    assert caught.value.detail == detail
    # Nothing of the input is chained to the error (a traceback would carry it to the log).
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_the_error_names_what_was_parsed() -> None:
    with pytest.raises(InvalidRequest, match=r"^Form field 'language' is not valid JSON\.$"):
        load_json("[en", what="Form field 'language'")
