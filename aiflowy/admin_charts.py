"""Small server-rendered SVG bar charts for admin pages: no JavaScript, no chart library to
vendor, readable without network access, and cheap (one <rect> per value)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 180, 56, 22, 10


def bar_chart_svg(
    labels: Sequence[str], values: Sequence[float | None], *, title: str, unit: str = ""
) -> SafeString:
    """A bar per value (None: no bar), the largest value marked on the axis, each bar with a
    tooltip `label: value unit`."""
    numbers = [v or 0 for v in values]
    top = max(numbers, default=0) or 1
    plot_w, plot_h = WIDTH - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(len(values), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" class="usage-chart"><title>{escape(title)}</title>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - 8}" '
        f'y2="{PAD_TOP + plot_h}" stroke="#999"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end" font-size="11">'
        f"{_number(top)}</text>",
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end" '
        'font-size="11">0</text>',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = PAD_LEFT + index * step
        if value:
            height = plot_h * value / top
            parts.append(
                f'<rect x="{x + step * 0.15:.1f}" y="{PAD_TOP + plot_h - height:.1f}" '
                f'width="{step * 0.7:.1f}" height="{height:.1f}" fill="#417690">'
                f"<title>{escape(label)}: {_number(value)} {escape(unit)}</title></rect>"
            )
        if len(labels) <= 16 or index % max(len(labels) // 8, 1) == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
                f'font-size="10">{escape(label[5:])}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
