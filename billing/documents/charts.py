"""Charts as inline SVG, drawn on the server: no script, font, stylesheet or file from anywhere.

Pure functions: a list of (label, value) in, an SVG string out, so a chart renders with no
network access (the admin is used behind firewalls) and tests compare strings.

- Values may be int, Decimal or float; they are turned into floats only to place shapes, and
  shown in tooltips through `value_format` (default: grouped, exact for Decimals).
- The vertical axis always includes zero and goes up (or down) to a round number; a chart whose
  values are all zero still draws (an axis from 0 to 1).
- Labels and the title are escaped (they can be customer names or user ids); the string is then
  safe to insert into a page as it is.
- Colours come from the admin's CSS variables (with fallbacks), so charts follow its dark mode.
- Every bar and point carries a <title>: its label and value show on hover, and screen readers
  read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from html import escape

Number = int | float | Decimal
Point = tuple[str, Number]

WIDTH = 720
HEIGHT = 240
# Room for the value axis (left), the labels (bottom) and the top tick label.
MARGIN_LEFT = 64
MARGIN_RIGHT = 12
MARGIN_TOP = 14
MARGIN_BOTTOM = 34
TICKS = 4  # about this many steps on the value axis
MAX_LABELS = 12  # beyond, every n-th label is written (all remain in the tooltips)
EMPTY_TEXT = "No data"

BAR_STYLE = "fill:var(--secondary,#417690)"
LINE_STYLE = "fill:none;stroke:var(--secondary,#417690);stroke-width:2"
POINT_STYLE = "fill:var(--secondary,#417690)"
AXIS_STYLE = "stroke:var(--hairline-color,#ccc);stroke-width:1"
TEXT_STYLE = "fill:var(--body-quiet-color,#666);font-size:11px;font-family:sans-serif"


def format_number(value: Number) -> str:
    """1,234 / 1,234.5 / 0.012: grouped, without trailing zeros, never in exponent notation."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif isinstance(value, int):
        return f"{value:,}"
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return f"{normalized.to_integral_value():,f}"
    return f"{normalized:,f}"


def _nice_step(span: float) -> float:
    """A step of 1, 2, 2.5 or 5 × 10^k that cuts `span` into about TICKS parts."""
    raw = span / TICKS
    magnitude: float = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def value_axis(values: Sequence[float]) -> tuple[float, float, float]:
    """(bottom, top, step): a range that includes 0 and every value, in round steps."""
    low = min(0.0, *values) if values else 0.0
    high = max(0.0, *values) if values else 0.0
    if low == high:
        return 0.0, 1.0, 0.25
    step = float(_nice_step(high - low))
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def _tick_label(value: float, step: float) -> str:
    # As many decimal places as the step needs: 2.5 → one, 0.25 → two, 1000 → none.
    decimals = next((d for d in range(7) if abs(step * 10**d - round(step * 10**d)) < 1e-6), 6)
    text = f"{value:,.{decimals}f}"
    return "0" if text.strip("-0.,") == "" else text


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


class _Frame:
    """Where the plot area is and how values map onto it."""

    def __init__(self, values: Sequence[float], width: int, height: int) -> None:
        self.left = MARGIN_LEFT
        self.right = width - MARGIN_RIGHT
        self.top = MARGIN_TOP
        self.bottom = height - MARGIN_BOTTOM
        self.low, self.high, self.step = value_axis(values)

    def y(self, value: float) -> float:
        span = self.high - self.low
        return self.bottom - (value - self.low) / span * (self.bottom - self.top)

    def axis(self) -> list[str]:
        parts = []
        count = round((self.high - self.low) / self.step)
        for i in range(count + 1):
            tick = self.low + i * self.step
            y = _fmt(self.y(tick))
            parts.append(f'<line x1="{self.left}" y1="{y}" x2="{self.right}" y2="{y}" style="{AXIS_STYLE}"/>')
            parts.append(
                f'<text x="{self.left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" '
                f'style="{TEXT_STYLE}">{escape(_tick_label(tick, self.step))}</text>'
            )
        return parts


def _open(title: str, width: int, height: int, kind: str) -> str:
    safe = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{safe}"><title>{safe}</title>'
    )


def _empty(title: str, width: int, height: int, kind: str) -> str:
    return (
        f"{_open(title, width, height, kind)}"
        f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" style="{TEXT_STYLE}">{EMPTY_TEXT}</text>'
        "</svg>"
    )


def _label_every(count: int) -> int:
    return max(1, math.ceil(count / MAX_LABELS))


def _x_label(x: float, y: float, label: str) -> str:
    return f'<text x="{_fmt(x)}" y="{_fmt(y)}" text-anchor="middle" style="{TEXT_STYLE}">{escape(label)}</text>'


def bar_chart(
    points: Sequence[Point],
    *,
    title: str,
    width: int = WIDTH,
    height: int = HEIGHT,
    value_format: Callable[[Number], str] = format_number,
) -> str:
    """A bar per (label, value), left to right; negative values hang below the zero line."""
    if not points:
        return _empty(title, width, height, "bar")
    values = [float(value) for _, value in points]
    frame = _Frame(values, width, height)
    slot = (frame.right - frame.left) / len(points)
    bar_width = max(1.0, slot * 0.7)
    zero = frame.y(0.0)
    every = _label_every(len(points))
    parts = [_open(title, width, height, "bar"), *frame.axis()]
    for i, ((label, value), number) in enumerate(zip(points, values, strict=True)):
        x = frame.left + i * slot + (slot - bar_width) / 2
        top = min(frame.y(number), zero)
        bar_height = abs(frame.y(number) - zero)
        parts.append(
            f'<rect x="{_fmt(x)}" y="{_fmt(top)}" width="{_fmt(bar_width)}" height="{_fmt(bar_height)}" '
            f'style="{BAR_STYLE}"><title>{escape(label)}: {escape(value_format(value))}</title></rect>'
        )
        if i % every == 0:
            parts.append(_x_label(frame.left + (i + 0.5) * slot, frame.bottom + 16, label))
    parts.append(
        f'<line x1="{frame.left}" y1="{_fmt(zero)}" x2="{frame.right}" y2="{_fmt(zero)}" style="{AXIS_STYLE}"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    points: Sequence[Point],
    *,
    title: str,
    width: int = WIDTH,
    height: int = HEIGHT,
    value_format: Callable[[Number], str] = format_number,
) -> str:
    """A line through the (label, value) points, evenly spaced left to right, with a dot on each."""
    if not points:
        return _empty(title, width, height, "line")
    values = [float(value) for _, value in points]
    frame = _Frame(values, width, height)
    # Each point in the middle of its slot, as bars are: the first and last labels stay inside.
    slot = (frame.right - frame.left) / len(points)
    xs = [frame.left + (i + 0.5) * slot for i in range(len(points))]
    every = _label_every(len(points))
    parts = [_open(title, width, height, "line"), *frame.axis()]
    coordinates = " ".join(f"{_fmt(x)},{_fmt(frame.y(v))}" for x, v in zip(xs, values, strict=True))
    parts.append(f'<polyline points="{coordinates}" style="{LINE_STYLE}"/>')
    for i, ((label, value), x, number) in enumerate(zip(points, xs, values, strict=True)):
        parts.append(
            f'<circle cx="{_fmt(x)}" cy="{_fmt(frame.y(number))}" r="3" style="{POINT_STYLE}">'
            f"<title>{escape(label)}: {escape(value_format(value))}</title></circle>"
        )
        if i % every == 0:
            parts.append(_x_label(x, frame.bottom + 16, label))
    parts.append("</svg>")
    return "".join(parts)
