"""The collector's command line as a user runs it: a child Python with this checkout first on its
path, and the one-line error it must print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The argv in a child Python with this checkout first on its path."""
    child = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [PYTHON, *argv], capture_output=True, text=True, timeout=timeout, check=False, env=child, cwd=REPO
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """stderr, which must be one line and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr.strip()
