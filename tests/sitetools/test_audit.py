"""audit: findings as text, JSON and SARIF 2.1.0 (checked with the OASIS schema); exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
from typer.testing import CliRunner

from alttext.cli import app
from alttext.sitetools.documents import load
from alttext.sitetools.findings import audit
from alttext.sitetools.sarif import to_sarif
from tests.sitetools.helpers import CORPUS

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
runner = CliRunner()


def rules_at(name: str) -> set[tuple[int, int, str]]:
    return {(f.line, f.column, f.rule) for f in audit(load(CORPUS / name))}


def test_audit_rules_on_malformed_html() -> None:
    found = rules_at("malformed.html")
    assert {
        (11, 1, "missing-alt"),
        (12, 51, "missing-alt"),
        (21, 17, "empty-alt-in-link"),
        (23, 1, "alt-placeholder"),
        (23, 1, "alt-repeated"),
        (24, 1, "alt-redundant-opening"),
        (25, 1, "alt-file-name"),
    } <= found
    assert not any(line in (22, 26, 32) for line, _, _ in found)  # alt="", bare alt, template


def test_audit_rules_on_markdown_and_nearby_text() -> None:
    found = rules_at("tricky.md")
    assert (12, 2, "missing-alt") in found
    assert (33, 34, "missing-alt") in found
    from alttext.sitetools.documents import parse

    doc = parse(
        "x.html",
        '<p>Our team at the summer party</p><img src=a alt="Our team at the summer party">'
        '<img src=b alt="https://example.org/x.png"><img src=c alt="' + "long " * 40 + '">',
        "html",
    )
    assert [f.rule for f in audit(doc)] == ["alt-copies-text", "alt-url", "alt-too-long"]


def test_sarif_validates_against_the_schema() -> None:
    findings = audit(load(CORPUS / "malformed.html")) + audit(load(CORPUS / "tricky.md"))
    log = to_sarif(findings)
    validator = jsonschema_rs.validator_for(SCHEMA)
    errors = [e.message for e in validator.iter_errors(log)]
    assert errors == []
    assert len(log["runs"][0]["results"]) == len(findings)
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert not validator.is_valid(broken)  # the schema check can fail


def test_cli_audit_text_json_sarif_and_exit_codes(tmp_path: Path) -> None:
    target = str(CORPUS / "malformed.html")
    result = runner.invoke(app, ["audit", target])
    assert result.exit_code == 1
    assert f"{target}:11:1: error [missing-alt]" in result.stdout
    result = runner.invoke(app, ["audit", "--json", target])
    body = json.loads(result.stdout)
    assert set(body) == {"files", "images", "findings"}
    assert body["files"] == 1
    assert set(body["findings"][0]) == {
        "file", "line", "column", "rule", "severity", "message", "src", "alt"
    }  # fmt: skip
    result = runner.invoke(app, ["audit", "--sarif", target])
    assert jsonschema_rs.validator_for(SCHEMA).is_valid(json.loads(result.stdout))
    assert runner.invoke(app, ["audit", "--fail-on", "never", target]).exit_code == 0
    only_warnings = tmp_path / "w.html"
    only_warnings.write_text('<img src="a.png" alt="image">')
    assert runner.invoke(app, ["audit", str(only_warnings)]).exit_code == 0
    assert runner.invoke(app, ["audit", "--fail-on", "warning", str(only_warnings)]).exit_code == 1
    clean = tmp_path / "ok.md"
    clean.write_text("![A red tile on a white wall](a.png)\n")
    assert runner.invoke(app, ["audit", "--fail-on", "warning", str(clean)]).exit_code == 0
    assert runner.invoke(app, ["audit", "--json", "--sarif", str(clean)]).exit_code == 2
    assert runner.invoke(app, ["audit", str(tmp_path / "nope.html")]).exit_code == 2


@pytest.mark.parametrize("folder_finds", [True])
def test_cli_audit_walks_folders(tmp_path: Path, folder_finds: bool) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("![](x.png)\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "b.html").write_text("<img src=x>")
    result = runner.invoke(app, ["audit", "--json", str(tmp_path)])
    assert json.loads(result.stdout)["files"] == 1
