"""The deploy gate's arithmetic (plugins/module_utils/gate.py), with the numbers docs/deploy.md works by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.module_utils import gate  # noqa: E402

ALL = ("firehose", "backfill", "labeler")
FLAT = {"verdict": "flat", "slope_bytes_per_second": 0.0}


def test_the_issue_example_25_s_and_five_minutes() -> None:
    # The fault killed the service every 25 s: 5 minutes without an exit leaves odds below 1 in 100,000.
    odds = gate.odds_unchanged(300, 25)
    assert odds == pytest.approx(math.exp(-12))
    assert odds is not None and odds < 1e-5
    assert gate.one_in(odds) == "1 in 162,755"


def test_gate_length_is_minus_log_of_one_minus_confidence_times_the_interval() -> None:
    # docs/deploy.md's worked example: 0.999 and 25 s -> ln(1000) x 25 = 172.7 s.
    assert gate.gate_seconds(25, 0.999, 60, 3600) == pytest.approx(math.log(1000) * 25)
    assert gate.gate_seconds(25, 0.999, 60, 3600) == pytest.approx(172.69, abs=0.01)
    # The floor wins over a short computed watch.
    assert gate.gate_seconds(5, 0.9, 60, 3600) == 60
    # A rare fault (one exit a week) would ask for 48 days: the cap, never under the floor.
    assert gate.gate_seconds(7 * 86400, 0.999, 60, 3600, 86400) == 86400
    assert gate.gate_seconds(25, 0.999, 60, 3600, 30) == 60
    # No interval: the fixed watch, still at least the floor.
    assert gate.gate_seconds(None, 0.999, 60, 3600) == 3600
    assert gate.gate_seconds(None, 0.999, 600, 300) == 600
    # At T the confidence reached is the one asked for.
    t = gate.gate_seconds(25, 0.999, 0, 3600)
    assert gate.confidence_reached(t, 25) == pytest.approx(0.999)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1])
def test_a_confidence_outside_0_1_is_refused(confidence: float) -> None:
    with pytest.raises(gate.GateError, match="deploy_gate_confidence"):
        gate.gate_seconds(25, confidence, 60, 3600)


def test_baseline_from_report_prefers_production_history() -> None:
    report = {
        "production_history": {"intervals_seconds": {"count": 4, "min": 20, "median": 25.0, "max": 31}},
        "restarts": {"intervals_seconds": {"count": 3, "min": 4.8, "median": 4.9, "max": 5.1}},
    }
    interval, detail = gate.baseline_from_report(report) or (0, "")
    assert interval == 25.0 and "production" in detail
    del report["production_history"]
    interval, detail = gate.baseline_from_report(report) or (0, "")
    assert interval == 4.9 and "capture window" in detail
    assert gate.baseline_from_report({"restarts": {"intervals_seconds": {"count": 0}}}) is None
    assert gate.baseline_from_report(None) is None


def test_baseline_from_history_events_then_restart_count() -> None:
    interval, detail = gate.baseline_from_history([100.0, 125.0, 150.0, 175.0], 3, 0.0, 180.0) or (0, "")
    assert interval == 25.0 and "4 exits" in detail
    # One event left (Docker forgot the rest): RestartCount over the span.
    interval, detail = gate.baseline_from_history([175.0], 3, 100.0, 175.0) or (0, "")
    assert interval == 25.0 and "RestartCount 3" in detail
    assert gate.baseline_from_history([], 0, 100.0, 175.0) is None


def test_memory_trend_leak_flat_unknown() -> None:
    mib = 1024 * 1024
    # 1 MiB/s towards a 64 MiB limit: reaches it within the 24 h horizon.
    leak = [(float(t), 2 * mib + t * mib) for t in range(10)]
    trend = gate.memory_trend(leak, 64 * mib, 24 * 3600, 6)
    assert trend["verdict"] == "leak"
    assert trend["slope_bytes_per_second"] == pytest.approx(mib)
    assert trend["seconds_to_limit"] == pytest.approx(64 - 11, abs=0.5)
    # The same slope towards a limit days away is no leak within the horizon.
    assert gate.memory_trend(leak, 10**6 * mib, 24 * 3600, 6)["verdict"] == "flat"
    flat = [(float(t), 800 * 1024) for t in range(10)]
    assert gate.memory_trend(flat, 64 * mib, 24 * 3600, 6)["verdict"] == "flat"
    # Noise around a level is no trend.
    noisy = [(float(t), 50 * mib + (mib if t % 2 else -mib)) for t in range(12)]
    assert gate.memory_trend(noisy, 64 * mib, 24 * 3600, 6)["verdict"] == "flat"
    assert gate.memory_trend(leak[:3], 64 * mib, 24 * 3600, 6)["verdict"] == "unknown"


def test_mem_usage_parses_docker_stats() -> None:
    assert gate.parse_mem_usage("792KiB / 64MiB") == (792 * 1024, 64 * 1024 * 1024)
    assert gate.parse_mem_usage("1.5GiB / 7.6GiB") == (int(1.5 * 1024**3), int(7.6 * 1024**3))
    assert gate.parse_mem_usage("--") == (None, None)


def test_lines_classified_as_the_real_service_prints_them() -> None:
    stamp = "2026-01-01T00:00:00.123456789Z "
    assert gate.classify_line(
        stamp + "\x1b[2m2026-01-01T00:00:00.1Z\x1b[0m \x1b[32m INFO\x1b[0m "
        "\x1b[2mrsky_ingester::backfill\x1b[0m\x1b[2m:\x1b[0m Processed 10000 repos"
    ) == (
        "work",
        "backfill",
    )
    assert gate.classify_line(
        stamp + "2026-01-01T00:00:00.1Z  INFO rsky_ingester::firehose: Write task received batch of 500 events"
    ) == ("work", "firehose")
    assert gate.classify_line(
        "2026-01-01T00:00:00.1Z  INFO rsky_ingester::labeler: Starting LabelerIngester for x"
    ) == (None, None)
    assert gate.classify_line(
        "2026-01-01T00:00:00.1Z ERROR rsky_ingester::firehose: FirehoseIngester connection error"
    ) == (None, None)
    assert gate.classify_line(stamp + "FATAL PANIC OCCURRED") == ("panic", None)
    assert gate.classify_line("thread 'tokio-runtime-worker' panicked at src/firehose.rs:1:2:") == ("panic", None)


def test_decide_fails_at_the_first_exit_a_panic_or_a_leak() -> None:
    fams = {f: 3 for f in ALL}
    state = gate.decide(9.0, 60, 25, [{"exit_code": 1, "after": 8.2}], None, fams, ALL, FLAT)
    assert state["decision"] == "fail" and state["ended_by"] == "exit" and "8.2 s" in state["why"]
    state = gate.decide(9.0, 60, 25, [], "FATAL PANIC OCCURRED", fams, ALL, FLAT)
    assert state["ended_by"] == "panic"
    leak = {"verdict": "leak", "slope_bytes_per_second": 1024.0, "seconds_to_limit": 50.0, "limit_bytes": 1}
    assert gate.decide(9.0, 60, 25, [], None, fams, ALL, leak)["ended_by"] == "memory"


def test_decide_passes_only_after_t_with_every_family_and_flat_memory() -> None:
    fams = {f: 3 for f in ALL}
    assert gate.decide(59.0, 60, 25, [], None, fams, ALL, FLAT)["decision"] == "running"
    passed = gate.decide(60.0, 60, 25, [], None, fams, ALL, FLAT)
    assert passed["decision"] == "pass" and passed["confidence_reached"] == pytest.approx(
        1 - math.exp(-60 / 25), abs=1e-6
    )
    silent = gate.decide(60.0, 60, 25, [], None, dict(fams, labeler=0), ALL, FLAT)
    assert silent["decision"] == "fail" and silent["silent_families"] == ["labeler"]
    # Without the labeler among the families asked for, its silence does not count.
    assert gate.decide(60.0, 60, 25, [], None, dict(fams, labeler=0), ALL[:2], FLAT)["decision"] == "pass"
    unknown = {"verdict": "unknown"}
    assert gate.decide(60.0, 60, 25, [], None, fams, ALL, unknown)["decision"] == "running"
    assert gate.decide(120.0, 60, 25, [], None, fams, ALL, unknown)["ended_by"] == "memory-unknown"
    assert gate.decide(30.0, 60, 25, [], None, fams, ALL, FLAT, window_ended="deadline")["ended_by"] == "window"


def test_progress_line_says_the_odds() -> None:
    state = gate.decide(50.0, 173, 25, [], None, {f: 1 for f in ALL}, ALL, FLAT)
    line = gate.progress_line(state, FLAT)
    assert line.startswith("0:50 of 2:53, 0 exit(s), odds the old fault is still there 1 in 7")
    fixed = gate.progress_line(gate.decide(50.0, 3600, None, [], None, {}, ALL, FLAT), FLAT)
    assert "fixed watch" in fixed and "families silent: firehose, backfill, labeler" in fixed


def test_exits_from_events_keeps_die_events_since_the_start() -> None:
    events = [
        {"Action": "die", "timeNano": int(99e9), "Actor": {"Attributes": {"exitCode": "137"}}},
        {"Action": "start", "timeNano": int(100e9)},
        {"Action": "die", "timeNano": int(108.5e9), "Actor": {"Attributes": {"exitCode": "1", "image": "fix"}}},
    ]
    exits = gate.exits_from_events(events, 100.0)
    assert exits == [{"exit_code": 1, "epoch": 108.5, "after": 8.5, "image": "fix"}]
