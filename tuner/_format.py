"""How the report writes numbers: one format per kind of quantity, used by every table, sentence and chart label.

Money keeps three significant digits below a dollar and cents above it, so `$0.960` sits next to `$6.33`, never
`$0.959790`; per-call costs are shown per 1,000 calls, where they read as ordinary amounts.
"""

from __future__ import annotations

import math

DAYS_PER_MONTH = 30  # what "per month" means in the report


def money(value: float) -> str:
    """Dollars: `$1,234`, `$6.33`, `$0.960`, `$0.00263`; `$0` for zero; a sign for negative amounts."""
    if value == 0 or not math.isfinite(value):
        return "$0" if value == 0 else "-"
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size >= 100:
        return f"{sign}${size:,.0f}"
    if size >= 1:
        return f"{sign}${size:,.2f}"
    if size < 1e-5:
        return f"{sign}<$0.00001"
    decimals = 2 - math.floor(math.log10(size))  # three significant digits
    return f"{sign}${size:.{decimals}f}"


def count(value: float) -> str:
    """A count of things: whole, with thousands separators."""
    return f"{round(value):,}"


def share(value: float) -> str:
    """A proportion in [0, 1] as a percentage: one decimal below 10%, none above."""
    percent = value * 100
    return f"{percent:.1f}%" if abs(percent) < 10 else f"{percent:.0f}%"


def seconds(value: float | None) -> str:
    """A latency: milliseconds below a second, seconds with two decimals above."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def gap(value: float) -> str:
    """A quality difference on the [-1, 1] scale, always signed."""
    return f"{value:+.3f}"


def window(days: float | None) -> str:
    """The length of a data window in the largest unit that keeps it above one."""
    if days is None:
        return "no length (a single instant)"
    hours = days * 24
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} seconds"
    if hours < 1:
        return f"{hours * 60:.0f} minutes"
    if hours < 36:
        return f"{hours:.1f} hours"
    return f"{days:.1f} days"
