"""The logs record_standin.py recorded from real stand-in containers (tests/fixtures/recorded/): not
recorded again byte for byte, so checked for what the recorded README says each carries beside it
(``<name>.json``: scenario, build, environment, runs, exit codes, OOM) and for an answer-key entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.answers import KEY
from tests.support.fixtures import FIXTURES

RECORDED = sorted((FIXTURES / "recorded").glob("*.log"))
PROVENANCE = {"scenario", "build", "env", "runs", "exit_codes", "oom_killed", "how"}


def test_there_are_recordings() -> None:
    assert len(RECORDED) >= 10


@pytest.mark.parametrize("log", RECORDED, ids=[p.name for p in RECORDED])
def test_a_recording_carries_its_provenance_and_its_answer(log: Path) -> None:
    record = json.loads(log.with_suffix(".json").read_text())
    assert set(record) == PROVENANCE, log.name
    assert record["build"] in {"oldest", "hook", "debug"} and record["runs"] >= 1
    assert len(record["exit_codes"]) <= record["runs"]
    assert f"recorded/{log.name}" in {e["fixture"] for e in KEY}
