"""The usage chart's geometry: days filled in, a scale that fits, labels that do not collide."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from alttext.usage.service import UsageRow
from alttext.web import chart


def _row(period: str, model: str | None, requests: int, ok: int) -> UsageRow:
    return UsageRow(period, model, requests, ok, requests - ok, ok, 0, 0, 0.0)


def test_days_are_filled_in_and_models_summed() -> None:
    rows = [
        _row("2026-11-30", "a", 3, 2),
        _row("2026-11-30", "b", 1, 1),
        _row("2026-11-02", "a", 5, 5),
    ]
    days = chart.days_from_rows(rows, date(2026, 11, 30))
    assert len(days) == 30
    assert days[0].day == date(2026, 11, 1)
    assert (days[-1].requests, days[-1].succeeded, days[-1].failed, days[-1].credits) == (
        4,
        3,
        1,
        3,
    )
    assert days[1].requests == 5
    assert sum(d.requests for d in days) == 9


@pytest.mark.parametrize(
    ("value", "top"), [(0, 4), (3, 4), (5, 5), (6, 10), (11, 20), (21, 50), (501, 1000)]
)
def test_scale(value: int, top: int) -> None:
    assert chart.nice_max(value) == top


def test_bars_stay_inside_and_stack() -> None:
    rows = [_row("2026-11-30", "a", 10, 7)]
    built = chart.build(chart.days_from_rows(rows, date(2026, 11, 30)))
    last = built.bars[-1]
    assert last.ok_y + last.ok_height == built.baseline
    assert last.failed_y + last.failed_height == pytest.approx(last.ok_y)
    assert all(b.x >= chart.LEFT and b.x + b.width <= chart.WIDTH for b in built.bars)
    xs = [x for x, _, _ in built.labels]
    assert all(b - a > 60 for a, b in itertools.pairwise(xs))  # room for "Nov 30"
    assert built.labels[-1][2] == "end"
