"""The collector as a library: `summarize(path)` without argv."""

from __future__ import annotations

from pathlib import Path

from collector.api import summarize
from collector.exitcodes import Exit
from tests.support.fixtures import BUNDLES, LOGS


def test_summarize_a_bundle_without_argv(tmp_path: Path) -> None:
    report = summarize(BUNDLES / "hypothetical-task-panic")
    assert report.exit_code == Exit.CRASH_LOOP
    assert report.doc["verdict"]["scenario"] == "panic"
    assert report.write(tmp_path / "out") == tmp_path / "out" / "report.md"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json", "report.md"]


def test_summarize_a_bare_log() -> None:
    report = summarize(LOGS / "handmade-all-panicked-prod.docker-ts.log", bare_log=True)
    assert report.doc["input"]["mode"] == "log"
    assert set(report.texts) == {"report.json", "report.md", "report.html"}
