"""Growth curves: how a figure's cost grows with the data, size after size.

Each point of a curve is one measurement at one size (customers closed, events in the period);
each point after the first says how much the size grew since the previous point (×size), how
much the time grew (×time), and:
- the growth factor, ×time / ×size (the issue's "time ratio per data ratio"): 1.0 is linear
  (twice the data, twice the time), 1 / ×size is flat, above 1 worse than linear;
- the exponent k of time ∝ size^k, log ×time / log ×size: 1 linear, 0 flat, 2 quadratic,
  whatever the step between sizes.
A single size says nothing of a million customers; the growth between sizes does.
"""

from __future__ import annotations

import math
from typing import Any


def curve(points: list[dict[str, Any]], *, size: str, time: str, cpu: str = "") -> list[dict[str, Any]]:
    """The points, each after the first with `size_ratio`, `time_ratio` and `growth` added
    (against the previous point); with `cpu` the key of a CPU figure, `cpu_ratio` and
    `cpu_growth` too (CPU is steadier than wall time on a shared machine)."""
    out: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        point = dict(point)
        if i:
            before = points[i - 1]
            size_ratio = point[size] / before[size]
            time_ratio = point[time] / before[time] if before[time] else 0.0
            point.update(
                size_ratio=round(size_ratio, 3),
                time_ratio=round(time_ratio, 3),
                growth=round(time_ratio / size_ratio, 3),
                exponent=round(math.log(time_ratio) / math.log(size_ratio), 2) if time_ratio > 0 else None,
            )
            if cpu and point.get(cpu) and before.get(cpu):
                cpu_ratio = point[cpu] / before[cpu]
                point.update(cpu_ratio=round(cpu_ratio, 3), cpu_growth=round(cpu_ratio / size_ratio, 3))
        out.append(point)
    return out
