"""The rules' inputs: what the loader reads from a bundle and `runs` and `diagnose` take.

The lowest floor of the collector above `sources/`: the loader fills these, the rules read them,
and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .sources.dmesg import KernelOom
from .sources.events import DockerEvent
from .sources.inspect import Inspect
from .sources.stats import StatsSample


@dataclass
class Context:
    """Everything besides the log, already read and sorted by time."""

    events: Sequence[DockerEvent] = ()
    events_present: bool = False
    kernel: Sequence[KernelOom] = ()
    kernel_present: bool = False
    boot_epoch: float | None = None
    inspect: Inspect | None = None
    container_id: str | None = None
    stats: Sequence[StatsSample] = ()
    memory_limit: int | None = None
    window_end: float | None = None  # exits after it (the capture's own teardown) do not count
    # When the Docker daemon stopped the container on its way down (window.json's gaps): no crash.
    daemon_stops: Sequence[float] = ()


@dataclass(frozen=True)
class MemoryInput:
    """Stats samples reduced to what the verdict needs (the CLI reads them)."""

    limit_bytes: int | None = None
    peak_bytes: int | None = None
    samples: int = 0
    series_slope: float | None = None
    last_bytes: int | None = None


@dataclass(frozen=True)
class Coverage:
    """Which sources the verdict could use, and what is missing or damaged."""

    log: bool = True
    events: bool = False
    kernel: bool = False
    inspect: bool = False
    stats: bool = False
    window_seconds: float | None = None
    restart_count_inspect: int | None = None
    missing: tuple[str, ...] = ()
    damaged: tuple[str, ...] = ()


def least_squares(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The least-squares line through the points: its slope and R² (0.0 and 0.0 when the x do
    not vary, or the y do not for R²). The collector's one fit."""
    n = len(points)
    if n < 2:
        return 0.0, 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    syy = sum((p[1] - my) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    if sxx <= 0:
        return 0.0, 0.0
    return sxy / sxx, (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x, or None with fewer than two distinct x."""
    if len(points) < 2 or all(p[0] == points[0][0] for p in points):
        return None
    return least_squares(points)[0]


@dataclass(frozen=True)
class Provenance:
    """Where a capture came from, as the bundle itself records it (manifest.json `host`, `mode`,
    `build`, `partial`; host.json `hostname`, `image`; compose.diff's swapped `image:` line), for
    the report's header. None is "not recorded"; a bare log has none of it."""

    bundle: str | None = None  # the bundle directory as the collector was given it, resolved
    host: str | None = None  # the inventory host the seal names
    hostname: str | None = None  # the machine's own name (host.json)
    mode: str | None = None  # observe | capture | deploy-gate
    image: str | None = None  # the image that ran in the window
    original_image: str | None = None  # production's image before the swap
    commit: str | None = None  # the built commit (manifest `build`), or the image's revision label
    partial: bool = False
    sealed_at: str | None = None  # manifest.json `created`
