"""verify.json, the history line and verify.md from a verdict (the collector's one template
environment, `report.render`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ..report.render import Markdown, render_template
from ..verify.facts import MIB, Verification, iso


def summary(verdict: Verification) -> str:
    """One line: the verdict and the failing criteria by name."""
    name = verdict.host or "host"
    if verdict.passed:
        return f"{name}: PASS ({len(verdict.criteria)}/{len(verdict.criteria)} criteria)"
    return f"{name}: FAIL ({', '.join(verdict.failed)})"


def history_line(verdict: Verification) -> dict[str, Any]:
    """The verify-history.jsonl record of a run."""
    m = verdict.memory
    return {
        "checked_at": iso(verdict.checked_at),
        "host": verdict.host,
        "verdict": "pass" if verdict.passed else "fail",
        "failed": list(verdict.failed),
        "criteria": {c.name: str(c.status) for c in verdict.criteria},
        "container_id": verdict.container_id,
        "started_at": verdict.started_at,
        "restart_count": verdict.restart_count,
        "uptime_hours": None if verdict.uptime_hours is None else round(verdict.uptime_hours, 3),
        "memory_bytes": m.last_bytes if m else None,
        "memory_limit": verdict.memory_limit,
        "slope_mib_per_hour": round(m.slope_bytes_per_second * 3600 / MIB, 3) if m else None,
        "hours_to_limit": None if not m or m.hours_to_limit is None else round(m.hours_to_limit, 2),
        "exit_lines": verdict.exit_lines,
        "oom_kills": verdict.oom_kills,
    }


def verdict_json(verdict: Verification) -> dict[str, Any]:
    """verify.json: the verdict, every criterion, and the memory trend."""
    return {
        "schema": 1,
        "host": verdict.host,
        "checked_at": iso(verdict.checked_at),
        "passed": verdict.passed,
        "failed": list(verdict.failed),
        "summary": summary(verdict),
        "criteria": [{**asdict(c), "status": str(c.status), "evidence": list(c.evidence)} for c in verdict.criteria],
        "container_id": verdict.container_id,
        "started_at": verdict.started_at,
        "restart_count": verdict.restart_count,
        "uptime_hours": verdict.uptime_hours,
        "memory": asdict(verdict.memory) if verdict.memory else None,
        "memory_limit": verdict.memory_limit,
    }


def render_history(history: Sequence[Mapping[str, Any]]) -> str:
    """The history as a Markdown table, oldest first: a week of runs reads at a glance."""
    return render_template("verify-history.md.j2", rows=history)


def render_markdown(verdict: Verification, history: Sequence[Mapping[str, Any]] = ()) -> str:
    """verify.md: verdict, one section per criterion, and the recent history table."""
    return render_template(
        "verify.md.j2",
        v=verdict,
        summary=summary(verdict),
        checked_at=iso(verdict.checked_at),
        history=Markdown(render_history(history[-50:])) if history else "",
    )
