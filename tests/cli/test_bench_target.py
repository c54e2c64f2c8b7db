"""The CLI startup target in `make bench` (bench/report.py): met only when every measured
command's median is under 500 ms. Canned numbers: no timing is asserted here."""

from __future__ import annotations

from typing import Any

from bench import report


def numbers(*medians: float | None) -> dict[str, Any]:
    commands = [
        {"command": f"alttext c{i}", "runs": 9, "median_ms": m} for i, m in enumerate(medians)
    ]
    return {"bare_python_ms": 26.0, "commands": commands}


def test_met_when_every_command_is_under_500_ms() -> None:
    row = report.cli_target(numbers(120.0, 480.0, 499.9))
    assert row["met"] is True
    assert "3 of 3 commands under 500 ms" in row["measured"]


def test_one_slow_command_fails_the_target_and_is_named() -> None:
    row = report.cli_target(numbers(120.0, 730.0, 300.0))
    assert row["met"] is False
    assert "slowest `alttext c1`: median 730 ms" in row["measured"]
    assert "**NO**" in report.targets_table([row])


def test_nothing_measured_is_not_a_pass() -> None:
    assert report.cli_target(numbers())["met"] is None
    assert report.cli_target(numbers(100.0, None))["met"] is None
