"""Snapshot tests: every fixture bundle and bare log, diagnosed and compared whole.

A snapshot holds the stable part of report.json (no times, no line texts that change when a
fixture is re-recorded). It is a snapshot, not the truth: what each fixture means is the answer
key in tests/answers/ (tests/unit/test_answers.py), written by hand from the reference. A
snapshot may be re-recorded after a rule change (review the diff):
UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py -q
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from tests.support.fixtures import BUNDLES, LOGS

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CASES = sorted(p for p in BUNDLES.glob("*") if p.is_dir())
LOG_CASES = sorted(LOGS.glob("*.log"))
# A recorded bundle's own logs read bare (the answer key names them): the docker-ts and tee forms of
# the case, kept once, in the bundle; their snapshots keep the form's name in logs/.
FORMS = {"ingester.log": "docker-ts", "tee.log": "tee"}


def _form_name(log: Path) -> str:
    """``<case>.<form>``: the name the bare form of a bundle's log goes by in logs/."""
    return f"{log.parents[1].name}.{FORMS.get(log.name)}"


BUNDLE_LOGS = sorted(
    p
    for p in BUNDLES.glob("*/logs/*.log")
    if (LOGS / f"{_form_name(p)}.expected.json").exists() and not (LOGS / f"{_form_name(p)}.log").exists()
)


def stable_subset(report: dict[str, Any], code: int) -> dict[str, Any]:
    """What a golden pins: the verdict and the facts behind it, not timings or wording."""
    v = report["verdict"]
    panic = report["panic"]
    r = report["restarts"]
    hist = report["production_history"]
    return {
        "exit_code": code,
        "scenario": v["scenario"],
        "task": v["task"],
        "exit_path": v["exit_path"],
        "confidence": v["confidence"],
        "deterministic": v["deterministic"],
        "needs_debug_build": v["needs_debug_build"],
        "instrumented": v["instrumented"],
        "panic": None
        if panic is None
        else {"location": panic["location"], "message": panic["message"], "style": panic["style"]},
        "restarts": {
            "count": r["count"],
            "runs": r["runs"],
            "exit_codes": r["exit_codes"],
            "exit_paths": r["exit_paths"],
            "scenarios": r["scenarios"],
            "killed_via_docker_api": r["killed_via_docker_api"],
        },
        "runs": [
            [run["scenario"], run["exit_code"], run["exit_path"], run["task"], run["partial"]]
            for run in report["runs"]
        ],
        "memory": {
            "limit_bytes": report["memory"]["limit_bytes"],
            "reaches_limit_at_exit": report["memory"]["reaches_limit_at_exit"],
        },
        "answerable": {q["id"]: q["answerable"] for q in report["questions"]},
        "top_cause": report["root_causes"][0]["id"],
        "production_history": {
            "present": hist["present"],
            "runs": hist["runs"],
            "verdict": hist.get("verdict"),
            "exit_codes": hist.get("exit_codes"),
        },
        "capture": {
            "tee_missed_lines": report["capture"]["tee_missed_lines"],
            "missing": [m["file"] for m in report["capture"]["missing"]],
            "damaged": [d["file"] for d in report["capture"]["damaged"]],
        },
    }


def _check(tmp_path: Path, argv: list[str], golden: Path) -> None:
    code = main([*argv, "--out", str(tmp_path), "--quiet"])
    report = json.loads((tmp_path / "report.json").read_text())
    got = stable_subset(report, code)
    if UPDATE or not golden.exists():
        if not UPDATE:
            pytest.fail(f"no golden {golden.name}: run with UPDATE_GOLDEN=1 and review it")
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())


@pytest.mark.parametrize("bundle", CASES, ids=[p.name for p in CASES])
def test_bundle_golden(bundle: Path, tmp_path: Path) -> None:
    _check(tmp_path, ["summarize", str(bundle)], bundle / "expected.json")


@pytest.mark.parametrize("log", LOG_CASES, ids=[p.name for p in LOG_CASES])
def test_log_golden(log: Path, tmp_path: Path) -> None:
    _check(tmp_path, ["summarize", "--log", str(log)], log.with_suffix(".expected.json"))


@pytest.mark.parametrize("bundle", CASES[:6], ids=[p.name for p in CASES[:6]])
def test_report_matches_schema(bundle: Path, tmp_path: Path) -> None:
    from collector.report.schema import validate

    main(["summarize", str(bundle), "--out", str(tmp_path), "--quiet"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert validate(report) == []
    assert validate({"schema_version": 2}) != []


@pytest.mark.parametrize("log", BUNDLE_LOGS, ids=[f"{p.parents[1].name}/{p.name}" for p in BUNDLE_LOGS])
def test_bundle_log_read_bare_golden(log: Path, tmp_path: Path) -> None:
    _check(tmp_path, ["summarize", "--log", str(log)], LOGS / f"{_form_name(log)}.expected.json")


def test_every_log_snapshot_has_its_log() -> None:
    snapshots = {p.name for p in LOGS.glob("*.expected.json")}
    covered = {p.name.removesuffix(".log") + ".expected.json" for p in LOG_CASES}
    covered |= {f"{_form_name(p)}.expected.json" for p in BUNDLE_LOGS}
    assert snapshots == covered
