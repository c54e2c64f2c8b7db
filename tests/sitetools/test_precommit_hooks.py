"""The pre-commit manifest (.pre-commit-hooks.yaml): both hooks run the CLI on every file the
site tools read, and only on those (the ``files`` regex, as pre-commit applies it: re.search on
the path)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alttext.sitetools.documents import (
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    TEMPLATE_SUFFIXES,
    kind_of,
)

MANIFEST = Path(__file__).parents[2] / ".pre-commit-hooks.yaml"
ACCEPTED = {s.lstrip(".") for s in HTML_SUFFIXES + TEMPLATE_SUFFIXES + MARKDOWN_SUFFIXES}


def hooks() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, list)
    return {hook["id"]: hook for hook in loaded}


def test_the_manifest_names_both_hooks() -> None:
    found = hooks()
    assert set(found) == {"alttext-audit", "alttext-fix"}
    audit, fix = found["alttext-audit"], found["alttext-fix"]
    assert audit["entry"] == "alttext audit"
    assert audit["args"] == ["--fail-on", "error"]
    assert fix["entry"] == "alttext fix --write"
    assert fix["stages"] == ["manual"]
    for hook in (audit, fix):
        assert hook["language"] == "python"
        assert hook["name"]
        assert hook["description"]
        # identify's tags (html, markdown) miss .mdx and templates: the regex decides alone.
        assert "types" not in hook
        assert "types_or" not in hook
        assert hook["files"] == audit["files"]


def test_the_files_regex_lists_exactly_the_suffixes_the_audit_reads() -> None:
    files = hooks()["alttext-audit"]["files"]
    m = re.fullmatch(r"\(\?i\)\\\.\(([a-z0-9|]+)\)\$", files)
    assert m is not None, files
    assert set(m.group(1).split("|")) == ACCEPTED


@pytest.mark.parametrize("suffix", sorted(ACCEPTED))
def test_every_accepted_suffix_matches(suffix: str) -> None:
    pattern = re.compile(hooks()["alttext-audit"]["files"])
    for name in (f"page.{suffix}", f"docs/sub dir/Page.{suffix.upper()}"):
        assert pattern.search(name), name
        assert kind_of(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "app.py",
        "notes.txt",
        "page.html.bak",
        "README",
        "style.css",
        "img/photo.png",
        "md",
        "x.mdxx",
    ],
)
def test_other_files_do_not_match(name: str) -> None:
    assert not re.search(hooks()["alttext-audit"]["files"], name)
    assert kind_of(name) is None
