"""A small SVG line-chart writer for `make bench`'s scaling plot (no plotting library needed).

One figure of side-by-side panels; each panel has a logarithmic x axis (order lines: 100k to
30M spans orders of magnitude) ticked at the measured sizes, a linear y axis from zero, one
polyline per series and an optional dashed reference line (a target).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
WIDTH, HEIGHT = 460, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 118  # margins; the legend sits below the axes


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y); x > 0
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    y_label: str
    series: list[Series]
    reference: tuple[float, str] | None = None  # (y, label): a dashed horizontal line
    x_label: str = "order lines (log scale)"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 (times a power of ten) at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)  # unreachable: 10 * power >= value


def _fmt(number: float) -> str:
    return f"{number:.1f}".rstrip("0").rstrip(".")


def _panel(panel: Panel, left: float, tick_label: Callable[[float], str]) -> list[str]:
    xs = sorted({x for s in panel.series for x, _ in s.points})
    ys = [y for s in panel.series for _, y in s.points]
    if panel.reference:
        ys.append(panel.reference[0])
    top_y = nice_ceiling(max(ys, default=1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    lo, hi = math.log10(min(xs, default=1.0)), math.log10(max(xs, default=10.0))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5

    def px(x: float) -> float:
        return left + LEFT + (math.log10(x) - lo) / (hi - lo) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - y / top_y * plot_h

    out = [
        f'<text x="{left + WIDTH / 2:.1f}" y="20" text-anchor="middle" font-weight="bold">'
        f"{escape(panel.title)}</text>",
        f'<rect x="{left + LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#888"/>',
    ]
    for i in range(5):
        value = top_y * i / 4
        out.append(
            f'<line x1="{left + LEFT}" x2="{left + LEFT + plot_w}" y1="{py(value):.1f}" '
            f'y2="{py(value):.1f}" stroke="#eee"/>'
            f'<text x="{left + LEFT - 6}" y="{py(value) + 4:.1f}" text-anchor="end">'
            f"{_fmt(value)}</text>"
        )
    for x in xs:
        out.append(
            f'<text x="{px(x):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{escape(tick_label(x))}</text>"
        )
    out.append(
        f'<text x="{left + LEFT + plot_w / 2:.1f}" y="{TOP + plot_h + 34}" '
        f'text-anchor="middle">{escape(panel.x_label)}</text>'
        f'<text transform="translate({left + 16},{TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(panel.y_label)}</text>'
    )
    if panel.reference:
        y, name = panel.reference
        out.append(
            f'<line x1="{left + LEFT}" x2="{left + LEFT + plot_w}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}" stroke="#555" stroke-dasharray="2,3"/>'
            f'<text x="{left + LEFT + plot_w - 4}" y="{py(y) - 4:.1f}" text-anchor="end" '
            f'fill="#555">{escape(name)}</text>'
        )
    for index, series in enumerate(panel.series):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(series.points))
        dash = ' stroke-dasharray="6,4"' if series.dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}">'
            f"<title>{escape(series.name)}</title></polyline>"
        )
        for x, y in series.points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        row_y = TOP + plot_h + 52 + 16 * index
        out.append(
            f'<line x1="{left + LEFT}" x2="{left + LEFT + 24}" y1="{row_y - 4}" y2="{row_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{left + LEFT + 30}" y="{row_y}">{escape(series.name)}</text>'
        )
    return out


def figure(panels: list[Panel], tick_label: Callable[[float], str], caption: str = "") -> str:
    """A whole SVG document: the panels side by side, `caption` under them."""
    legend_rows = max((len(p.series) for p in panels), default=0)
    height = HEIGHT + max(0, legend_rows - 4) * 16 + (20 if caption else 0)
    width = WIDTH * max(1, len(panels))
    body: list[str] = []
    for index, panel in enumerate(panels):
        body += _panel(panel, index * WIDTH, tick_label)
    if caption:
        body.append(
            f'<text x="{width / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#555">'
            f"{escape(caption)}</text>"
        )
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            *body,
            "</svg>",
            "",
        ]
    )
