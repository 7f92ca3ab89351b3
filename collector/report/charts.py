"""Geometry for the HTML report's inline SVG charts. Pure: numbers in, shapes out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..sources.common import format_time
from ..sources.stats import StatsSample

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


# Tick steps in seconds: each a step a clock reader counts in.
STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _ticks(t0: float, t1: float, n: int = 5) -> list[Tick]:
    """At most about `n` ticks on round times, labelled to the precision their step needs, so
    no two labels are the same (a 6 s window gets 10:08:33, 10:08:34, .. not 10:08:36 twice)."""
    span = max(t1 - t0, 1e-9)
    step = next((s for s in STEPS if span / s <= n), STEPS[-1] * max(1, round(span / n / STEPS[-1])))
    digits = 0 if step >= 1 else 1
    inner = WIDTH - PAD_L - PAD_R
    first = math.ceil(round(t0 / step, 6)) * step
    out: list[Tick] = []
    k = 0
    while (t := first + k * step) <= t1 + 1e-9:
        stamp = format_time(t) or ""
        label = stamp[11:19] + (stamp[19:21] if digits else "")
        if step >= 86400:
            label = stamp[:10]
        out.append(Tick(round(PAD_L + inner * (t - t0) / span, 1), label))
        k += 1
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


def _runs_of(samples: Sequence[StatsSample], exits: Sequence[float]) -> list[list[tuple[float, int]]]:
    """The samples of each run: a run ends at each exit, and where the container was not running
    (docker stats reads 0 B); a run without a sample is left out. A line never joins two runs."""
    bounds = sorted(exits)
    out: list[list[tuple[float, int]]] = []
    current: list[tuple[float, int]] = []
    i = 0
    for s in sorted((s for s in samples if s.mem_bytes is not None), key=lambda s: s.epoch):
        crossed = False
        while i < len(bounds) and bounds[i] < s.epoch:
            i += 1
            crossed = True
        if (crossed or not s.mem_bytes) and current:
            out.append(current)
            current = []
        if s.mem_bytes:
            current.append((s.epoch, s.mem_bytes))
    if current:
        out.append(current)
    return out


def memory_chart(samples: Sequence[StatsSample], limit: int | None, exits: Sequence[float]) -> dict[str, Any] | None:
    """Memory over time, one polyline per run (split at each exit), the limit as a line, exits
    as markers; None when no sample shows the process using memory (no chart without data)."""
    runs = _runs_of(samples, exits)
    count = sum(len(r) for r in runs)
    if not count:
        return None
    if count > MAX_POINTS:
        step = count / MAX_POINTS
        runs = [[r[int(k * step)] for k in range(math.ceil(len(r) / step))] + [r[-1]] for r in runs]
    # the exits too: a run that died before its first sample still shows where it ended
    t0 = min(runs[0][0][0], min(exits, default=runs[0][0][0]))
    t1 = max(runs[-1][-1][0], max(exits, default=t0), t0 + 1.0)
    top = max(max(v for r in runs for _, v in r), limit or 0) * 1.08 or 1.0
    inner_w = WIDTH - PAD_L - PAD_R
    inner_h = HEIGHT - PAD_T - PAD_B

    def x(t: float) -> float:
        return round(PAD_L + (t - t0) / (t1 - t0) * inner_w, 1)

    def y(v: float) -> float:
        return round(PAD_T + inner_h - v / top * inner_h, 1)

    lines = [
        {
            "points": " ".join(f"{x(t)},{y(v)}" for t, v in r),
            "dots": [(x(t), y(v)) for t, v in r] if len(r) < 3 else [],
            "label": f"{len(r)} sample{'s' if len(r) != 1 else ''}, peak {max(v for _, v in r) / 2**20:.1f} MiB",
        }
        for r in runs
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "lines": lines,
        "limit_y": y(limit) if limit else None,
        "limit_label": f"limit {limit / 2**20:.0f} MiB" if limit else None,
        "top_label": f"{top / 2**20:.0f} MiB",
        "exits": [x(t) for t in exits if t0 <= t <= t1],
        "ticks": _ticks(t0, t1),
        "axis_y": HEIGHT - PAD_B,
        "plot_top": PAD_T,
    }
