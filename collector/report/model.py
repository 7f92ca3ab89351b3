"""Build report.json (a plain, versioned dict) from a diagnosis. Pure; documented in docs/report.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..advice import Step
from ..diagnose import (
    CRASH_SCENARIOS,
    NOT_EXITS,
    PATTERN_TOLERANCE,
    PRODUCTION_INTERVAL,
    Accumulator,
    Diagnosis,
    Distribution,
    Memory,
    RunVerdict,
    Verdict,
)
from ..inputs import Provenance
from ..runs import Cite, Run
from ..sources.bundle_meta import DaemonGap
from ..sources.common import Problem, format_time
from ..sources.inspect import Inspect
from ..sources.source_index import SourceIndex, dependency_of, path_line

SCHEMA_VERSION = 1


def _dependency(location: str | None) -> dict[str, str] | None:
    dep = dependency_of(location)
    return {"crate": dep[0], "version": dep[1]} if dep else None


def _cite(c: Cite) -> dict[str, Any]:
    return {"file": c.file, "line": c.line, "text": c.text}


def _num(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _dist(d: Distribution) -> dict[str, Any]:
    return {"count": d.count, "min": _num(d.min), "median": _num(d.median), "max": _num(d.max)}


def run_json(run: Run, verdict: RunVerdict, previous: list[tuple[str, int, str]] | None = None) -> dict[str, Any]:
    """One run as it appears in `runs`; `previous`: its last lines in the merged log."""
    p = run.panic
    return {
        "index": run.index,
        "start": format_time(run.start),
        "end": format_time(run.end),
        "duration_seconds": _num(run.duration),
        "start_line": run.start_cite.line if run.start_cite else None,
        "partial": run.partial,
        "start_inferred": run.synthetic_start,
        "ended": run.ended,
        "scenario": verdict.scenario,
        "reason": verdict.reason,
        "stopped_by_daemon": run.stopped_by_daemon,
        "exit_code": run.exit_code,
        "exit_code_source": run.exit_code_source,
        "exit_path": run.exit_path,
        "task": run.task,
        "last_breadcrumb": _cite(run.last_breadcrumb) if run.last_breadcrumb else None,
        "breadcrumbs": list(run.breadcrumbs),
        "result": None
        if run.result_kind is None
        else {
            "kind": run.result_kind,
            "error": run.result_error,
            "innermost": run.result_innermost,
        },
        "panic": None
        if p is None
        else {
            "style": p.style,
            "thread": p.thread,
            "location": p.location,
            "message": p.message,
            "backtrace": list(p.backtrace[:5]),
            "file": p.source,
            "line": p.line,
        },
        "panics": run.panic_count,
        "host_task_panics": run.host_task_panics,
        "error": run.error_exit.message if run.error_exit else None,
        "critical_count": run.critical_count,
        "criticals": [_cite(c) for c in run.criticals],
        "oom": [_cite(c) for c in run.oom],
        "oom_sources": list(run.oom_sources),
        "host_wide_oom": run.host_wide_oom,
        "kill_events": [_cite(c) for c in run.kill_events],
        "unlogged_starts": run.unlogged_starts,
        "memory": {
            "samples": run.mem_samples,
            "peak_bytes": run.mem_peak,
            "last_bytes": run.mem_last,
            "slope_bytes_per_second": _num(run.mem_slope),
            "reached_limit_at_exit": run.reached_limit,
        },
        "previous_lines": [{"file": f, "line": n, "text": text} for f, n, text in previous or ()],
    }


def _log_lines(run: Run, source: str) -> list[int]:
    """The lines of `source` a run's records cite."""
    cites = [run.start_cite, run.last_breadcrumb, run.result_cite, *run.criticals, *run.evidence]
    lines = [c.line for c in cites if c is not None and c.file == source and c.line is not None]
    for block in (run.panic, run.error_exit):
        if block is not None and block.source == source and block.line is not None:
            lines.append(block.line)
    return lines


def run_ends(kept: list[tuple[Run, RunVerdict]], source: str, total: int) -> dict[int, int]:
    """The last line of each run that ended, in the log `source` of `total` lines: the line
    before the next run's first, the log's last for the last run, else the run's last cited
    line. Runs that did not exit (still running, stopped by a person or the daemon) have none."""
    ends: dict[int, int] = {}
    runs = [r for r, _ in kept]
    for i, (run, verdict) in enumerate(kept):
        if not run.ended or verdict.scenario in NOT_EXITS:
            continue
        nxt = runs[i + 1] if i + 1 < len(runs) else None
        if nxt is None:
            end = total
        elif nxt.index == run.index + 1 and nxt.start_cite is not None and nxt.start_cite.file == source \
                and nxt.start_cite.line is not None:
            end = nxt.start_cite.line - 1
        else:
            end = max(_log_lines(run, source), default=0)
        if end >= 1:
            ends[run.index] = end
    return ends


@dataclass
class CaptureFacts:
    """What the CLI learned while reading, for the `capture` section."""

    mode: str  # bundle | log
    lines: dict[str, int] = field(default_factory=dict)
    tee_missed_lines: int | None = None
    tee_container_lines: int | None = None
    # The manifest's `logs`: the merged log's sources and counted losses; None without one.
    log_account: dict[str, Any] | None = None
    missing: list[tuple[str, str]] = field(default_factory=list)  # (file, cost)
    problems: list[Problem] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    window_start: float | None = None
    window_end: float | None = None
    ended_by: str | None = None
    container: str | None = None
    container_id: str | None = None
    host_mode: str | None = None
    costs: dict[str, str] = field(default_factory=dict)
    restart_count_inspect: int | None = None
    # Each time the Docker daemon was away during the window (window.json `daemon_unavailable`).
    daemon_gaps: list[DaemonGap] = field(default_factory=list)
    # The bundle's own record of where it came from (the report's header); None for a bare log.
    provenance: Provenance | None = None
    # Each ended run's last lines in the merged log: run index to [(file, line, text)].
    previous: dict[int, list[tuple[str, int, str]]] = field(default_factory=dict)


DAEMON_FATES = {
    "restarted": "the container was stopped with it{code} and restarted by its restart policy, which is not a crash "
    "of the ingester",
    "stopped": "the container was stopped with it{code} and not started again",
    "kept_running": "the container kept running (live-restore); what it printed meanwhile was logged when the daemon "
    "came back",
    "started": "the container was running again when it came back",
    "not_running": "the container was not running when it came back",
    "unknown": "what became of the container is unknown",
}


def daemon_json(gap: DaemonGap) -> dict[str, Any]:
    """One time the daemon was away, with the sentence the report prints."""
    if gap.end is None:
        text = f"the Docker daemon went away at {format_time(gap.start)} and was not back when the window ended"
    else:
        secs = f" ({gap.seconds:.0f} s)" if gap.seconds is not None else ""
        text = f"the Docker daemon was down from {format_time(gap.start)} to {format_time(gap.end)}{secs}"
    fate = DAEMON_FATES.get(gap.container or "")
    if fate:
        code = f" (exit {gap.exit_code})" if gap.exit_code is not None else ""
        text += "; " + fate.format(code=code)
    return {
        "start": format_time(gap.start),
        "end": format_time(gap.end),
        "seconds": gap.seconds,
        "container": gap.container,
        "exit_code_at_stop": gap.exit_code,
        "statement": text,
    }


def history_json(diag: Diagnosis | None, pre: Inspect | None, present: bool) -> dict[str, Any]:
    """The production-history section (pre-swap.log): the only record of production restarts."""
    if diag is None:
        return {"present": present, "runs": 0}
    acc = diag.acc
    panics: list[dict[str, Any]] = []
    for run, _ in acc.kept:
        if run.panic is not None and len(panics) < 10:
            panics.append(
                {
                    "run": run.index,
                    "location": run.panic.location,
                    "message": run.panic.message,
                    "file": run.panic.source,
                    "line": run.panic.line,
                }
            )
    return {
        "present": True,
        "runs": acc.runs_total,
        "exits": acc.ended,
        "exit_codes": dict(sorted(acc.exit_codes.items())),
        "scenarios": dict(sorted(acc.scenarios.items())),
        "verdict": diag.verdict.scenario,
        "summary": diag.verdict.summary,
        "intervals_seconds": _dist(diag.intervals),
        "panics": panics,
        "instrumented": acc.instrumented,
        "last_exit": None
        if pre is None
        else {
            "exit_code": pre.exit_code,
            "oom_killed": pre.oom_killed,
            "finished_at": format_time(pre.finished_at),
            "restart_count": pre.restart_count,
        },
    }


def source_json(index: SourceIndex | None, evidence: list[dict[str, Any]], panic: dict[str, Any] | None,
                task: str | None, error: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """report.json `source`: each snippet with what cites it (`panic`, `panic.backtrace[i]`,
    `verdict.evidence[i]`), so the code is shown next to that evidence."""
    if index is None:
        return None
    out: list[dict[str, Any]] = []
    for sn in index.snippets:
        path, line = path_line(sn.location)
        short = f"{path}:{line}" if line is not None else path
        cited: list[str] = []
        if panic is not None and sn.kind == "panic" and panic.get("location"):
            ppath, pline = path_line(str(panic["location"]))
            if pline == line and (ppath.endswith(path) or path.endswith(ppath)):
                cited.append("panic")
        if panic is not None:
            for i, frame in enumerate(panic.get("backtrace") or []):
                if path in frame:
                    cited.append(f"panic.backtrace[{i}]")
        for i, e in enumerate(evidence):
            text = str(e.get("text", ""))
            by_panic = (
                "panic" in cited
                and panic is not None
                and e.get("file") == panic.get("file")
                and e.get("line") == panic.get("line")
            )
            names_it = short in text or sn.location in text
            ends_task = (
                sn.kind == "run_fn"
                and task is not None
                and (f"{task}_handle" in text or f"All {task} tasks exited" in text
                     or f"{task.capitalize()} result" in text)
            )
            if by_panic or names_it or (ends_task and not any(c.startswith("verdict.") for c in cited)):
                cited.append(f"verdict.evidence[{i}]")
        if error is not None:
            for i, frame in enumerate(error.get("backtrace") or []):
                if path in frame:
                    cited.append(f"error.backtrace[{i}]")
        out.append(
            {
                "kind": sn.kind,
                "location": sn.location,
                "path": sn.path,
                "line": sn.line,
                "start": sn.start,
                "end": sn.end,
                "file": sn.file,
                "crate": sn.crate,
                "version": sn.version,
                "text": sn.text,
                "cited_by": cited,
            }
        )
    return {
        "commit": index.commit,
        "snippets": out,
        "missing": [{"location": loc, "why": why} for loc, why in index.missing],
        "problems": list(index.problems),
    }


def _panic_json(diag: Diagnosis) -> dict[str, Any] | None:
    """The panic that ended the headline run, whatever the verdict (a METRICS_PORT panic is a
    configuration error): its hook or default-hook block; for a panic verdict without one, the
    JoinError's payload."""
    v = diag.verdict
    rep = diag.representative
    if rep is not None and rep.panic is not None:
        return {
            "style": rep.panic.style,
            "thread": rep.panic.thread,
            "location": rep.panic.location,
            "message": rep.panic.message,
            "backtrace": list(rep.panic.backtrace),
            "file": rep.panic.source,
            "line": rep.panic.line,
            "dependency": _dependency(rep.panic.location),
        }
    if rep is not None and v.scenario == "panic":
        return {
            "style": "join-error",
            "thread": None,
            "location": None,
            "message": rep.result_error,
            "backtrace": [],
            "file": rep.result_cite.file if rep.result_cite else None,
            "line": rep.result_cite.line if rep.result_cite else None,
            "dependency": None,
        }
    return None


def severity(scenario: str) -> str:
    """How urgent a verdict is: `critical` for a crash loop, `ok` when stable, else `warning`."""
    if scenario in CRASH_SCENARIOS:
        return "critical"
    return "ok" if scenario == "stable" else "warning"


def _verdict_json(
    v: Verdict, instrumented: bool, evidence: list[dict[str, Any]], container: str | None = None
) -> dict[str, Any]:
    """report.json's verdict; `container` fills the `<container>` of each step's check."""
    return {
        "scenario": v.scenario,
        "severity": severity(v.scenario),
        "task": v.task,
        "exit_path": v.exit_path,
        "summary": v.summary,
        "confidence": v.confidence,
        "deterministic": v.deterministic,
        "determinism": v.determinism,
        "needs_debug_build": v.needs_debug_build,
        "instrumented": instrumented,
        "evidence": evidence,
        "next_steps": list(v.next_steps),
        "advice": [_advice_json(a, container) for a in v.advice],
    }


def _advice_json(a: Step, container: str | None) -> dict[str, Any]:
    """A next step as data: what it is about, the command that checks it, whether it changes production."""
    check = a.check.replace("<container>", container) if a.check and container else a.check
    return {"step": a.text, "about": a.about, "check": check, "changes_production": a.changes_production}


def _restarts_json(diag: Diagnosis, capture: CaptureFacts) -> dict[str, Any]:
    """The restarts: counts, intervals and whether they match production's pattern."""
    acc = diag.acc
    med = diag.intervals.median
    lo = PRODUCTION_INTERVAL[0] * (1 - PATTERN_TOLERANCE)
    hi = PRODUCTION_INTERVAL[1] * (1 + PATTERN_TOLERANCE)
    return {
        "count": acc.ended,
        "runs": acc.runs_total,
        "exit_codes": dict(sorted(acc.exit_codes.items())),
        "exit_paths": dict(sorted(acc.exit_paths.items())),
        "scenarios": dict(sorted(acc.scenarios.items())),
        "intervals_seconds": _dist(diag.intervals),
        "matches_production_pattern": None if med is None else lo <= med <= hi,
        "time_to_exit_seconds": _dist(diag.durations),
        "restart_count_inspect": capture.restart_count_inspect,
        "starts_without_banner": acc.unlogged_starts,
        "killed_via_docker_api": acc.kill_via_api,
    }


def _memory_json(mem: Memory) -> dict[str, Any]:
    """The memory facts across the runs."""
    return {
        "limit_bytes": mem.limit_bytes,
        "peak_bytes": mem.peak_bytes,
        "slope_bytes_per_second": _num(mem.slope_bytes_per_second),
        "seconds_to_limit": _num(mem.seconds_to_limit, 1),
        "samples": mem.samples,
        "reaches_limit_at_exit": mem.reaches_limit_at_exit,
        "runs_at_limit": mem.runs_at_limit,
        "runs_with_samples": mem.runs_with_samples,
        "pressure_events_in_memory_max": mem.pressure_events_in_memory_max,
    }


def _questions_json(diag: Diagnosis) -> list[dict[str, Any]]:
    """The six questions and their answers."""
    return [
        {
            "id": q.id,
            "question": q.question,
            "answer": q.answer,
            "answerable": q.answerable,
            "needs_debug_build": q.needs_debug_build,
        }
        for q in diag.questions
    ]


def _causes_json(diag: Diagnosis) -> list[dict[str, Any]]:
    """The root causes, ranked."""
    return [
        {
            "id": c.id,
            "title": c.title,
            "rank": i + 1,
            "likelihood": c.likelihood,
            "score": c.score,
            "evidence": list(c.evidence),
            "next_step": c.next_step,
        }
        for i, c in enumerate(diag.root_causes)
    ]


def _contained_json(acc: Accumulator) -> list[dict[str, Any]]:
    """Panics the process survived."""
    return [
        {
            "run": idx,
            "location": cp.location,
            "message": cp.message,
            "at": format_time(cp.ts),
            "ran_on_seconds": _num(cp.ran_on_seconds, 1),
            "task": cp.task,
            "host": cp.host,
            "file": cp.cite.file,
            "line": cp.cite.line,
        }
        for idx, cp in acc.contained
    ]


def _config_json(acc: Accumulator) -> list[dict[str, Any]]:
    """The configuration errors and how many runs hit each."""
    return [
        {"variable": p.variable, "value": p.value, "detail": p.detail, "runs": n,
         "file": p.cite.file if p.cite else None, "line": p.cite.line if p.cite else None}
        for n, p in acc.config_problems.values()
    ]


def _capture_json(capture: CaptureFacts) -> dict[str, Any]:
    """What was captured: lines, sources, gaps, what is missing or damaged."""
    damaged: dict[str, list[str]] = {}
    for p in capture.problems:
        damaged.setdefault(p.source, [])
        if len(damaged[p.source]) < 5:
            damaged[p.source].append(p.message)
    return {
        "lines": capture.lines,
        "tee_missed_lines": capture.tee_missed_lines,
        "tee_container_lines": capture.tee_container_lines,
        "log_sources": capture.log_account,
        "daemon_unavailable": [daemon_json(g) for g in capture.daemon_gaps],
        "missing": [{"file": f, "cost": c} for f, c in capture.missing],
        "damaged": [
            {"file": f, "problems": msgs, "cost": capture.costs.get(f, "")} for f, msgs in sorted(damaged.items())
        ],
        "window": {
            "start": format_time(capture.window_start),
            "end": format_time(capture.window_end),
            "ended_by": capture.ended_by,
        },
        "container": capture.container,
        "container_id": capture.container_id,
        "mode": capture.host_mode,
    }


ROLLBACK = "ansible-playbook -i <inventory> playbooks/rollback.yml --limit {host}"
MODES = {"observe": "observe", "capture": "capture", "deploy-gate": "deploy gate"}


def _rollback(p: Provenance | None) -> dict[str, Any]:
    """Whether the host still runs the image this bundle's pass swapped in, as far as the bundle
    can say: an observe pass swaps nothing, a deploy gate restores before it seals, a capture
    leaves the debug image running (the runbook's way) unless it failed part-way."""
    if p is None:
        return {"pending": None, "statement": "unknown: a bare log does not say what the host runs", "command": None}
    command = ROLLBACK.format(host=p.host or p.hostname or "<host>")
    if p.mode == "observe":
        return {"pending": False, "statement": "no: an observe pass changes nothing on the host", "command": None}
    if p.mode == "deploy-gate":
        return {"pending": False, "command": None,
                "statement": "no: the deploy gate put the original image back before it sealed this bundle"}
    if p.mode == "capture" and p.partial:
        return {"pending": None, "command": command,
                "statement": "unknown: the capture failed part-way, and puts the original image back itself unless "
                "capture_restore_on_failure is false (the play's last lines say which)"}
    if p.mode == "capture":
        running = p.image or "the debug image"
        back = p.original_image or "the original image"
        return {"pending": True, "command": command,
                "statement": f"yes: the capture left {running} running (as the runbook does); rollback.yml puts "
                f"{back} back, unless it was run since"}
    return {"pending": None, "statement": "unknown: the bundle does not record its mode", "command": command}


def _header_json(p: Provenance | None, capture: CaptureFacts, source: SourceIndex | None,
                 scenario: str) -> dict[str, Any]:
    """The report's first lines: which host, when, how, on what, where the bundle is, what is
    pending; each fact null when the bundle does not record it (`unknown` says why)."""
    start, end = capture.window_start, capture.window_end
    seconds = round(end - start, 1) if start is not None and end is not None else None
    commit = (p.commit if p is not None else None) or (source.commit if source is not None else None)
    return {
        "host": (p.host or p.hostname) if p is not None else None,
        "hostname": p.hostname if p is not None else None,
        "severity": severity(scenario),
        "window": {"start": format_time(start), "end": format_time(end), "seconds": seconds},
        "mode": p.mode if p is not None else None,
        "mode_label": MODES.get(p.mode or "") if p is not None else None,
        "image": p.image if p is not None else None,
        "original_image": p.original_image if p is not None else None,
        "commit": commit,
        "bundle": p.bundle if p is not None else None,
        "partial": p.partial if p is not None else False,
        "sealed_at": p.sealed_at if p is not None else None,
        "rollback": _rollback(p),
        "unknown": "a bare log: no bundle records the host, the window, the mode, the image or the commit"
        if p is None
        else "not recorded in this bundle",
    }


def build_report(
    diag: Diagnosis,
    capture: CaptureFacts,
    history: dict[str, Any],
    generated_by: str,
    source: SourceIndex | None = None,
) -> dict[str, Any]:
    """report.json, schema_version 1."""
    v = diag.verdict
    acc = diag.acc
    rep = diag.representative
    panic = _panic_json(diag)
    evidence = [_cite(c) for c in v.evidence]
    error = None
    if rep is not None and rep.error_exit is not None:
        ee = rep.error_exit
        error = {"message": ee.message, "causes": list(ee.causes), "backtrace": list(ee.backtrace),
                 "file": ee.source, "line": ee.line}
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_by": generated_by,
        "input": {"mode": capture.mode, "files": capture.present},
        "verdict": _verdict_json(v, acc.instrumented, evidence, capture.container),
        "panic": panic,
        "restarts": _restarts_json(diag, capture),
        "header": _header_json(capture.provenance, capture, source, v.scenario),
        "runs": [run_json(r, rv, capture.previous.get(r.index)) for r, rv in acc.kept],
        "runs_omitted": acc.omitted,
        "memory": _memory_json(diag.memory),
        "questions": _questions_json(diag),
        "root_causes": _causes_json(diag),
        "production_history": history,
        "error": error,
        "source": source_json(source, evidence, panic, v.task, error),
        "contained_panics": _contained_json(acc),
        "configuration_errors": _config_json(acc),
        "capture": _capture_json(capture),
    }
