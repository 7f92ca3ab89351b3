"""Verdict details found in integration runs: what a production log already answers, which
runs count as completed, one final period, and the kernel's OOM line cited first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector.diagnose import _end_sentence
from collector.inputs import Context
from collector.runs import split_runs
from collector.sources.events import DockerEvent
from collector.sources.logs import parse_log
from tests.support.fixtures import BUNDLES


def _report(tmp_path: Path, *argv: str) -> dict[str, Any]:
    main(["summarize", *argv, "--out", str(tmp_path), "--quiet"])
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    return report


@pytest.mark.parametrize(
    ("bundle", "needs"),
    [
        ("hypothetical-prod-panic", False),
        ("hypothetical-prod-task-panic", False),
        ("hypothetical-prod-silent-exit", True),
    ],
)
def test_a_default_panic_message_needs_no_debug_build(bundle: str, needs: bool, tmp_path: Path) -> None:
    verdict = _report(tmp_path, str(BUNDLES / bundle))["verdict"]
    assert verdict["needs_debug_build"] is needs
    assert any("debug image" in s for s in verdict["next_steps"]) is needs


def test_determinism_counts_completed_runs(tmp_path: Path) -> None:
    verdict = _report(tmp_path, str(BUNDLES / "hypothetical-task-error-labeler"))["verdict"]
    assert verdict["determinism"] == "same exit path F (labeler) in 2 of 2 completed runs"


def test_a_stop_after_the_window_is_not_an_exit() -> None:
    lines = ["2026-01-01T00:00:00.000Z Starting rsky-ingester\n", "2026-01-01T00:00:10.000Z ok\n"]
    t0 = 1767225600.0
    die = DockerEvent(t0 + 60, "die", "c", "c", 137, None, "die", "events.jsonl", 1)
    inside = list(split_runs(parse_log(lines), Context(events=[die], window_end=t0 + 70)))
    after = list(split_runs(parse_log(lines), Context(events=[die], window_end=t0 + 20)))
    assert inside[0].ended and inside[0].exit_code == 137
    assert not after[0].ended and after[0].exit_code is None


def test_summary_ends_with_one_period(tmp_path: Path) -> None:
    log = tmp_path / "single.log"
    log.write_text(
        "2026-01-01T00:00:00.000Z Starting rsky-ingester\n"
        "2026-01-01T00:00:05.000Z Error: CRITICAL: All firehose tasks exited. This should never happen.\n"
    )
    summary = _report(tmp_path, "--log", str(log))["verdict"]["summary"]
    assert summary.endswith("never happen.") and not summary.endswith("..")


@pytest.mark.parametrize(("text", "want"), [("happen..", "happen."), ("in 5 seconds....", "in 5 seconds..."),
                                            ("wait...", "wait..."), ("done.", "done.")])
def test_end_sentence(text: str, want: str) -> None:
    assert _end_sentence(text) == want


@pytest.mark.parametrize("bundle", ["oom-kill", "prod-oom-kill"])
def test_the_kernel_oom_line_comes_first(bundle: str, tmp_path: Path) -> None:
    report = _report(tmp_path, str(BUNDLES / bundle))
    first = report["verdict"]["evidence"][0]
    assert first["file"] == "dmesg.txt"
    assert "Memory cgroup out of memory: Killed process" in first["text"]
    # restarts every ~2 s: each run gets its own kernel line, not its neighbour's
    ended = [r for r in report["runs"] if r["ended"]]
    assert ended and all("kernel log (dmesg.txt)" in r["oom_sources"] for r in ended)
    pids = [next(c["text"] for c in r["oom"] if "Killed process" in c["text"]) for r in ended]
    assert len(set(pids)) == len(pids)
