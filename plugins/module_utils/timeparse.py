"""Times as the capture writes and reads them (Python 3.8+, standard library only).

Docker prints RFC 3339 with nanoseconds and a ``Z``; ``datetime.fromisoformat`` of Python 3.8
reads neither, so the parsing here is by hand.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timezone
from typing import Optional, Tuple

DOCKER_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?")


def now_iso() -> str:
    """Now, UTC, with microseconds: 2026-01-02T03:04:05.123456Z."""
    return iso(time.time())


def iso(epoch: float) -> str:
    """An epoch as RFC 3339 UTC with microseconds."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ns(ns: int) -> str:
    """Nanoseconds since the epoch as Docker prints them, without the Z: 2026-01-02T03:04:05.123456789."""
    return "%s.%09d" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)), ns % 1_000_000_000)


def stamp(epoch: Optional[float] = None) -> str:
    """A compact UTC timestamp for folder names: 20260102T030405Z."""
    return datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _parts(text: str) -> Optional[Tuple[int, int]]:
    """(whole seconds since the epoch, nanoseconds) of an RFC 3339 time; None if it is not one."""
    match = DOCKER_TS.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if year < 1970:
        return None  # Docker's zero time (0001-01-01T00:00:00Z) means "never"
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8) or "Z"
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds, int((match.group(7) or "").ljust(9, "0") or 0)


def parse_epoch(text: str) -> Optional[float]:
    """Epoch seconds of an RFC 3339 time as Docker prints it; None for none or the zero time."""
    parts = _parts(text.strip())
    return None if parts is None else parts[0] + parts[1] / 1e9


def line_ns(line: bytes) -> int:
    """Nanoseconds since the epoch of a ``docker logs --timestamps`` line; 0 when it has none."""
    head = line[:40].split(b" ", 1)[0].decode("ascii", "replace")
    parts = _parts(head)
    return 0 if parts is None else parts[0] * 1_000_000_000 + parts[1]
