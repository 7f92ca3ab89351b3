"""The success criteria, judged from facts, thresholds and earlier runs (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..inputs import least_squares
from ..sources.dmesg import parse_dmesg
from ..verify.facts import (
    MIB,
    Criterion,
    Facts,
    HistoryEntry,
    MemoryTrend,
    Status,
    Thresholds,
    Verification,
    iso,
)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _baseline_matches(facts: Facts) -> bool:
    b, c = facts.baseline, facts.container
    return b is not None and c is not None and b.container_id == c.id


def judge_exit_traces(facts: Facts) -> Criterion:
    """No exit breadcrumbs, result lines, CRITICAL lines, panics or `Error:` after start-up."""
    title = "No [EXIT-TRACE] exit lines after start-up"
    threshold = "0 exit lines (EXIT PATH, task results, CRITICAL, panics, Error:)"
    logs = facts.logs
    if logs is None or logs.error:
        why = (logs.error if logs else None) or facts.inspect_error or "no logs read"
        return Criterion("exit_traces", title, Status.UNKNOWN, f"logs unreadable: {why}", threshold)
    scope = f"since the baseline ({logs.since})" if logs.since else "since the container was created"
    kinds: dict[str, int] = {}
    for line in logs.exit_lines:
        kinds[line.kind] = kinds.get(line.kind, 0) + 1
    evidence = tuple(f"{line.ts or '?'} [{line.kind}] {line.text}" for line in logs.exit_lines[:12])
    if logs.exit_lines_total == 0:
        return Criterion(
            "exit_traces",
            title,
            Status.PASS,
            f"0 exit lines in {logs.lines} log lines {scope}",
            threshold,
            (f"{logs.starts} start(s) of rsky-ingester in the scanned log",),
        )
    kind_text = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    return Criterion(
        "exit_traces",
        title,
        Status.FAIL,
        f"{logs.exit_lines_total} exit lines {scope} ({kind_text} among those kept)",
        threshold,
        evidence,
    )


def judge_uptime(facts: Facts, t: Thresholds, now: float) -> tuple[Criterion, float | None]:
    """No restart for min_uptime_hours: StartedAt and RestartCount, credited by the baseline."""
    title = f"No container restarts for {t.min_uptime_hours:g} h"
    threshold = f">= {t.min_uptime_hours:g} h since the last (re)start, 0 restarts since baseline"
    c = facts.container
    if c is None:
        return (
            Criterion("uptime", title, Status.FAIL, f"no container: {facts.inspect_error}", threshold),
            None,
        )
    evidence = [
        f"StartedAt {c.started_at_raw}, RestartCount {c.restart_count}, status {c.status}"
        + (f", last exit code {c.exit_code}" if c.restart_count else "")
    ]
    if not c.running or c.restarting or c.started_at is None:
        return (
            Criterion("uptime", title, Status.FAIL, f"container {c.status}", threshold, tuple(evidence)),
            None,
        )
    stable_since = c.started_at
    restarts_since_baseline: int | None = None
    b = facts.baseline
    if b is not None and b.container_id == c.id:
        restarts_since_baseline = c.restart_count - b.restart_count
        evidence.append(f"baseline {b.recorded_at_raw}: RestartCount {b.restart_count}, StartedAt {b.started_at_raw}")
        if restarts_since_baseline == 0 and b.started_at_raw == c.started_at_raw:
            # Running with the same StartedAt when the baseline was taken and now: up throughout.
            stable_since = min(c.started_at, b.recorded_at)
    elif b is not None:
        evidence.append(
            f"baseline {b.recorded_at_raw} is for container {b.container_id[:12]}, "
            f"not {c.id[:12]}: "
            "the service was recreated since; judged by StartedAt alone "
            "(record a new baseline after a deliberate redeploy)"
        )
    else:
        evidence.append("no baseline recorded: judged by StartedAt alone")
    window_starts = {s.started_at_raw for s in facts.samples}
    restarted_in_window = len(window_starts) > 1
    if restarted_in_window:
        evidence.append(f"restarted during the {facts.window_seconds:g} s sampling window")
    uptime = max(now - stable_since, 0.0)
    measured = f"up {_hours(uptime)} without restart"
    if restarts_since_baseline is not None:
        measured += f", {restarts_since_baseline} restart(s) since baseline"
    elif c.restart_count:
        measured += f", RestartCount {c.restart_count}"
    ok = uptime >= t.min_uptime_hours * 3600 and not restarted_in_window
    ok = ok and not restarts_since_baseline
    status = Status.PASS if ok else Status.FAIL
    return Criterion("uptime", title, status, measured, threshold, tuple(evidence)), uptime / 3600


def judge_activity(facts: Facts, t: Thresholds, now: float) -> Criterion:
    """A log line from every ingester family within the last activity_minutes."""
    fams = ", ".join(t.families)
    title = f"Continuous processing ({fams})"
    threshold = f"a line from each family within the last {t.activity_minutes:g} min"
    logs = facts.logs
    if logs is None or logs.error:
        why = (logs.error if logs else None) or facts.inspect_error or "no logs read"
        return Criterion("activity", title, Status.UNKNOWN, f"logs unreadable: {why}", threshold)
    cutoff = now - t.activity_minutes * 60
    stale, parts, evidence = [], [], []
    for fam in t.families:
        last = logs.family_last.get(fam)
        count = logs.family_count.get(fam, 0)
        if last is None:
            stale.append(fam)
            parts.append(f"{fam}: none")
            evidence.append(f"{fam}: no line from rsky_ingester::{fam} in the scanned log")
            continue
        age = max(now - last, 0.0)
        parts.append(f"{fam}: {_hours(age)} ago")
        evidence.append(f"{fam}: {count} lines, last at {iso(last)}")
        if last < cutoff:
            stale.append(fam)
    status = Status.FAIL if stale else Status.PASS
    measured = "last line " + "; ".join(parts)
    if stale:
        measured += f" (silent: {', '.join(stale)})"
    return Criterion("activity", title, status, measured, threshold, tuple(evidence))


def fit(points: Sequence[tuple[float, float]], limit: int) -> MemoryTrend:
    """The least-squares line through (epoch, bytes) (`inputs.least_squares`); time to ``limit`` at its slope."""
    slope, r2 = least_squares(points)
    last = int(points[-1][1])
    to_limit = None
    if limit > 0 and slope > 0:
        to_limit = max(limit - last, 0) / slope / 3600
    return MemoryTrend(len(points), points[-1][0] - points[0][0], slope, r2, last, to_limit)


def _growing(trend: MemoryTrend, limit: int, t: Thresholds) -> bool:
    sustained = (
        trend.slope_bytes_per_second * trend.span_seconds >= t.memory_noise_mib * MIB and trend.r2 >= t.memory_min_r2
    )
    if not sustained:
        return False
    if limit > 0:
        return trend.hours_to_limit is not None and trend.hours_to_limit < t.memory_min_hours_to_limit
    return trend.slope_bytes_per_second * 3600 / MIB > t.memory_max_growth_mib_per_hour


def _describe(trend: MemoryTrend, limit: int) -> str:
    text = (
        f"{trend.slope_bytes_per_second * 3600 / MIB:+.1f} MiB/h (R² {trend.r2:.2f}) over "
        f"{trend.points} readings in {_hours(trend.span_seconds)}, "
        f"last {trend.last_bytes / MIB:.1f} MiB"
    )
    if limit > 0:
        text += f" of {limit / MIB:.0f} MiB limit"
        text += (
            f", limit in {trend.hours_to_limit:.1f} h"
            if trend.hours_to_limit is not None
            else ", not approaching the limit"
        )
    else:
        text += ", no memory limit set"
    return text


def judge_memory(
    facts: Facts, t: Thresholds, history: Sequence[HistoryEntry], now: float
) -> tuple[Criterion, MemoryTrend | None]:
    """No sustained growth toward HostConfig.Memory, in this window or across runs."""
    title = "Memory stable"
    limit = facts.container.memory_limit if facts.container else 0
    if limit > 0:
        threshold = (
            f"no growth above {t.memory_noise_mib:g} MiB (R² >= {t.memory_min_r2:g}) that reaches "
            f"the limit within {t.memory_min_hours_to_limit:g} h"
        )
    else:
        threshold = f"no sustained growth faster than {t.memory_max_growth_mib_per_hour:g} MiB/h (no limit set)"
    c = facts.container
    current = [s for s in facts.samples if c is not None and s.started_at_raw == c.started_at_raw]
    if len(current) < 3:
        why = f"{len(current)} reading(s) of the current run (3 needed)"
        if c is None or not c.running:
            why += "; the container is not running"
        return Criterion("memory", title, Status.UNKNOWN, why, threshold), None
    window = fit([(s.epoch, float(s.bytes)) for s in current], limit)
    evidence = [f"this window: {_describe(window, limit)}"]
    measured = _describe(window, limit)
    failing = _growing(window, limit, t)
    assert c is not None  # current readings imply a container
    since = now - t.history_hours * 3600
    runs = [
        (h.checked_at, float(h.memory_bytes))
        for h in history
        if h.container_id == c.id
        and h.started_at == c.started_at_raw
        and h.memory_bytes is not None
        and h.checked_at >= since
    ]
    if len(runs) >= 2:
        across = fit(sorted([*runs, (current[-1].epoch, float(current[-1].bytes))]), limit)
        evidence.append(f"across {across.points} runs of this container: {_describe(across, limit)}")
        if _growing(across, limit, t) and not failing:
            failing = True
            measured = f"across runs: {_describe(across, limit)}"
    status = Status.FAIL if failing else Status.PASS
    return Criterion("memory", title, status, measured, threshold, tuple(evidence)), window


def _kernel_epoch(clock: str | None, t: float | None, boot: float | None) -> float | None:
    if clock == "boot" and t is not None and boot is not None:
        return boot + t
    return t if clock == "wall" else None


def judge_kernel_oom(facts: Facts) -> tuple[Criterion, int]:
    """No OOM kill of this container in the kernel log since the baseline (or its creation)."""
    title = "No OOM kill since the baseline"
    threshold = "0 kernel OOM kills of this container"
    c = facts.container
    evidence: list[str] = []
    if c is not None and c.oom_killed:
        evidence.append(f"docker inspect: the last run of {c.name} was OOM-killed (exit {c.exit_code})")
    if facts.kernel_source is None:
        status = Status.FAIL if evidence else Status.UNKNOWN
        measured = f"kernel log unreadable: {facts.kernel_error}"
        return Criterion("kernel_oom", title, status, measured, threshold, tuple(evidence)), len(evidence)
    b = facts.baseline if _baseline_matches(facts) else None
    known = set(b.kernel_oom_lines) if b else set()
    since = b.recorded_at if b else (c.created if c else None)
    records = list(parse_dmesg(facts.kernel_lines, facts.kernel_source))
    memcg_by_pid = {k.pid: k.memcg for k in records if k.kind == "constraint" and k.memcg}
    kills, unrelated = [], 0
    for k in records:
        line = facts.kernel_lines[k.line - 1]
        if k.kind not in ("memcg-killed", "host-killed") or k.pid is None or line in known:
            continue
        when = _kernel_epoch(k.clock, k.t, facts.boot_epoch)
        if since is not None and when is not None and when < since:
            continue
        memcg = memcg_by_pid.get(k.pid)
        if c is None:
            mine = False
        elif memcg:
            mine = c.id in memcg or c.id[:12] in memcg
        else:
            mine = k.comm == Path(c.path).name
        if mine:
            kills.append(line.strip())
        else:
            unrelated += 1
    evidence.extend(kills[:10])
    if unrelated:
        evidence.append(f"{unrelated} other OOM kill(s) on the host, not of this container")
    scope = f"since the baseline ({b.recorded_at_raw})" if b else "since the container was created"
    count = len(kills) + (1 if c is not None and c.oom_killed and not kills else 0)
    status = Status.FAIL if count else Status.PASS
    measured = f"{len(kills)} OOM kill(s) of this container {scope} ({facts.kernel_source})"
    return Criterion("kernel_oom", title, status, measured, threshold, tuple(evidence)), count


def evaluate(
    facts: Facts,
    thresholds: Thresholds | None = None,
    history: Sequence[HistoryEntry] = (),
    *,
    host: str = "",
    now: float | None = None,
) -> Verification:
    """Judge every criterion of investigation.md's "Success Criteria" for one run."""
    t = thresholds or Thresholds()
    when = facts.probe_ended if now is None else now
    uptime, uptime_hours = judge_uptime(facts, t, when)
    memory, trend = judge_memory(facts, t, history, when)
    oom, kills = judge_kernel_oom(facts)
    exits = judge_exit_traces(facts)
    c = facts.container
    return Verification(
        host=host,
        checked_at=when,
        criteria=(exits, uptime, judge_activity(facts, t, when), memory, oom),
        allow_unknown=t.allow_unknown,
        container_id=c.id if c else "",
        started_at=c.started_at_raw if c else "",
        restart_count=c.restart_count if c else None,
        uptime_hours=uptime_hours,
        memory=trend,
        memory_limit=c.memory_limit if c else 0,
        exit_lines=facts.logs.exit_lines_total if facts.logs else 0,
        oom_kills=kills,
    )
