"""Audit findings as SARIF 2.1.0, the format code hosts show inline (GitHub code scanning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alttext import __version__
from alttext.sitetools.findings import RULES, AuditFinding

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://www.w3.org/WAI/tutorials/images/"


def _uri(file: str) -> str:
    if file.startswith(("http://", "https://")):
        return file
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_uri()
    return path.as_posix()


def to_sarif(findings: list[AuditFinding]) -> dict[str, Any]:
    rule_ids = list(RULES)
    rules = [
        {
            "id": rule,
            "name": "".join(part.title() for part in rule.split("-")),
            "shortDescription": {
                "text": RULES[rule][1].replace("{length}", "N").replace("{limit}", "the limit")
            },
            "defaultConfiguration": {"level": RULES[rule][0]},
            "helpUri": INFO_URI,
        }
        for rule in rule_ids
    ]
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": rule_ids.index(f.rule),
            "level": f.severity,
            "message": {"text": f.message + (f" (src: {f.src})" if f.src else "")},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.file)},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }
            ],
        }
        for f in findings
    ]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "alttext",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
