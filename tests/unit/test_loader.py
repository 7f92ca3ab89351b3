"""The loader's reading of a log: memory bounded whatever the line lengths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=False, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.parametrize("search", ["external", "python"])
def test_memory_stays_flat_on_a_line_without_end(search: str, tmp_path: Path) -> None:
    """200 MiB without a newline after a banner: peak RSS (the collector and what it starts)
    stays far under the line's size, and the report says what was cut."""
    log = tmp_path / "flat.log"
    with log.open("wb") as fh:
        fh.write(b"2026-11-29T10:00:00Z Starting rsky-ingester\n")
        block = b"CRITICAL panicked at x " * 4096
        for _ in range((200 << 20) // len(block)):
            fh.write(block)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if search == "python":
        env["INGESTER_COLLECTOR_NO_GREP"] = "1"
    argv = [sys.executable, "-m", "collector", "summarize", "--log", str(log), "--out", str(tmp_path), "--quiet"]
    peak_kib = int(subprocess.run([sys.executable, "-c", MEASURE, *argv], env=env, capture_output=True,
                                  text=True, check=True).stdout)
    assert peak_kib < 150 << 10, f"peak RSS {peak_kib >> 10} MiB"
    damaged = json.loads((tmp_path / "report.json").read_text())["capture"]["damaged"]
    assert any("longer than 1024 KiB" in p for d in damaged for p in d["problems"]), damaged
