"""The answer key (tests/answers/*.yaml): every fixture's verdict, written by hand; and the
collector run on one fixture the way a user runs it."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from collector.cli import main
from tests.support.fixtures import FIXTURES

ANSWERS = Path(__file__).resolve().parent.parent / "answers"


def _load() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted(ANSWERS.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text()) or []:
            entry["_file"] = path.name
            entries.append(entry)
    return entries


KEY = _load()


@cache
def summarize_fixture(fixture: str) -> tuple[int, str, str, str]:
    """``summarize`` on a fixture (a bundle folder or a bare log): exit code, report.json, .md, .html."""
    path = FIXTURES / fixture
    out = tempfile.mkdtemp(prefix="answers-")
    argv = ["summarize", str(path)] if path.is_dir() else ["summarize", "--log", str(path)]
    code = main([*argv, "--out", out, "--quiet"])
    texts = tuple((Path(out) / n).read_text() for n in ("report.json", "report.md", "report.html"))
    return code, texts[0], texts[1], texts[2]
