"""The stand-in's numbered lines, counted by the test harness (the product never sees them).

With ``STANDIN_NUMBERED`` set, each run of the stand-in prints ``[SEQ] run=<id> n=<k>`` for
k = 1..N (odd k on stdout, even on stderr) and then ``[SEQ] run=<id> done total=N``: every gap in
what a bundle kept of a run is countable here, and only here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

SEQ = re.compile(r"\[SEQ\] run=([0-9a-f]{8}) (?:n=(\d+)|done total=(\d+))")


def seq_runs(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per run id, in the order the runs first appear: the n seen and the announced total
    (None without the done line)."""
    runs: dict[str, dict[str, Any]] = {}
    for line in lines:
        match = SEQ.search(line)
        if not match:
            continue
        entry = runs.setdefault(match.group(1), {"seen": set(), "total": None})
        if match.group(2):
            entry["seen"].add(int(match.group(2)))
        else:
            entry["total"] = int(match.group(3))
    return runs


def missing(entry: dict[str, Any]) -> int:
    """How many of a run's numbered lines are not there: up to its total, or its highest n seen."""
    seen: set[int] = entry["seen"]
    top = entry["total"] if entry["total"] is not None else max(seen, default=0)
    return top - len(seen & set(range(1, top + 1)))
