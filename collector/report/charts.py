"""Geometry for the HTML report's inline SVG charts. Pure: numbers in, shapes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collector.sources.common import format_time
from collector.sources.stats import StatsSample

WIDTH = 860
HEIGHT = 180
PAD_L, PAD_R, PAD_T, PAD_B = 60, 20, 16, 34
COLOURS = {
    "task-error": "#d9822b",
    "panic": "#c23030",
    "task-returned-ok": "#8f398f",
    "oom-kill": "#a82a2a",
    "external-kill": "#5c7080",
    "config-error": "#b07d00",
    "impossible-path": "#000000",
    "inconclusive": "#a7b6c2",
    "running": "#0f9960",
}
MAX_POINTS = 600


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    colour: str
    label: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


def _ticks(t0: float, t1: float, n: int = 5) -> list[Tick]:
    span = max(t1 - t0, 1e-9)
    inner = WIDTH - PAD_L - PAD_R
    out = []
    for i in range(n + 1):
        t = t0 + span * i / n
        label = (format_time(t) or "")[11:19]
        out.append(Tick(PAD_L + inner * i / n, label))
    return out


def timeline(
    runs: Sequence[dict[str, Any]], starts: Sequence[float | None], ends: Sequence[float | None]
) -> dict[str, Any] | None:
    """One bar per run from start to exit, coloured by how it ended."""
    spans = [(s, e, r) for s, e, r in zip(starts, ends, runs, strict=True) if s is not None]
    if not spans:
        return None
    t0 = min(s for s, _, _ in spans)
    t1 = max((e if e is not None else s) for s, e, _ in spans)
    t1 = max(t1, t0 + 1.0)
    inner = WIDTH - PAD_L - PAD_R
    scale = inner / (t1 - t0)
    bars = []
    h = HEIGHT - PAD_T - PAD_B
    for s, e, r in spans:
        end = e if e is not None else s
        x = PAD_L + (s - t0) * scale
        w = max(2.0, (end - s) * scale - 1.0)
        code = r.get("exit_code")
        label = f"run {r['index']}: {r['scenario']}" + (f", exit {code}" if code is not None else "")
        bars.append(Bar(round(x, 1), PAD_T + 10, round(w, 1), h - 20, COLOURS.get(str(r["scenario"]), "#888"), label))
    legend = sorted({r["scenario"] for _, _, r in spans})
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bars": bars,
        "ticks": _ticks(t0, t1),
        "axis_y": HEIGHT - PAD_B,
        "legend": [(name, COLOURS.get(name, "#888")) for name in legend],
    }


def memory_chart(samples: Sequence[StatsSample], limit: int | None, exits: Sequence[float]) -> dict[str, Any] | None:
    """Memory over time as a polyline, the limit as a line, exits as markers."""
    pts = [(s.epoch, s.mem_bytes) for s in samples if s.mem_bytes is not None]
    if len(pts) < 2:
        return None
    if len(pts) > MAX_POINTS:
        step = len(pts) / MAX_POINTS
        pts = [pts[int(i * step)] for i in range(MAX_POINTS)] + [pts[-1]]
    t0, t1 = pts[0][0], max(pts[-1][0], pts[0][0] + 1.0)
    top = max(max(p[1] for p in pts), limit or 0) * 1.08 or 1.0
    inner_w = WIDTH - PAD_L - PAD_R
    inner_h = HEIGHT - PAD_T - PAD_B

    def x(t: float) -> float:
        return round(PAD_L + (t - t0) / (t1 - t0) * inner_w, 1)

    def y(v: float) -> float:
        return round(PAD_T + inner_h - v / top * inner_h, 1)

    line = " ".join(f"{x(t)},{y(v)}" for t, v in pts)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "points": line,
        "limit_y": y(limit) if limit else None,
        "limit_label": f"limit {limit / 2**20:.0f} MiB" if limit else None,
        "top_label": f"{top / 2**20:.0f} MiB",
        "exits": [x(t) for t in exits if t0 <= t <= t1],
        "ticks": _ticks(t0, t1),
        "axis_y": HEIGHT - PAD_B,
        "plot_top": PAD_T,
    }
