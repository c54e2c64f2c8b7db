"""The usage chart of the overview: 30 days as bars, drawn on the server as inline SVG.

Only geometry is computed here; the template draws it with SVG presentation attributes and CSS
classes (no ``style`` attribute: the CSP forbids inline style). The same numbers go into the
data table beside it, which is what a screen reader reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from alttext.usage.service import UsageRow

WIDTH = 640
HEIGHT = 200
TOP = 16
BOTTOM = 28  # room for the date labels
LEFT = 36  # room for the scale
DAYS = 30


@dataclass(frozen=True)
class Day:
    day: date
    requests: int
    succeeded: int
    failed: int
    credits: int

    @property
    def label(self) -> str:
        return f"{self.day:%b} {self.day.day}"


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    day: Day


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class Chart:
    days: list[Day]
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[tuple[float, str, str]]  # x, text, text-anchor: every 7th day and the last
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM

    @property
    def total_requests(self) -> int:
        return sum(d.requests for d in self.days)

    @property
    def total_credits(self) -> int:
        return sum(d.credits for d in self.days)

    @property
    def busiest(self) -> Day | None:
        top = max(self.days, key=lambda d: d.requests, default=None)
        return top if top and top.requests else None


def days_from_rows(rows: list[UsageRow], last: date, count: int = DAYS) -> list[Day]:
    """One entry per day, oldest first, with every model summed; days without use are zero."""
    totals: dict[str, list[int]] = {}
    for row in rows:
        t = totals.setdefault(row.period, [0, 0, 0, 0])
        t[0] += row.requests
        t[1] += row.succeeded
        t[2] += row.failed
        t[3] += row.credits
    out = []
    for offset in range(count - 1, -1, -1):
        day = last - timedelta(days=offset)
        r, ok, bad, cr = totals.get(day.isoformat(), [0, 0, 0, 0])
        out.append(Day(day, r, ok, bad, cr))
    return out


def nice_max(value: int) -> int:
    """The smallest of 4, 5, 10, 20, 50, 100, 200, 500, … that is at least ``value``."""
    for n in (4, 5):
        if value <= n:
            return n
    magnitude = 10
    while True:
        for step in (1, 2, 5):
            candidate = step * magnitude
            if value <= candidate:
                return candidate
        magnitude *= 10


def build(days: list[Day]) -> Chart:
    baseline = HEIGHT - BOTTOM
    plot_height = baseline - TOP
    top = nice_max(max((d.requests for d in days), default=0))
    slot = (WIDTH - LEFT) / max(1, len(days))
    bar_width = round(slot * 0.7, 2)
    bars = []
    for i, d in enumerate(days):
        ok_h = round(plot_height * d.succeeded / top, 2)
        bad_h = round(plot_height * d.failed / top, 2)
        x = round(LEFT + i * slot + (slot - bar_width) / 2, 2)
        bars.append(
            Bar(
                x=x,
                width=bar_width,
                ok_y=round(baseline - ok_h, 2),
                ok_height=ok_h,
                failed_y=round(baseline - ok_h - bad_h, 2),
                failed_height=bad_h,
                day=d,
            )
        )
    ticks = [Tick(round(baseline - plot_height * v / top, 2), v) for v in (0, top // 2, top)]
    last = len(days) - 1
    label_at = [i for i in range(0, last - 3, 7)] + ([last] if days else [])
    labels = [
        (
            round(bars[i].x + (bar_width if i == last else bar_width / 2), 2),
            days[i].label,
            "end" if i == last else "middle",
        )
        for i in label_at
    ]
    return Chart(days=days, bars=bars, ticks=ticks, labels=labels)
