"""Charts drawn on the server as SVG (issue #20): the usage page needs no chart library and makes no
request to anywhere. Every label is escaped: client names and agent titles are the agency's text."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe (Okabe-Ito), then greys for the long tail.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#999999", "#666666")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 36
LEGEND_COLUMNS = 3


def _nice_ceiling(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 4 or 8 × a power of ten), so that its quarters
    (the gridlines) are round too."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 8, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def stacked_bars(*, title: str, x_labels: Sequence[str], series: dict[str, Sequence[float | Decimal]],
                 value_label: Callable[[float], str] = lambda v: f"{v:g}", whole: bool = False) -> SafeString:
    """Bars per x label, stacked by series (in the order given), with a legend. `series` maps a
    series name to one value per x label. Each segment carries a <title> (its name and value). `whole`:
    the values are counts, so the gridlines are whole numbers too."""
    names = list(series)
    totals = [sum(float(series[name][i]) for name in names) for i in range(len(x_labels))]
    top = _nice_ceiling(max(totals, default=0))
    if whole:
        top = max(4, math.ceil(top / 4) * 4)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(x_labels), 1)
    bar_w = max(min(slot * 0.7, 60), 2)
    parts = [f'<svg class="usage-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} '
             f'{HEIGHT + 22 * ((len(names) + LEGEND_COLUMNS - 1) // LEGEND_COLUMNS)}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for tick in range(5):  # the value axis: 0, ¼, ½, ¾ and the top
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
                     f"{escape(value_label(value))}</text>")
    every = max(1, len(x_labels) // 12)  # at most ~12 x labels
    for i, label in enumerate(x_labels):
        x = LEFT + slot * i + (slot - bar_w) / 2
        y = TOP + plot_h
        for n, name in enumerate(names):
            value = float(series[name][i])
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(f'<rect class="segment" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[n % len(PALETTE)]}"><title>{escape(name)}, {escape(label)}: '
                         f"{escape(value_label(value))}</title></rect>")
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="11" '
                         f'fill="#555">{escape(label)}</text>')
    legend_y = HEIGHT + 4
    for n, name in enumerate(names):
        lx, ly = LEFT + (n % LEGEND_COLUMNS) * 190, legend_y + 22 * (n // LEGEND_COLUMNS)
        short = name if len(name) <= 25 else name[:24] + "…"
        parts.append(f'<g class="legend"><rect x="{lx}" y="{ly}" width="12" height="12" '
                     f'fill="{PALETTE[n % len(PALETTE)]}"/><text x="{lx + 16}" y="{ly + 10}" font-size="12">'
                     f"{escape(short)}<title>{escape(name)}</title></text></g>")
    if not any(totals):
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" font-size="13" '
                     f'fill="#777">Nothing in this window</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def share_bar(*, title: str, share: float) -> SafeString:
    """A single horizontal bar filled to `share` (0..1), e.g. the cache-read share of prompt tokens."""
    share = min(max(share, 0.0), 1.0)
    return mark_safe(  # noqa: S308 - the only text is escaped
        f'<svg class="usage-share" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 20" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<rect x="0" y="2" width="300" height="16" fill="#e5e5e5" rx="3"/>'
        f'<rect x="0" y="2" width="{300 * share:.1f}" height="16" fill="{PALETTE[2]}" rx="3"/></svg>')
