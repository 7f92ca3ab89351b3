"""The deploy fleet summary (plugins/filter/deploy_fleet.py): kept, rolled back, failed, never touched."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.rsky.ingester_capture.plugins.filter.deploy_fleet import deploy_fleet  # noqa: E402


def test_every_targeted_host_has_a_row_and_the_untouched_ones_say_so() -> None:
    hostvars = {
        "b": {
            "__deploy_result": {
                "outcome": "rolled_back",
                "why": "the fix exited (exit code 1) 3.1 s after it started",
                "report": "/c/b/deploy/x/bundle/report.md",
                "image": "fix",
            }
        },
        "a": {
            "__deploy_result": {
                "outcome": "kept",
                "image": "fix",
                "commit": "0123456789abcdef",
                "gate": {"confidence_reached": 0.999},
            }
        },
        "c": {},
        "d": {"__deploy_result": {"outcome": "failed", "why": "deploy_image fix is not on d"}},
    }

    fleet = deploy_fleet(hostvars, ["d", "c", "b", "a"])

    assert [(r["host"], r["status"]) for r in fleet["hosts"]] == [
        ("a", "kept"),
        ("b", "rolled_back"),
        ("c", "never_touched"),
        ("d", "failed"),
    ]
    assert fleet["counts"] == {"kept": 1, "rolled_back": 1, "failed": 1, "never_touched": 1}
    assert fleet["lines"][0] == "deploy: 4 host(s): 1 kept, 1 rolled back, 1 failed, 1 never touched"
    assert fleet["lines"][1] == "  a: runs the fix (fix @ 0123456789ab, confidence 0.999)"
    assert fleet["lines"][2].startswith("  b: rolled back to its original image: the fix exited")
    assert fleet["lines"][2].endswith("report /c/b/deploy/x/bundle/report.md")
    assert fleet["lines"][3] == "  c: never touched (the rollout stopped before it)"
