"""Judge the investigation's success criteria from the facts verify.yml's host probe gathered.

The host probe (plugins/modules/verify_probe.py) only reads; this package decides, on the
collector's `sources/` and `report/`: `facts` turns the probe's JSON into typed facts
(:func:`parse_facts`), `criteria` turns facts, thresholds and earlier runs into a
:class:`Verification` (:func:`evaluate`), `render` writes verify.json's document and verify.md in the
collector's one template environment, and `cli` (:func:`main`) is the only part that touches
the filesystem.

    python -m ingester_capture.verify evaluate --facts F --host H --out-dir D [--history H.jsonl] ...
    python -m ingester_capture.verify history H.jsonl

Exit codes (the one table, :class:`collector.exitcodes.Exit`): 0 every criterion passed, 20 at
least one failed (named on stdout), 2 usage, 3 the facts or the history could not be read.
"""

from ..verify.cli import main
from ..verify.criteria import evaluate, fit
from ..verify.facts import (
    Criterion,
    Facts,
    HistoryEntry,
    MemoryTrend,
    Status,
    Thresholds,
    Verification,
    VerifyError,
    iso,
    parse_facts,
    parse_history,
    parse_time,
)
from ..verify.render import history_line, render_history, render_markdown, summary, verdict_json

__all__ = [
    "Criterion",
    "Facts",
    "HistoryEntry",
    "MemoryTrend",
    "Status",
    "Thresholds",
    "Verification",
    "VerifyError",
    "evaluate",
    "fit",
    "history_line",
    "iso",
    "main",
    "parse_facts",
    "parse_history",
    "parse_time",
    "render_history",
    "render_markdown",
    "summary",
    "verdict_json",
]
