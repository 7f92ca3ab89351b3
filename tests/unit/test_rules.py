"""What the rules claim beyond the answer key's fields: the evidence a person would point at."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.cli import main
from collector.runs import split_runs
from collector.sources.dmesg import parse_dmesg
from collector.sources.logs import Fact, parse_log, split_line
from tests.support.answers import KEY
from tests.support.fixtures import BUNDLES, FIXTURES, LOGS

ROOT = Path(__file__).resolve().parents[2]


def _report(fixture: str) -> dict[str, Any]:
    path = FIXTURES / fixture
    out = tempfile.mkdtemp(prefix="rules-")
    argv = ["summarize", str(path)] if path.is_dir() else ["summarize", "--log", str(path)]
    main([*argv, "--out", out, "--quiet"])
    report: dict[str, Any] = json.loads((Path(out) / "report.json").read_text())
    return report


def _choices() -> dict[str, set[str]]:
    """Every role variable with `choices` in its argument spec."""
    found: dict[str, set[str]] = {}
    for spec in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for ep in (yaml.safe_load(spec.read_text()).get("argument_specs") or {}).values():
            for name, opt in (ep.get("options") or {}).items():
                if isinstance(opt, dict) and opt.get("choices"):
                    found.setdefault(name, set()).update(str(c) for c in opt["choices"])
    return found


def test_no_next_step_names_a_value_the_argument_specs_refuse() -> None:
    choices = _choices()
    assert "observe" in choices["capture_mode"]
    for entry in KEY:
        for step in _report(entry["fixture"])["verdict"]["next_steps"]:
            for name, value in re.findall(r"\b([a-z_]+)=([A-Za-z0-9_.-]+)", step):
                if name in choices:
                    assert value in choices[name], f"{entry['fixture']}: {step}"


def test_old_kernel_lines_match_this_container_only() -> None:
    report = _report("bundles/handmade-oom-old-kernel")
    ended = [r for r in report["runs"] if r["ended"]]
    assert len(ended) == 3
    for run in ended:
        texts = " ".join(c["text"] for c in run["oom"])
        assert "Task in /docker/4e5f1c2d" in texts or "Kill process" in texts
        assert "postgres" not in texts
    assert all("kernel log (dmesg.txt)" in r["oom_sources"] for r in ended)


def test_journalctl_k_lines_are_placed_in_time_and_matched() -> None:
    kern = list(parse_dmesg((BUNDLES / "handmade-oom-journalctl-k" / "dmesg.txt").read_text().splitlines()))
    assert {k.clock for k in kern} == {"syslog"}
    report = _report("bundles/handmade-oom-journalctl-k")
    ended = [r for r in report["runs"] if r["ended"]]
    assert ended and all("kernel log (dmesg.txt)" in r["oom_sources"] for r in ended)
    first = report["verdict"]["evidence"][0]
    assert first["file"] == "dmesg.txt" and "Killed process" in first["text"]


def test_other_compose_services_are_not_the_ingester() -> None:
    report = _report("logs/handmade-compose-project.log")
    assert report["panic"] is None and report["contained_panics"] == []
    assert not any("indexer" in e["text"] for e in report["verdict"]["evidence"])


def test_the_journald_prefix_is_read() -> None:
    line = split_line("Nov 29 10:00:01 prodhost 4e5f1c2d3b4a[800]: [EXIT-TRACE] Running in 'all' mode\n")
    assert line.text == "[EXIT-TRACE] Running in 'all' mode"
    iso = split_line("2026-11-29T10:00:01+0000 prodhost 4e5f1c2d3b4a[800]: Error: x\n")
    assert iso.text == "Error: x" and iso.ts is not None


def test_a_contained_panic_is_reported_where_and_when() -> None:
    report = _report("logs/handmade-contained-panic.docker-ts.log")
    (cp,) = report["contained_panics"]
    assert cp["location"] == "rsky-ingester/src/firehose.rs:212:38"
    assert cp["ran_on_seconds"] is not None and 17.0 <= cp["ran_on_seconds"] <= 19.0
    assert cp["at"] is not None and cp["line"] is not None
    assert report["verdict"]["confidence"] != "high" or report["verdict"]["scenario"] == "stable"
    assert report["root_causes"][0]["likelihood"] != "high"


def test_retried_errors_are_evidence_that_retry_works() -> None:
    report = _report("logs/handmade-retry-errors.docker-ts.log")
    causes = {c["id"]: c for c in report["root_causes"]}
    for cid in ("websocket-close", "redis-lost"):
        assert causes[cid]["likelihood"] == "ruled-out"
        assert any("retry works" in e for e in causes[cid]["evidence"])


def test_a_binary_that_cannot_start_is_named_with_a_step_about_the_image() -> None:
    report = _report("logs/handmade-glibc.docker-ts.log")
    steps = " ".join(report["verdict"]["next_steps"])
    assert "image" in steps and "debug image" not in steps and "GLIBC_2.39" in steps
    assert any("GLIBC_2.39" in e["text"] for e in report["verdict"]["evidence"])
    assert report["root_causes"][0]["id"] == "image"


def test_the_operators_stop_is_not_a_crash() -> None:
    report = _report("logs/handmade-operator-stop.tee.log")
    (run,) = report["runs"]
    assert run["scenario"] == "stopped" and run["exit_code"] == 137


def test_runs_come_from_docker_events_without_a_banner() -> None:
    report = _report("bundles/handmade-rust-log-warn")
    assert [r["exit_code"] for r in report["runs"]] == [1, 1, 1, 1, None]
    assert report["restarts"]["runs"] == 5


def test_a_config_error_in_all_mode_is_deterministic_whatever_the_path() -> None:
    v = _report("logs/handmade-redis-url-debug.docker-ts.log")["verdict"]
    assert v["deterministic"] is True and "at random" in v["summary"]


def test_the_configuration_line_is_read_redacted() -> None:
    line = (LOGS / "handmade-redis-url-prod.docker-ts.log").read_text().splitlines()[3]
    (fact,) = [r for r in parse_log([line]) if isinstance(r, Fact)]
    assert fact.kind == "config" and fact.value == ":<redacted>@redis:6379"
    assert "hunter2" not in fact.text


@pytest.mark.parametrize("fixture", ["handmade-metrics-port-repro.docker-ts.log"])
def test_one_hand_run_exit_is_an_exit(fixture: str) -> None:
    (run,) = list(split_runs(parse_log((LOGS / fixture).read_text().splitlines(keepends=True))))
    assert run.ended and run.exit_code == 101


def test_no_record_keeps_a_url_password(tmp_path: Path) -> None:
    """A tee that lost the banner opens the run at the Configuration line: its text is redacted too."""
    log = tmp_path / "tee.log"
    log.write_text(
        "rust-ingester exited with code 1\n"
        'rust-ingester  | 2026-11-29T10:00:00.000000Z  INFO ingester: Configuration: IngesterConfig { redis_url: '
        '"redis://:hunter2@redis:6379", relay_hosts: [], labeler_hosts: [] }\n'
        "rust-ingester  | Error: cannot connect to redis://:hunter2@redis:6379\n"
        "rust-ingester exited with code 1\n"
    )
    out = tmp_path / "out"
    main(["summarize", "--log", str(log), "--out", str(out), "--quiet"])
    for name in ("report.json", "report.md", "report.html"):
        assert "hunter2" not in (out / name).read_text(), name
