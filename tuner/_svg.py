"""Tiny inline-SVG charts for the HTML report: no plotting library, no network assets, readable markup."""

from __future__ import annotations

from html import escape

import numpy as np

_WIDTH = 640
_LABEL = 220
_ROW = 22
_BAR = "#4c78a8"
_MARK = "#e45756"


def _frame(height: int, title: str, body: list[str]) -> str:
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" role="img">'
    caption = f'<text x="4" y="14" font-size="13" font-weight="bold">{escape(title)}</text>'
    return "".join([head, f"<title>{escape(title)}</title>", caption, *body, "</svg>"])


def bars(rows: list[tuple[str, float]], title: str, unit: str) -> str:
    """Horizontal bars, one per labelled value."""
    top = max((v for _, v in rows), default=0) or 1
    span = _WIDTH - _LABEL - 90
    body = []
    for i, (label, value) in enumerate(rows):
        y = 24 + i * _ROW
        width = max(value / top * span, 1)
        body.append(f'<text x="4" y="{y + 14}" font-size="11">{escape(label)}</text>')
        body.append(f'<rect x="{_LABEL}" y="{y + 3}" width="{width:.1f}" height="{_ROW - 6}" fill="{_BAR}"/>')
        body.append(f'<text x="{_LABEL + width + 4:.1f}" y="{y + 14}" font-size="11">{value:.4g} {escape(unit)}</text>')
    return _frame(32 + len(rows) * _ROW, title, body)


def histogram(values: np.ndarray, cap: int | None, current: int | None, title: str, bins: int = 40) -> str:
    """Distribution of output lengths with the chosen cap (red) and the current one (grey)."""
    height, left, bottom = 180, 40, 150
    if not len(values):
        return _frame(40, title + " (no data)", [])
    high = max(float(values.max()), cap or 0, current or 0) * 1.05 or 1.0
    counts, edges = np.histogram(values, bins=bins, range=(0, high))
    scale = (bottom - 30) / max(int(counts.max()), 1)
    span = _WIDTH - left - 10
    step = span / bins
    body = [f'<line x1="{left}" y1="{bottom}" x2="{_WIDTH - 10}" y2="{bottom}" stroke="black"/>']
    for i, count in enumerate(counts):
        h = count * scale
        x = left + i * step
        body.append(f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{step - 1:.1f}" height="{h:.1f}" fill="{_BAR}"/>')
    for value, colour, name in ((current, "#888", "current"), (cap, _MARK, "cap")):
        if value:
            x = left + value / high * span
            body.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{bottom}" stroke="{colour}" stroke-width="2"/>')
            body.append(f'<text x="{x + 3:.1f}" y="34" font-size="11" fill="{colour}">{name} {value}</text>')
    body.append(f'<text x="{left}" y="{bottom + 16}" font-size="11">0</text>')
    body.append(f'<text x="{_WIDTH - 60}" y="{bottom + 16}" font-size="11">{edges[-1]:.0f} tokens</text>')
    return _frame(height, title, body)


def intervals(rows: list[tuple[str, float, float, float]], title: str) -> str:
    """Point estimates with 95% intervals on a shared axis; rows are (label, mean, low, high)."""
    if not rows:
        return _frame(40, title + " (no scored calls)", [])
    low = min(r[2] for r in rows)
    high = max(r[3] for r in rows)
    pad = (high - low) * 0.1 or 0.05
    low, high = low - pad, high + pad
    span = _WIDTH - _LABEL - 60

    def x(v: float) -> float:
        return _LABEL + (v - low) / (high - low) * span

    body = []
    for i, (label, mean, lo, hi) in enumerate(rows):
        y = 24 + i * _ROW + _ROW / 2
        body.append(f'<text x="4" y="{y + 4}" font-size="11">{escape(label)}</text>')
        body.append(f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="{_BAR}" stroke-width="2"/>')
        body.append(f'<circle cx="{x(mean):.1f}" cy="{y}" r="4" fill="{_MARK}"/>')
        body.append(f'<text x="{x(hi) + 6:.1f}" y="{y + 4}" font-size="11">{mean:.3f}</text>')
    return _frame(32 + len(rows) * _ROW, title, body)
