"""The report's charts: matplotlib figures rendered as inline SVG, with axes, units and labels a reader can use.

Text stays text in the SVG (`svg.fonttype: none`), set in DejaVu Sans, the font matplotlib measures with, so a
browser lays the labels out at the size matplotlib reserved for them; figures are cropped to what they draw
(`bbox_inches="tight"`), so no label is cut at the edge. Output is deterministic: no date, ids salted per chart.
No pyplot: figures are plain objects, nothing global is left behind.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from tuner._format import money

_STYLE = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "axes.axisbelow": True,
    "legend.frameon": False,
}
_WIDTH = 6.4  # inches of plot and labels; the legend beside it keeps the whole within the page's column
BEFORE, AFTER, MARK, GREY, BAND = "#9aa5b1", "#2f6fb0", "#d1495b", "#6b7785", "#cfe8d4"


@dataclass(frozen=True)
class Gap:
    """One candidate's quality gap to the serving model: bounds and the point estimate (None when only bounds)."""

    label: str
    low: float
    high: float
    estimate: float | None


@contextmanager
def _figure(height: float, salt: str) -> Iterator[tuple[Axes, list[str]]]:
    """A one-axes figure; the caller draws, and the SVG lands in the list it was handed."""
    out: list[str] = []
    with mpl.rc_context({**_STYLE, "svg.hashsalt": salt}):
        figure = Figure(figsize=(_WIDTH, height))
        axes = figure.add_subplot()
        yield axes, out
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None})
    out.append(_inline(buffer.getvalue(), salt))


# An id attribute, or a reference to one (href="#id", url(#id)).
_ID_OR_REFERENCE = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def _inline(svg: str, salt: str) -> str:
    """The <svg> element alone (no XML prolog or DOCTYPE inside an HTML page), with a role for screen readers and
    its ids scoped to this chart: matplotlib numbers its groups from 1 in every figure (`figure_1`, `axes_1`), and
    ids must be unique in the page that holds all the charts."""
    start = svg.index("<svg")
    scope = "c" + hashlib.sha1(salt.encode()).hexdigest()[:10]
    svg = _ID_OR_REFERENCE.sub(lambda m: f"{m.group(1)}{scope}-{m.group(2)}", svg[start:].strip())
    return re.sub(r"^<svg ", '<svg role="img" ', svg, count=1)


def _legend(axes: Axes) -> None:
    """Beside the plot, never over the data."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _dollars(axes: Axes) -> None:
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: money(value)))


def _rows_height(rows: int) -> float:
    return 0.9 + 0.32 * max(rows, 1)


def cost_before_after(rows: Sequence[tuple[str, float, float]], salt: str) -> str:
    """Per task: cost per 1,000 calls today and expected under the policy (grouped horizontal bars)."""
    labels = [r[0] for r in rows]
    before = np.array([r[1] for r in rows])
    after = np.array([r[2] for r in rows])
    with _figure(_rows_height(len(rows) * 2), salt) as (axes, out):
        y = np.arange(len(rows))[::-1]
        bars_before = axes.barh(y + 0.2, before, 0.38, color=BEFORE, label="today (observed)")
        bars_after = axes.barh(y - 0.2, after, 0.38, color=AFTER, label="under the policy (expected)")
        for bars in (bars_before, bars_after):
            axes.bar_label(bars, labels=[money(v) for v in bars.datavalues], padding=3, fontsize=8)
        axes.set_yticks(y, labels)
        axes.set_xlabel("$ per 1,000 calls")
        axes.set_xlim(0, max(float(before.max(initial=0)), float(after.max(initial=0)), 1e-9) * 1.22)
        _dollars(axes)
        axes.grid(axis="y", visible=False)
        _legend(axes)
    return out[0]


def quality_gaps(rows: Sequence[Gap], margin: float, reference: str, salt: str) -> str:
    """Each candidate's anytime-valid bounds on its quality minus the serving model's, with the margin band: a
    candidate is acceptable when its whole interval lies right of -margin."""
    with _figure(_rows_height(len(rows)), salt) as (axes, out):
        y = np.arange(len(rows))[::-1]
        lows = np.array([r.low for r in rows])
        highs = np.array([r.high for r in rows])
        left = max(min(float(lows.min()), -margin) - 0.02, -1.0)
        right = min(max(float(highs.max()), 0.0) + 0.02, 1.0)
        axes.axvspan(-margin, right, color=BAND, label=f"within the margin ({margin:.3g})", zorder=0)
        axes.axvline(0, color=GREY, linewidth=1)
        axes.hlines(y, lows, highs, color=AFTER, linewidth=3, label="95% anytime-valid bounds")
        points = [(i, r.estimate) for i, r in zip(y, rows, strict=True) if r.estimate is not None]
        if points:
            axes.plot([p[1] for p in points], [p[0] for p in points], "o", color=MARK, label="estimate")
        axes.set_yticks(y, [r.label for r in rows])
        axes.set_ylim(-0.8, len(rows) - 0.2)
        axes.set_xlim(left, right)
        axes.set_xlabel(f"quality(candidate) − quality({reference})")
        _legend(axes)
    return out[0]


def lengths(values: np.ndarray, cap: int | None, current: int | None, salt: str) -> str:
    """The output-length distribution with the chosen cap and the max_tokens in force; a log axis when the caps
    sit far beyond most lengths (a linear axis would squeeze the calls into one bar)."""
    values = values[values > 0]
    with _figure(2.6, salt) as (axes, out):
        top = max(float(values.max(initial=1)), cap or 0, current or 0)
        typical = max(float(np.median(values)) if len(values) else 1.0, 1.0)
        log = top / typical > 20
        if log:
            edges = np.geomspace(max(float(values.min(initial=1)), 1.0), top * 1.05, 41)
            axes.set_xscale("log")
        else:
            edges = np.linspace(0, top * 1.05, 41)
        axes.hist(values, bins=edges, color=BEFORE, label=f"{len(values):,} calls")
        if current:
            axes.axvline(current, color=GREY, linestyle="--", linewidth=1.5, label=f"max_tokens today: {current:,}")
        if cap:
            axes.axvline(cap, color=MARK, linewidth=2, label=f"chosen cap: {cap:,}")
        axes.set_xlabel("output tokens per call" + (" (log scale)" if log else ""))
        axes.set_ylabel("calls")
        _legend(axes)
    return out[0]


def grouped_shares(rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[str], xlabel: str,
                   salt: str) -> str:
    """Per row several proportions in [0, 1] side by side (e.g. prompt reuse within 5 minutes and within 1 hour)."""
    with _figure(_rows_height(len(rows) * len(series)), salt) as (axes, out):
        y = np.arange(len(rows))[::-1]
        width = 0.8 / len(series)
        colours = (BEFORE, AFTER, MARK, GREY)
        for k, name in enumerate(series):
            offset = 0.4 - width * (k + 0.5)
            bars = axes.barh(y + offset, [r[1][k] for r in rows], width * 0.95, color=colours[k % 4], label=name)
            axes.bar_label(bars, labels=[f"{v:.0%}" for v in bars.datavalues], padding=3, fontsize=8)
        axes.set_yticks(y, [r[0] for r in rows])
        axes.set_xlim(0, 1.15)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_xlabel(xlabel)
        axes.grid(axis="y", visible=False)
        _legend(axes)
    return out[0]


def grouped_seconds(rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[str], xlabel: str,
                    salt: str) -> str:
    """Per row several latencies in seconds side by side; a missing value draws no bar and says so."""
    with _figure(_rows_height(len(rows) * len(series)), salt) as (axes, out):
        y = np.arange(len(rows))[::-1]
        width = 0.8 / len(series)
        colours = (MARK, AFTER, BEFORE, GREY)
        top = max((v for r in rows for v in r[1] if v is not None), default=1.0)
        for k, name in enumerate(series):
            offset = 0.4 - width * (k + 0.5)
            values = [r[1][k] for r in rows]
            bars = axes.barh(y + offset, [v or 0.0 for v in values], width * 0.95, color=colours[k % 4], label=name)
            axes.bar_label(bars, labels=[_seconds_label(v) for v in values], padding=3, fontsize=8)
        axes.set_yticks(y, [r[0] for r in rows])
        axes.set_xlim(0, top * 1.3)
        axes.set_xlabel(xlabel)
        axes.grid(axis="y", visible=False)
        _legend(axes)
    return out[0]


def _seconds_label(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def per_minute(minutes: Sequence[int], counts: Sequence[int], ylabel: str, salt: str) -> str:
    """Events per minute over the data window (e.g. 429 and 529 responses)."""
    with _figure(2.2, salt) as (axes, out):
        axes.bar(minutes, counts, width=0.9, color=MARK)
        axes.set_xlabel("minutes since the first call")
        axes.set_ylabel(ylabel)
        axes.set_ylim(0, max(max(counts, default=0), 1) * 1.15)
    return out[0]
