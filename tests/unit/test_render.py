"""What a log line can carry into the reports and the terminal, and where the templates compile.

Control characters (escape sequences of every kind, BS, C1 bytes) are dropped when a record is
made; every Markdown field is escaped (raw HTML, links, `|`); the compiled templates are never
cached in a folder another user can plant.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from tests.support.fixtures import LOGS

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCE = LOGS / "handmade-all-panicked-prod.docker-ts.log"
HOSTILE = (
    "UnexpectedEof \x1b]52;c;cHduZWQ=\x07\x1b]0;owned\x1b\\\x1bPq#0;2\x1b\\ \x08\x08\x9b31m\x85\x7f"
    " <img src=x onerror=alert(1)> [click](javascript:alert(1)) <javascript:alert(2)> a|b"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_hostile_log_lines_reach_no_report_raw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "ingester.log"
    log.write_text(SOURCE.read_text().replace("UnexpectedEof", HOSTILE))
    code = main(["summarize", "--log", str(log)])
    out = capsys.readouterr().out
    assert code == 10
    assert "owned" not in out and not CONTROL.search(out), repr(out)
    md = (tmp_path / "report.md").read_text()
    assert not CONTROL.search(md)
    assert "UnexpectedEof" in md
    assert not re.search(r"(?<!\\)<(img|javascript)", md) and "[click](" not in md
    assert "a|b" not in md and "a\\|b" in md
    report = json.loads((tmp_path / "report.json").read_text())
    assert not [s for s in _strings(report) if CONTROL.search(s)]
    assert any("<img" in s for s in _strings(report))  # the data is kept; only Markdown escapes it


def test_markdown_fields_are_literal() -> None:
    from collector.report.render import md_block, md_code, md_text

    assert md_text("# x | <b>*y*</b> [a](javascript:z)") == "\\# x \\| \\<b\\>\\*y\\*\\</b\\> \\[a\\](javascript:z)"
    assert md_text("two\nlines\r\n") == "two lines "
    assert md_text(None) == "—"
    assert md_code("a`b|c") == "``a`b\\|c``"
    assert md_code("`x`") == "`` `x` ``"
    assert md_block("```\nfn x() {}\n", "rust", 2) == "  ````rust\n  ```\n  fn x() {}\n  ````"


def _collector(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "TMPDIR", "HOME")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *argv],
        env={**base, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"), **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("plant", ["file", "open-folder"])
def test_no_shared_bytecode_cache(plant: str, tmp_path: Path) -> None:
    """Another user's `$TMPDIR/_jinja2-cache-<uid>` (here a file, or a folder all may write) breaks nothing."""
    (tmp_path / "tmp").mkdir()
    planted = tmp_path / "tmp" / f"_jinja2-cache-{os.getuid()}"
    if plant == "file":
        planted.write_text("not a folder")
    else:
        planted.mkdir()
        planted.chmod(0o777)
    assert _collector(["--help"], tmp_path).returncode == 0
    run = _collector(["summarize", "--log", str(SOURCE), "--out", str(tmp_path / "out"), "--quiet"], tmp_path)
    assert run.returncode == 10, run.stderr
    assert list(planted.iterdir()) == [] if planted.is_dir() else planted.read_text() == "not a folder"


def test_bytecode_cache_only_in_a_private_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "ingester-collector" / "templates").mkdir(parents=True)
    (cache / "ingester-collector" / "templates").chmod(0o777)
    argv = ["summarize", "--log", str(SOURCE), "--out", str(tmp_path / "out"), "--quiet"]
    assert _collector(argv, tmp_path, XDG_CACHE_HOME=str(cache)).returncode == 10
    assert list((cache / "ingester-collector" / "templates").iterdir()) == []  # not used: others may write it
    private = tmp_path / "private"
    assert _collector(argv, tmp_path, XDG_CACHE_HOME=str(private)).returncode == 10
    folder = private / "ingester-collector" / "templates"
    assert folder.stat().st_mode & 0o777 == 0o700 and list(folder.iterdir())
