"""The fleet summary: per-host folders made by the collector itself, one failed and one unreachable host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector.exitcodes import Exit
from collector.fleet import FleetError, capture_cause, parse_outcomes
from collector.report.fleet_schema import validate
from collector.report.render import md_text
from tests.support.fixtures import BUNDLES

STAMP = "20261201T100000Z"

# Which bundle each host's capture found, and what the answer key (the bundles' expected.json,
# written from the reference) says it is.
HOSTS = {
    "prod-a": "config-error",  # INGESTER_MODE=bogus
    "prod-b": "config-error",
    "prod-c": "hypothetical-task-panic",  # a panic in labeler.rs
}


def _capture(dest: Path, host: str, bundle: str, stamp: str = STAMP, mode: str = "capture") -> Path:
    """A host folder as capture.yml leaves it: the bundle's files and the collector's reports."""
    folder = dest / host / f"{stamp}-{mode}"
    code = main(["summarize", str(BUNDLES / bundle), "--out", str(folder), "--quiet"])
    assert code in (Exit.OK, Exit.CRASH_LOOP, Exit.INCONCLUSIVE)
    (dest / host / f"{stamp}-{mode}.tar.gz").write_bytes(b"")
    return folder


def _expected(bundle: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BUNDLES / bundle / "expected.json").read_text())
    return data


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "captures"
    for host, bundle in HOSTS.items():
        _capture(d, host, bundle)
    return d


def _outcomes(tmp_path: Path, dest: Path) -> Path:
    data = {
        host: {
            "status": "ok",
            "bundle": str(dest / host / f"{STAMP}-capture.tar.gz"),
            "report": str(dest / host / f"{STAMP}-capture" / "report.md"),
        }
        for host in HOSTS
    }
    data["prod-d"] = {"status": "failed", "failed_step": "window", "msg": "the capture window did not start"}
    data["prod-e"] = {"status": "unreachable", "msg": "ssh: connect to host prod-e port 22: Connection refused"}
    path = tmp_path / "outcomes.json"
    path.write_text(json.dumps(data))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_three_hosts_grouped_by_cause(dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["fleet", str(dest)], capsys)

    assert err == ""
    assert code == Exit.CRASH_LOOP
    doc = json.loads((dest / "fleet.json").read_text())
    assert validate(doc) == []
    assert doc["kind"] == "capture" and doc["exit_code"] == 10
    assert [h["host"] for h in doc["hosts"]] == ["prod-a", "prod-b", "prod-c"]
    for h in doc["hosts"]:
        want = _expected(HOSTS[h["host"]])
        assert h["status"] == "ok"
        assert h["verdict"] == want["scenario"]
        assert h["task"] == want.get("task")
        assert h["exit_path"] == want.get("exit_path")
        assert h["report"] == str(dest / h["host"] / f"{STAMP}-capture" / "report.md")
        assert h["bundle"] == str(dest / h["host"] / f"{STAMP}-capture.tar.gz")
    assert doc["summary"] == (
        "2 of 3 hosts: the same configuration error (INGESTER_MODE) · 1 host: a panic in labeler.rs"
    )
    assert [g["hosts"] for g in doc["groups"]] == [["prod-a", "prod-b"], ["prod-c"]]
    assert out.splitlines()[0] == f"fleet: {doc['summary']} (exit 10)"
    assert "Configuration error (high)" in out and "Task panic on malformed data (high)" in out
    md = (dest / "fleet.md").read_text()
    assert md_text(doc["summary"]) in md and "| prod-c | panic | labeler | F |" in md


def test_a_failed_and_an_unreachable_host(dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["fleet", str(dest), "--outcomes", str(_outcomes(tmp_path, dest))], capsys)

    assert code == Exit.NO_VERDICT, "a host without a verdict is the worst outcome"
    doc = json.loads((dest / "fleet.json").read_text())
    assert validate(doc) == []
    rows = {h["host"]: h for h in doc["hosts"]}
    assert set(rows) == {"prod-a", "prod-b", "prod-c", "prod-d", "prod-e"}
    assert rows["prod-d"]["status"] == "failed" and rows["prod-d"]["failed_step"] == "window"
    assert rows["prod-d"]["exit_code"] == Exit.NO_VERDICT
    assert rows["prod-e"]["status"] == "unreachable"
    assert doc["counts"] == {"ok": 3, "failed": 1, "unreachable": 1, "missing": 0, "unreadable": 0}
    assert "1 host: capture failed at window" in doc["summary"] and "1 host: unreachable" in doc["summary"]
    assert doc["summary"].startswith("2 of 5 hosts: the same configuration error (INGESTER_MODE)")
    assert "prod-d: capture failed at window: the capture window did not start" in out
    assert "prod-e: unreachable: ssh: connect to host prod-e port 22: Connection refused" in out
    md = (dest / "fleet.md").read_text()
    assert "| prod-e | **unreachable** |" in md


def test_outcomes_name_the_hosts_targeted_and_their_report(
    dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A newer stable capture of prod-a from another run; this run's outcome names the older one.
    _capture(dest, "prod-a", "stable", stamp="20261201T110000Z", mode="observe")
    _capture(dest, "prod-z", "oom-kill")  # a host this run did not target
    outcomes = tmp_path / "o.json"
    report = dest / "prod-a" / f"{STAMP}-capture" / "report.md"
    outcomes.write_text(json.dumps({"prod-a": {"status": "ok", "report": str(report)}}))

    code, _, _ = _run(["fleet", str(dest), "--outcomes", str(outcomes), "--quiet"], capsys)
    doc = json.loads((dest / "fleet.json").read_text())

    assert code == Exit.CRASH_LOOP
    assert [(h["host"], h["verdict"]) for h in doc["hosts"]] == [("prod-a", "config-error")]

    # Without outcomes: every host folder, each with its newest capture.
    code, _, _ = _run(["fleet", str(dest), "--quiet"], capsys)
    doc = json.loads((dest / "fleet.json").read_text())
    assert {h["host"]: h["verdict"] for h in doc["hosts"]} == {
        "prod-a": "stable",
        "prod-b": "config-error",
        "prod-c": "panic",
        "prod-z": "oom-kill",
    }
    assert code == Exit.CRASH_LOOP


def test_a_damaged_report_is_a_host_without_verdict(dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dest / "prod-c" / f"{STAMP}-capture" / "report.json").write_text("{not json")
    (dest / "prod-f" / f"{STAMP}-capture").mkdir(parents=True)  # a capture that never got a report

    code, out, err = _run(["fleet", str(dest), "--format", "json"], capsys)

    assert err == ""
    doc = json.loads(out)
    assert validate(doc) == []
    rows = {h["host"]: h for h in doc["hosts"]}
    assert rows["prod-c"]["status"] == "unreadable" and "not JSON" in rows["prod-c"]["msg"]
    assert rows["prod-f"]["status"] == "missing"
    assert code == Exit.NO_VERDICT


def test_all_stable_is_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "c"
    _capture(dest, "one", "stable")
    _capture(dest, "two", "stable")
    code, out, _ = _run(["fleet", str(dest)], capsys)
    assert code == Exit.OK
    assert out.startswith("fleet: 2 of 2 hosts: stable (exit 0)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fleet", "{tmp}/nowhere"], "not a folder"),
        (["fleet", "{tmp}"], "no per-host folders"),
        (["fleet", "{tmp}", "--outcomes", "{tmp}/missing.json"], "outcomes"),
        (["fleet", "{tmp}", "--outcomes", "{tmp}/bad.json"], "status 'fine' is not one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"h": {"status": "fine"}}))
    code, _, err = _run([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == Exit.UNREADABLE
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_outcomes_parser_rejects_what_the_doc_does_not_describe() -> None:
    with pytest.raises(FleetError):
        parse_outcomes([])
    with pytest.raises(FleetError):
        parse_outcomes({"h": "ok"})
    assert parse_outcomes({"h": {"status": "failed", "failed_step": ""}})["h"].failed_step is None


def test_cause_keys_tell_apart_what_differs() -> None:
    def report(scenario: str, **extra: Any) -> dict[str, Any]:
        return {"verdict": {"scenario": scenario, "task": extra.pop("task", None)}, **extra}

    redis = report("config-error", configuration_errors=[{"variable": "REDIS_URL"}])
    mode = report("config-error", configuration_errors=[{"variable": "INGESTER_MODE"}])
    assert capture_cause(redis) == ("config-error:REDIS_URL", "configuration error (REDIS_URL)")
    assert capture_cause(redis)[0] != capture_cause(mode)[0]
    firehose = report("panic", panic={"location": "rsky-ingester/src/firehose.rs:123:45"})
    assert capture_cause(firehose)[1] == "panic in firehose.rs"


# ------------------------------------------------------------------------------ verify ---


def _verify(dest: Path, host: str, passed: bool, failed: list[str], stamp: str = STAMP) -> None:
    folder = dest / host / "verify" / stamp
    folder.mkdir(parents=True)
    names = ["exit_traces", "uptime", "activity", "memory", "kernel_oom"]
    criteria = [{"name": n, "status": "fail" if n in failed else "pass"} for n in names]
    doc = {"schema": 1, "host": host, "passed": passed, "failed": failed, "summary": "s", "criteria": criteria}
    (folder / "verify.json").write_text(json.dumps(doc))
    (folder / "verify.md").write_text("# v\n")


def test_verify_fleet_says_which_criterion_fails_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "captures"
    _verify(dest, "prod-a", True, [])
    _verify(dest, "prod-b", False, ["activity"])
    _verify(dest, "prod-c", False, ["activity"])
    _capture(dest, "prod-a", "config-error")  # capture folders beside verify/ are not read
    outcomes = tmp_path / "o.json"
    outcomes.write_text(
        json.dumps(
            {
                "prod-a": {"status": "ok"},
                "prod-b": {"status": "ok"},
                "prod-c": {"status": "ok"},
                "prod-d": {"status": "unreachable"},
            }
        )
    )

    code, out, _ = _run(["fleet", "--verify", str(dest)], capsys)
    assert code == Exit.VERIFY_FAILED
    doc = json.loads((dest / "fleet-verify.json").read_text())
    assert validate(doc) == []
    assert doc["summary"] == "2 of 3 hosts: fail (activity) · 1 host: pass"
    by_name = {c["name"]: c for c in doc["criteria"]}
    assert by_name["activity"]["failing_hosts"] == ["prod-b", "prod-c"]
    assert by_name["memory"]["passing_hosts"] == ["prod-a", "prod-b", "prod-c"]
    assert "prod-b  FAIL     activity" in out
    assert (dest / "fleet-verify.md").read_text().count("| activity | prod-b, prod-c |") == 1
    assert not (dest / "fleet.json").exists(), "the capture fleet files are left alone"

    code, out, _ = _run(["fleet", "--verify", str(dest), "--outcomes", str(outcomes)], capsys)
    assert code == Exit.NO_VERDICT
    assert "prod-d: unreachable" in out


def test_the_validator_catches_a_wrong_shape(dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["fleet", str(dest), "--quiet"])
    doc = json.loads((dest / "fleet.json").read_text())
    assert validate(doc) == []
    assert validate([]) == ["$: expected an object"]
    assert validate({**doc, "kind": "other"}) == ["$.kind: 'other' is not one of capture, verify"]
    broken = {**doc, "schema_version": 2, "hosts": [{**doc["hosts"][0], "status": "fine", "exit_code": "10"}]}
    del broken["counts"]
    problems = validate(broken)
    assert "$.counts: missing" in problems and "$.schema_version: not 1" in problems
    assert any(p.startswith("$.hosts[0].exit_code: str") for p in problems)
    assert any(p.startswith("$.hosts[0].status: 'fine'") for p in problems)


def test_a_failed_play_keeps_its_own_verdict_never_an_older_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "captures"
    _verify(dest, "prod-a", False, ["activity"])
    _capture(dest, "prod-b", "config-error")  # an older capture of prod-b; this run failed before a report
    report = dest / "prod-a" / "verify" / STAMP / "verify.md"
    outcomes = tmp_path / "o.json"
    assert_msg = "verify failed on prod-a: activity"
    outcomes.write_text(
        json.dumps({"prod-a": {"status": "failed", "failed_step": "assert", "msg": assert_msg, "report": str(report)}})
    )
    code, _, _ = _run(["fleet", "--verify", str(dest), "--outcomes", str(outcomes), "--quiet"], capsys)
    row = json.loads((dest / "fleet-verify.json").read_text())["hosts"][0]
    assert code == Exit.VERIFY_FAILED
    assert (row["status"], row["verdict"], row["failed_step"], row["msg"]) == ("ok", "fail", "assert", assert_msg)

    outcomes.write_text(json.dumps({"prod-b": {"status": "failed", "failed_step": "preflight", "msg": "no docker"}}))
    code, _, _ = _run(["fleet", str(dest), "--outcomes", str(outcomes), "--quiet"], capsys)
    row = json.loads((dest / "fleet.json").read_text())["hosts"][0]
    assert code == Exit.NO_VERDICT
    assert (row["status"], row["verdict"], row["cause"]) == ("failed", None, "capture failed at preflight")
