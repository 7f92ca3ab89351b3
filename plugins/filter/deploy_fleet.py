# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""deploy_fleet: which hosts of a rollout run the fix, which rolled back, which were never touched.

Runs on the controller when a batch of deploy.yml ends with a host that did not keep the fix (the
rollout stops there) or after the last batch, from the hosts' variables as the play left them
(``__deploy_result``, the outcome deploy.json holds). A host with none was never reached by the
rollout: its production was never touched. The result is deploy-fleet.json (docs/deploy.md).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

STATUSES = ("kept", "rolled_back", "failed", "never_touched")
WORDS = {
    "kept": "runs the fix",
    "rolled_back": "rolled back to its original image",
    "failed": "failed before its gate (production untouched or restored)",
    "never_touched": "never touched (the rollout stopped before it)",
}


def _result(hostvars: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    try:
        value = hostvars.get("__deploy_result")
    except Exception:  # an undefined or untemplatable variable is as good as absent
        return None
    return value if isinstance(value, Mapping) else None


def deploy_fleet(hostvars: Mapping[str, Any], hosts: Sequence[str]) -> Dict[str, Any]:
    """Every targeted host's row, the counts, and the lines the play prints."""
    rows: List[Dict[str, Any]] = []
    for host in sorted(str(h) for h in hosts):
        result = _result(hostvars[host])
        if result is None:
            rows.append({"host": host, "status": "never_touched"})
            continue
        status = str(result.get("outcome") or "failed")
        rows.append(
            {
                "host": host,
                "status": status if status in STATUSES else "failed",
                "image": result.get("image"),
                "commit": result.get("commit") or None,
                "original_image": result.get("original_image"),
                "why": result.get("why"),
                "confidence_reached": (result.get("gate") or {}).get("confidence_reached"),
                "report": result.get("report"),
                "deploy_json": result.get("deploy_json"),
            }
        )
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    lines = [
        "deploy: %d host(s): %s"
        % (len(rows), ", ".join("%d %s" % (counts[s], s.replace("_", " ")) for s in STATUSES if counts[s]) or "none")
    ]
    for row in rows:
        line = "  %s: %s" % (row["host"], WORDS[row["status"]])
        if row["status"] == "kept":
            line += " (%s%s, confidence %s)" % (
                row["image"],
                (" @ " + str(row["commit"])[:12]) if row.get("commit") else "",
                row.get("confidence_reached"),
            )
        elif row["status"] in ("rolled_back", "failed"):
            line += ": %s" % str(row.get("why") or "")[:300]
        if row.get("report"):
            line += " · report %s" % row["report"]
        lines.append(line)
    return {"schema_version": 1, "hosts": rows, "counts": counts, "lines": lines}


class FilterModule:
    """The deploy fleet summary's filter."""

    def filters(self) -> Dict[str, Any]:
        return {"deploy_fleet": deploy_fleet}
