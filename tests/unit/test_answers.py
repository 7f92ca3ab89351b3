"""The answer key: every fixture's verdict, written by hand from the reference (tests/answers/).

The collector runs on each fixture the key lists and must agree with it: scenario, task, exit
path, panic location, number of exits, and the one fact the summary must state. Every fixture
file must be in the key (or be removed), hypothetical paths must be named so, and the key must
cover every verdict the collector can give. The key is never re-recorded from the collector.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from collector.diagnose import SCENARIOS
from collector.report.schema import validate
from tests.support.answers import KEY, summarize_fixture
from tests.support.fixtures import BUNDLES, FIXTURES, LOGS

RECORDED = FIXTURES / "recorded"
FIELDS = {"fixture", "scenario", "task", "exit_path", "panic_location", "exits", "must_state", "reason"}


def test_key_is_well_formed() -> None:
    seen: set[str] = set()
    for e in KEY:
        assert set(e) - {"_file"} == FIELDS, (e["_file"], e.get("fixture"))
        assert e["fixture"] not in seen, f"{e['fixture']} answered twice"
        seen.add(e["fixture"])
        assert e["scenario"] in SCENARIOS, e
        assert isinstance(e["exits"], int) and e["exits"] >= 0, e
        assert e["must_state"] and e["reason"], e
        hypothetical = str(e["reason"]).startswith("hypothetical:")
        named = "hypothetical-" in e["fixture"]
        assert hypothetical == named, f"{e['fixture']}: a hypothetical path is named so, and only it"
        assert (FIXTURES / e["fixture"]).exists(), f"{e['fixture']} does not exist"


def test_every_fixture_is_in_the_key() -> None:
    answered = {e["fixture"] for e in KEY}
    files = [f"logs/{p.name}" for p in sorted(LOGS.glob("*.log"))]
    files += [f"bundles/{p.name}" for p in sorted(BUNDLES.iterdir()) if p.is_dir()]
    files += [f"recorded/{p.name}" for p in sorted(RECORDED.glob("*.log"))] if RECORDED.is_dir() else []
    missing = [f for f in files if f not in answered]
    assert not missing, f"fixtures without an answer (answer them or remove them): {missing}"


def test_the_key_covers_every_verdict() -> None:
    assert {e["scenario"] for e in KEY} == set(SCENARIOS)


@pytest.mark.parametrize("entry", KEY, ids=[e["fixture"] for e in KEY])
def test_answer(entry: dict[str, Any]) -> None:
    _code, report_json, _md, _html = summarize_fixture(entry["fixture"])
    report = json.loads(report_json)
    v = report["verdict"]
    got = {
        "scenario": v["scenario"],
        "task": v["task"],
        "exit_path": v["exit_path"],
        "panic_location": (report["panic"] or {}).get("location"),
        "exits": report["restarts"]["count"],
    }
    want = {k: entry[k] for k in got}
    for k in ("task", "exit_path", "panic_location"):
        if want[k] == "any":
            want[k] = got[k]  # the real code picks at random (or it differs run to run)
            assert got[k] is not None or k == "exit_path", f"{k} must be named"
    assert got == want, entry["reason"]
    assert entry["must_state"] in v["summary"], f"summary must state {entry['must_state']!r}: {v['summary']}"
    assert validate(report) == []


@pytest.mark.parametrize("entry", [e for e in KEY if e["scenario"] == "config-error"],
                         ids=lambda e: e["fixture"])
def test_a_config_error_step_is_about_the_value(entry: dict[str, Any]) -> None:
    report = json.loads(summarize_fixture(entry["fixture"])[1])
    steps = " ".join(report["verdict"]["next_steps"])
    assert entry["must_state"] in steps
    assert "Redis health" not in steps and "debug image" not in steps
    assert report["root_causes"][0]["id"] == "configuration"


@pytest.mark.parametrize("fixture", ["logs/handmade-redis-url-prod.docker-ts.log",
                                     "logs/handmade-redis-url-debug.docker-ts.log"])
def test_the_redis_password_in_the_configuration_line_is_redacted(fixture: str) -> None:
    assert "hunter2" in (FIXTURES / fixture).read_text()  # the log holds it, as real logs do
    _code, js, md, html = summarize_fixture(fixture)
    for text in (js, md, html):
        assert "hunter2" not in text
    assert ':<redacted>@redis:6379' in json.loads(js)["verdict"]["summary"]
