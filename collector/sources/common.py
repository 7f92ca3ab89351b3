"""Records and helpers shared by every reader: timestamps, sizes and the `Problem` record."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s?(Z|[+-]\d\d:?\d\d)?")


@dataclass(frozen=True)
class Problem:
    """A line or file a reader could not read; `cost` says what the verdict loses."""

    source: str
    message: str
    line: int = field(default=0, compare=False)


def parse_time(text: str) -> float | None:
    """Epoch seconds for an RFC 3339 time (nanoseconds, `Z`, offsets, no zone = UTC), else None."""
    # Fast path for the common `....:SS.fffffffffZ`: the whole seconds come from a small cache
    # (log lines arrive in bursts within the same second).
    base = SECONDS_CACHE.get(text[:19])
    if base is not None:
        rest = text[19:]
        frac = rest[1:-1]
        if rest[:1] == "." and rest[-1:] == "Z" and frac.isdigit() and frac.isascii():
            return base + float("0." + frac[:9])
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, sec, frac, zone = m.groups()
    try:
        whole = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(sec), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if len(SECONDS_CACHE) >= 4096:
        SECONDS_CACHE.clear()
    if text[4] == "-" and text[10] == "T":
        SECONDS_CACHE[text[:19]] = float(whole)
    value = float(whole) + (float("0." + frac[:9]) if frac else 0.0)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        value -= sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
    return value


# `YYYY-MM-DDTHH:MM:SS` -> epoch seconds, bounded; logs.split_line inlines the fast path
SECONDS_CACHE: dict[str, float] = {}


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTPE]?i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def parse_size(text: str) -> int | None:
    """Bytes for a Docker size such as `12.5MiB`, `1.2GB` or `0B`; None if it is not one."""
    m = _SIZE.match(text)
    if m is None:
        return None
    unit = (m.group(2) or "").upper()
    if unit not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[unit])


def format_time(epoch: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds, or None."""
    if epoch is None:
        return None
    whole = int(epoch // 1)
    millis = round((epoch - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def json_lines(lines: Iterable[str], source: str) -> Iterator[tuple[int, str, Any] | Problem]:
    """`(line number, stripped text, decoded value)` for each non-blank JSON Lines line; bad JSON is a `Problem`."""
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        try:
            yield number, text, json.loads(text)
        except (ValueError, RecursionError):
            yield Problem(source, f"line {number} is not JSON", number)
