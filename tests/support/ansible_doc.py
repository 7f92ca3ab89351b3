"""ansible-doc on the collection, run from the checkout the way a user reads a plugin's or a role's
documentation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")


def ansible_doc(kind: str, *names: str) -> dict[str, Any]:
    """``ansible-doc -t <kind> --json`` for ``rsky.ingester_capture.<name>`` of each name, keyed by
    the full name; fails the test with ansible-doc's stderr when it exits non-zero."""
    env = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [ANSIBLE_DOC, "-t", kind, "--json", *(f"rsky.ingester_capture.{name}" for name in names)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs: dict[str, Any] = json.loads(proc.stdout)
    return docs
