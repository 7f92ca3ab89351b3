"""Reader for `stats.jsonl`: `{"ts", "epoch", "stats": {docker stats JSON}}` a line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..sources.common import Problem, json_lines, parse_size, parse_time

SOURCE = "stats.jsonl"


@dataclass(frozen=True)
class StatsSample:
    """Memory (and CPU) of the container at one moment."""

    epoch: float
    mem_bytes: int | None
    limit_bytes: int | None
    mem_percent: float | None
    cpu_percent: float | None
    source: str = field(compare=False)
    line: int = field(compare=False)


def _percent(value: object) -> float | None:
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None


def parse_stats(lines: Iterable[str], source: str = SOURCE) -> Iterator[StatsSample | Problem]:
    """Samples in file order; unreadable lines become `Problem` records."""
    for item in json_lines(lines, source):
        if isinstance(item, Problem):
            yield item
            continue
        number, _, obj = item
        if not isinstance(obj, dict) or not isinstance(obj.get("stats"), dict):
            yield Problem(source, f"line {number} has no stats object", number)
            continue
        epoch: float | None
        try:
            epoch = float(obj["epoch"])
        except (KeyError, TypeError, ValueError):
            epoch = parse_time(str(obj.get("ts", "")))
        if epoch is None:
            yield Problem(source, f"line {number} has no time", number)
            continue
        st = obj["stats"]
        usage, _, limit = str(st.get("MemUsage", "")).partition("/")
        yield StatsSample(
            epoch,
            parse_size(usage),
            parse_size(limit),
            _percent(st.get("MemPerc")),
            _percent(st.get("CPUPerc")),
            source,
            number,
        )
