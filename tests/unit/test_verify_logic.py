"""collector.verify and collector.runner without Docker: facts in, verdicts out."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.exitcodes import Exit
from collector.runner import (
    HostVerdict,
    RunOutcome,
    one_line,
    rotate,
    verdicts_from_events,
)
from collector.verify import (
    Status,
    Thresholds,
    VerifyError,
    evaluate,
    history_line,
    main,
    parse_facts,
    parse_history,
    render_history,
    render_markdown,
)
from tests.support.verify_facts import CID, MIB, NOW, STARTED, facts, iso


def judge(raw: dict[str, Any], **thresholds: Any) -> dict[str, Any]:
    verdict = evaluate(parse_facts(raw), Thresholds(**thresholds), host="h")
    return {c.name: c for c in verdict.criteria} | {"_verdict": verdict}


def test_healthy_passes_when_uptime_threshold_met() -> None:
    result = judge(facts(), min_uptime_hours=0.5)
    assert result["_verdict"].passed
    assert all(result[n].status is Status.PASS for n in ("exit_traces", "uptime", "activity", "memory", "kernel_oom"))


def test_uptime_fails_before_24_hours_without_baseline() -> None:
    result = judge(facts())
    assert result["_verdict"].failed == ("uptime",)
    assert "1.0 h" in result["uptime"].measured


def test_matching_old_baseline_credits_uptime() -> None:
    baseline = {
        "recorded_at": iso(NOW - 25 * 3600),
        "container_id": CID,
        "started_at": STARTED,
        "restart_count": 0,
        "image": "rsky-ingester:latest",
        "kernel_oom_lines": [],
    }
    result = judge(facts(baseline=baseline))
    assert result["uptime"].status is Status.PASS
    assert "25.0 h" in result["uptime"].measured


def test_restart_since_baseline_fails_even_if_old() -> None:
    baseline = {
        "recorded_at": iso(NOW - 48 * 3600),
        "container_id": CID,
        "started_at": iso(NOW - 50 * 3600),
        "restart_count": 0,
        "image": "x",
        "kernel_oom_lines": [],
    }
    raw = facts(baseline=baseline, container={"restart_count": 1})
    result = judge(raw)
    assert result["uptime"].status is Status.FAIL
    assert "1 restart(s) since baseline" in result["uptime"].measured


def test_baseline_of_another_container_is_noted_not_credited() -> None:
    baseline = {
        "recorded_at": iso(NOW - 48 * 3600),
        "container_id": "cd" * 32,
        "started_at": STARTED,
        "restart_count": 0,
        "image": "x",
        "kernel_oom_lines": [],
    }
    result = judge(facts(baseline=baseline))
    assert result["uptime"].status is Status.FAIL
    assert any("recreated" in e for e in result["uptime"].evidence)


def test_restart_during_window_fails_uptime() -> None:
    raw = facts()
    raw["samples"][-1]["started_at"] = iso(NOW - 1)
    result = judge(raw, min_uptime_hours=0)
    assert result["uptime"].status is Status.FAIL


def test_not_running_fails_uptime_and_memory_is_unknown() -> None:
    raw = facts(container={"running": False, "status": "restarting", "restarting": True}, samples=[])
    result = judge(raw, min_uptime_hours=0)
    assert result["uptime"].status is Status.FAIL
    assert result["memory"].status is Status.UNKNOWN
    assert set(result["_verdict"].failed) == {"uptime", "memory"}
    assert evaluate(parse_facts(raw), Thresholds(min_uptime_hours=0, allow_unknown=True)).failed == ("uptime",)


def test_exit_lines_fail_with_evidence() -> None:
    lines = [
        {
            "ts": iso(NOW - 30),
            "kind": "exit-path",
            "text": "[EXIT-TRACE] tokio::select! triggered on labeler_handle - EXIT PATH F",
        },
        {"ts": iso(NOW - 30), "kind": "critical", "text": "CRITICAL: Labeler ingester exited unexpectedly."},
    ]
    result = judge(facts(logs={"exit_lines_total": 2, "exit_lines": lines}), min_uptime_hours=0)
    assert result["_verdict"].failed == ("exit_traces",)
    assert "2 exit lines" in result["exit_traces"].measured
    assert "EXIT PATH F" in result["exit_traces"].evidence[0]


def test_silent_family_fails_activity() -> None:
    families = {
        "firehose": {"count": 10, "last": iso(NOW - 5)},
        "backfill": {"count": 10, "last": iso(NOW - 3600)},
        "labeler": {"count": 0, "last": None},
    }
    result = judge(facts(logs={"families": families}), min_uptime_hours=0)
    assert result["activity"].status is Status.FAIL
    assert "silent: backfill, labeler" in result["activity"].measured
    ok = judge(facts(logs={"families": families}), min_uptime_hours=0, families=("firehose",))
    assert ok["activity"].status is Status.PASS


def test_leak_fails_memory_with_slope_and_time_to_limit() -> None:
    raw = facts()
    raw["samples"] = [
        {"epoch": NOW - 10 + i, "bytes": 100 * MIB + i * 2 * MIB, "started_at": STARTED, "restart_count": 0}
        for i in range(10)
    ]
    result = judge(raw, min_uptime_hours=0)
    assert result["_verdict"].failed == ("memory",)
    assert "+7200.0 MiB/h" in result["memory"].measured
    trend = result["_verdict"].memory
    assert trend is not None and trend.hours_to_limit is not None and trend.hours_to_limit < 0.5


def test_growth_below_noise_is_not_a_leak() -> None:
    raw = facts()
    raw["samples"] = [
        {"epoch": NOW - 10 + i, "bytes": 100 * MIB + i * 100 * 1024, "started_at": STARTED, "restart_count": 0}
        for i in range(10)
    ]
    assert judge(raw, min_uptime_hours=0)["memory"].status is Status.PASS


def test_slow_growth_across_runs_fails_memory() -> None:
    # Flat within each short window, but +100 MiB per hour across the day's runs.
    history = [
        json.dumps(
            {
                "checked_at": iso(NOW - h * 3600),
                "container_id": CID,
                "started_at": STARTED,
                "memory_bytes": 700 * MIB - h * 100 * MIB,
            }
        )
        for h in (6, 4, 2)
    ]
    raw = facts()
    raw["container"]["memory_limit"] = 1500 * MIB
    verdict = evaluate(parse_facts(raw), Thresholds(min_uptime_hours=0), parse_history(history))
    memory = next(c for c in verdict.criteria if c.name == "memory")
    assert memory.status is Status.FAIL
    assert memory.measured.startswith("across runs:")


def test_no_limit_uses_growth_rate() -> None:
    raw = facts(container={"memory_limit": 0})
    raw["samples"] = [
        {"epoch": NOW - 10 + i, "bytes": 100 * MIB + i * MIB, "started_at": STARTED, "restart_count": 0}
        for i in range(10)
    ]
    result = judge(raw, min_uptime_hours=0)
    assert result["memory"].status is Status.FAIL
    assert "no memory limit set" in result["memory"].measured


OOM = [
    f"[86000.100000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={CID},mems_allowed=0,"
    f"oom_memcg=/docker/{CID},task_memcg=/docker/{CID},task=ingester,pid=4242,uid=0",
    "[86000.100100] Memory cgroup out of memory: Killed process 4242 (ingester) total-vm:1kB, "
    "anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0",
]
OTHER = [
    "[86001.000000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=x,mems_allowed=0,"
    f"oom_memcg=/docker/{'ef' * 32},task_memcg=/docker/{'ef' * 32},task=ingester,pid=5555,uid=0",
    "[86001.000100] Memory cgroup out of memory: Killed process 5555 (ingester) total-vm:1kB",
]


def test_oom_of_this_container_fails_others_are_noted() -> None:
    result = judge(facts(kernel={"lines": OOM + OTHER}), min_uptime_hours=0)
    assert result["_verdict"].failed == ("kernel_oom",)
    assert "1 OOM kill(s) of this container" in result["kernel_oom"].measured
    assert any("1 other OOM kill" in e for e in result["kernel_oom"].evidence)


def test_oom_known_at_baseline_does_not_count() -> None:
    baseline = {
        "recorded_at": iso(NOW - 25 * 3600),
        "container_id": CID,
        "started_at": STARTED,
        "restart_count": 0,
        "image": "x",
        "kernel_oom_lines": OOM,
    }
    result = judge(facts(kernel={"lines": OOM}, baseline=baseline))
    assert result["kernel_oom"].status is Status.PASS


def test_oom_before_the_container_existed_does_not_count() -> None:
    # boot at NOW-86400: 9000 s after boot is long before the container was created.
    lines = ["[ 9000.100100] Out of memory: Killed process 4242 (ingester) total-vm:1kB"]
    assert judge(facts(kernel={"lines": lines}), min_uptime_hours=0)["kernel_oom"].status is Status.PASS
    recent = [f"[{86390:>6}.000000] Out of memory: Killed process 4242 (ingester) total-vm:1kB"]
    assert judge(facts(kernel={"lines": recent}), min_uptime_hours=0)["kernel_oom"].status is Status.FAIL


def test_unreadable_kernel_log_is_unknown_unless_inspect_says_oom() -> None:
    raw = facts(kernel={"source": None, "error": "dmesg: read kernel buffer failed"})
    assert judge(raw, min_uptime_hours=0)["kernel_oom"].status is Status.UNKNOWN
    raw = facts(kernel={"source": None, "error": "refused"}, container={"oom_killed": True})
    assert judge(raw, min_uptime_hours=0)["kernel_oom"].status is Status.FAIL


def test_render_and_history_table() -> None:
    verdict = evaluate(parse_facts(facts()), Thresholds(), host="bsky-prod")
    line = history_line(verdict)
    assert line["verdict"] == "fail" and line["failed"] == ["uptime"]
    md = render_markdown(verdict, [line])
    assert "**FAIL**" in md and "| No container restarts for 24 h | FAIL |" in md
    table = render_history([line, {**line, "verdict": "pass", "failed": []}])
    assert table.count("| bsky-prod |") == 2 and "| PASS | — |" in table


def test_parse_history_skips_foreign_lines() -> None:
    good = json.dumps({"checked_at": iso(NOW), "container_id": CID, "started_at": STARTED, "memory_bytes": 5})
    entries = parse_history(["not json", "{}", good, "[1, 2]"])
    assert len(entries) == 1 and entries[0].memory_bytes == 5


def test_parse_facts_rejects_unknown_schema() -> None:
    with pytest.raises(VerifyError, match="schema"):
        parse_facts({"schema": 2})


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    )
)
def test_parse_facts_raises_only_its_own_error(data: Any) -> None:
    if isinstance(data, dict):
        data = {**facts(), **data}
        # Also damage one level down, where the probe's parts live.
        for part in ("container", "logs", "kernel"):
            data[part] = {**facts()[part], **{k: data.get(k) for k in list(data)[:3]}}
    with contextlib.suppress(VerifyError):
        parse_facts(data)


def test_cli_exit_codes_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "facts.json").write_text(json.dumps(facts()))
    out = tmp_path / "out"
    rc = main(
        [
            "evaluate",
            "--facts",
            str(tmp_path / "facts.json"),
            "--host",
            "h",
            "--out-dir",
            str(out),
            "--min-uptime-hours",
            "0.5",
            "--history-md",
            str(tmp_path / "history.md"),
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert rc == Exit.OK and printed["passed"] and printed["summary"] == "h: PASS (5/5 criteria)"
    assert {p.name for p in out.iterdir()} == {"facts.json", "verify.json", "verify.md"}
    assert json.loads((out / "verify.json").read_text())["passed"] is True

    rc = main(["evaluate", "--facts", str(tmp_path / "facts.json"), "--host", "h"])
    assert rc == Exit.VERIFY_FAILED and json.loads(capsys.readouterr().out)["failed"] == ["uptime"]

    (tmp_path / "bad.json").write_text("{")
    assert main(["evaluate", "--facts", str(tmp_path / "bad.json")]) == Exit.UNREADABLE
    assert capsys.readouterr().err.startswith("verify: facts ")


# ------------------------------------------------------------------------- runner ---


def stats_event(verdicts: dict[str, Any], failures: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "event": "playbook_on_stats",
        "event_data": {"artifact_data": {"verify_verdicts": verdicts}, "failures": failures or {}, "dark": {}},
    }


def test_verdicts_come_from_the_stats_event() -> None:
    events = [
        {"event": "runner_on_ok", "event_data": {}},
        stats_event(
            {
                "b": {"passed": False, "failed": ["uptime"], "summary": "b: FAIL (uptime)", "report": "r"},
                "a": {"passed": True, "failed": [], "summary": "a: PASS", "report": ""},
            },
            failures={"b": 1},
        ),
    ]
    verdicts = verdicts_from_events(events)
    assert [v.host for v in verdicts] == ["a", "b"]
    assert verdicts[1] == HostVerdict("b", False, ("uptime",), "b: FAIL (uptime)", "r")
    outcome = RunOutcome("failed", 2, verdicts, ("b",), Path("/x"))
    assert outcome.exit_code is Exit.VERIFY_FAILED
    assert one_line(outcome) == "verify FAIL: a PASS; b FAIL (uptime) — artifacts /x"


def test_a_host_without_verdict_is_an_error() -> None:
    outcome = RunOutcome("failed", 2, (), ("h",), Path("/x"))
    assert outcome.exit_code is Exit.NO_VERDICT
    assert one_line(outcome) == "verify ERROR: h no verdict — artifacts /x"


def test_rotate_keeps_the_newest(tmp_path: Path) -> None:
    for name in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        (tmp_path / name).mkdir()
    removed = rotate(tmp_path, 2)
    assert [p.name for p in removed] == ["20260101T000000Z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260102T000000Z", "20260103T000000Z"]
