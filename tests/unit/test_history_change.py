"""The verification history marks the run where a host went from PASS to FAIL."""

from __future__ import annotations

from collector.verify import render_history


def test_pass_to_fail_is_noted_once_per_host() -> None:
    rows = [
        {"host": "a", "verdict": "pass"},
        {"host": "b", "verdict": "fail"},
        {"host": "a", "verdict": "fail"},
        {"host": "a", "verdict": "fail"},
        {"host": "b", "verdict": "pass"},
    ]
    lines = [ln for ln in render_history(rows).splitlines() if ln.startswith("|  |")]
    assert [ln.split(" | ")[2] for ln in lines] == ["PASS", "FAIL", "FAIL (was PASS)", "FAIL", "PASS"]
