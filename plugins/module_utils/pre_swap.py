"""Production's logs and inspect output, saved before anything changes (Python 3.8+, stdlib only).

The snapshot module's work, also run by the debug build's start (``snapshot: true``) in the same
module run, just before the build: the play pays one interpreter and one AnsiballZ for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import inspect, logs_merged, run_to_file
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import record


def save(out: Path, name: str) -> Dict[str, Any]:
    """``logs/pre-swap.log`` and ``inspect-pre.json`` of container ``name`` in ``out``, recorded;
    what the snapshot module returns, unredacted (the caller redacts)."""
    found, error = inspect(name)
    if found is None:
        record(
            out,
            {
                "file": "logs/pre-swap.log",
                "argv": ["docker", "inspect", "--type", "container", name],
                "exit_code": None,
                "missing": True,
                "note": "container %s could not be inspected before the capture: %s" % (name, error),
            },
        )
        return {"changed": False, "exists": False, "inspect_error": error}
    logs = logs_merged(out, "logs/pre-swap.log", name)
    run_to_file(out, "inspect-pre.json", ["docker", "inspect", name], stderr_to_stdout=False)
    return {
        "changed": False,
        "exists": True,
        "id": found.get("Id"),
        "image": (found.get("Config") or {}).get("Image"),
        "restart_count": found.get("RestartCount"),
        "status": (found.get("State") or {}).get("Status"),
        "log_lines": logs["lines"],
    }
