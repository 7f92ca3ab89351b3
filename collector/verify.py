"""Judge the investigation's success criteria from the facts verify.yml's host probe gathered.

The host probe (roles/verify/files/verify_probe.py) only reads; this module decides. It is pure
apart from :func:`main`: :func:`parse_facts` turns the probe's JSON into typed facts,
:func:`evaluate` turns facts, thresholds and earlier runs into a :class:`Verdict`, and
:func:`render_markdown` / :func:`render_history` render it with the Jinja2 templates in
``collector/report/templates``.

    python -m collector.verify evaluate --facts F --host H --out-dir D [--history H.jsonl] ...
    python -m collector.verify history H.jsonl

Exit codes (the one table, :class:`collector.exitcodes.Exit`): 0 every criterion passed, 20 at
least one failed (named on stdout), 2 usage, 3 the facts or the history could not be read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import jinja2

from collector.exitcodes import Exit
from collector.sources.common import load_json

MIB = 1024 * 1024
TEMPLATES = Path(__file__).parent / "report" / "templates"
FAMILIES = ("firehose", "backfill", "labeler")

_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_DMESG_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s*")
_KILLED = re.compile(r"(?:Memory cgroup out of memory|Out of memory): Killed process (\d+) \(([^)]*)\)")
_OOM_KILL = re.compile(r"oom-kill:.*?task_memcg=([^,\s]*),task=([^,\s]*),pid=(\d+)")


class VerifyError(ValueError):
    """The probe's facts, the history or a threshold cannot be read; the message says why."""


class Status(StrEnum):
    """A criterion's outcome; UNKNOWN (the evidence is missing) fails unless allowed."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    UNKNOWN = "unknown"


# ------------------------------------------------------------------------------ facts ---


@dataclass(frozen=True)
class Container:
    """The parts of ``docker inspect`` verify needs."""

    name: str
    id: str
    image: str
    path: str
    created: float | None
    started_at: float | None
    started_at_raw: str
    status: str
    running: bool
    restarting: bool
    oom_killed: bool
    exit_code: int
    restart_count: int
    memory_limit: int


@dataclass(frozen=True)
class Sample:
    """One memory reading of the container's cgroup."""

    epoch: float
    bytes: int
    started_at_raw: str
    restart_count: int


@dataclass(frozen=True)
class ExitLine:
    """A log line that means a task or the process ended."""

    ts: str | None
    kind: str
    text: str


@dataclass(frozen=True)
class Logs:
    """What one streaming pass over ``docker logs`` kept."""

    since: str | None
    lines: int
    starts: int
    family_last: Mapping[str, float | None]
    family_count: Mapping[str, int]
    exit_lines_total: int
    exit_lines: tuple[ExitLine, ...]
    error: str | None


@dataclass(frozen=True)
class Baseline:
    """baseline.json: the container as it was when the fix was deployed."""

    recorded_at: float
    recorded_at_raw: str
    container_id: str
    started_at_raw: str
    restart_count: int
    image: str
    kernel_oom_lines: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """Everything the host probe reported for one run."""

    probe_started: float
    probe_ended: float
    boot_epoch: float | None
    window_seconds: float
    container: Container | None
    inspect_error: str | None
    samples: tuple[Sample, ...]
    logs: Logs | None
    kernel_source: str | None
    kernel_error: str | None
    kernel_lines: tuple[str, ...]
    baseline: Baseline | None
    baseline_error: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of verify-history.jsonl, as far as later runs use it."""

    checked_at: float
    container_id: str
    started_at: str
    memory_bytes: int | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Thresholds:
    """The knobs of verify.yml (verify_* variables), in the units a person sets them."""

    min_uptime_hours: float = 24.0
    activity_minutes: float = 10.0
    families: tuple[str, ...] = FAMILIES
    memory_noise_mib: float = 4.0
    memory_min_hours_to_limit: float = 24.0
    memory_max_growth_mib_per_hour: float = 64.0
    memory_min_r2: float = 0.5
    history_hours: float = 168.0
    allow_unknown: bool = False


@dataclass(frozen=True)
class Criterion:
    """One success criterion: outcome, the measured value, the threshold, the evidence."""

    name: str
    title: str
    status: Status
    measured: str
    threshold: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemoryTrend:
    """A least-squares line through memory readings."""

    points: int
    span_seconds: float
    slope_bytes_per_second: float
    r2: float
    last_bytes: int
    hours_to_limit: float | None


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification run."""

    host: str
    checked_at: float
    criteria: tuple[Criterion, ...]
    allow_unknown: bool
    container_id: str
    started_at: str
    restart_count: int | None
    uptime_hours: float | None
    memory: MemoryTrend | None
    memory_limit: int
    exit_lines: int
    oom_kills: int

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the criteria that did not pass (unknown counts unless allowed)."""
        bad = {Status.FAIL} if self.allow_unknown else {Status.FAIL, Status.UNKNOWN}
        return tuple(c.name for c in self.criteria if c.status in bad)

    @property
    def passed(self) -> bool:
        """True when no criterion failed."""
        return not self.failed


# ---------------------------------------------------------------------------- parsing ---


def parse_time(text: str | None) -> float | None:
    """Epoch of an RFC 3339 time (Docker's nanoseconds allowed); None for empty or zero time."""
    if not text:
        return None
    m = _TS.match(text.strip())
    if not m or m.group(1).startswith("0001-"):
        return None
    zone = m.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone if ":" in zone else zone[:3] + ":" + zone[3:]
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + zone).timestamp()


def iso(epoch: float) -> str:
    """RFC 3339 UTC, seconds precision."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise VerifyError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _num(data: Mapping[str, Any], key: str, what: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VerifyError(f"{what}: {key!r} should be a number, got {value!r}")
    return float(value)


def _container(data: Mapping[str, Any]) -> Container:
    try:
        return Container(
            name=str(data["name"]),
            id=str(data["id"]),
            image=str(data["image"]),
            path=str(data.get("path", "")),
            created=parse_time(str(data.get("created", ""))),
            started_at=parse_time(str(data.get("started_at", ""))),
            started_at_raw=str(data.get("started_at", "")),
            status=str(data.get("status", "")),
            running=bool(data.get("running")),
            restarting=bool(data.get("restarting")),
            oom_killed=bool(data.get("oom_killed")),
            exit_code=int(data.get("exit_code", 0)),
            restart_count=int(data.get("restart_count", 0)),
            memory_limit=int(data.get("memory_limit", 0) or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"container facts: {exc!r}") from exc


def _logs(data: Mapping[str, Any]) -> Logs:
    families = _obj(data.get("families", {}), "logs.families")
    last: dict[str, float | None] = {}
    count: dict[str, int] = {}
    for name, entry in families.items():
        entry = _obj(entry, f"logs.families.{name}")
        last[str(name)] = parse_time(entry.get("last"))
        count[str(name)] = int(entry.get("count", 0))
    lines = tuple(
        ExitLine(ts=e.get("ts"), kind=str(e.get("kind", "")), text=str(e.get("text", "")))
        for e in (_obj(x, "logs.exit_lines[]") for x in data.get("exit_lines", []))
    )
    return Logs(
        since=data.get("since"),
        lines=int(data.get("lines", 0)),
        starts=int(data.get("starts", 0)),
        family_last=last,
        family_count=count,
        exit_lines_total=int(data.get("exit_lines_total", len(lines))),
        exit_lines=lines,
        error=data.get("error"),
    )


def parse_baseline(data: Mapping[str, Any]) -> Baseline:
    """baseline.json as docs/host-state.md describes it."""
    recorded = parse_time(str(data.get("recorded_at", "")))
    if recorded is None:
        raise VerifyError(f"baseline: recorded_at is not a time: {data.get('recorded_at')!r}")
    try:
        return Baseline(
            recorded_at=recorded,
            recorded_at_raw=str(data["recorded_at"]),
            container_id=str(data["container_id"]),
            started_at_raw=str(data["started_at"]),
            restart_count=int(data["restart_count"]),
            image=str(data.get("image", "")),
            kernel_oom_lines=tuple(str(x) for x in data.get("kernel_oom_lines", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VerifyError(f"baseline: missing or bad field {exc}") from exc


def parse_facts(data: Any) -> Facts:
    """The probe's JSON object as typed facts; raises VerifyError on a malformed document."""
    try:
        return _parse_facts(data)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        if isinstance(exc, VerifyError):
            raise
        raise VerifyError(f"facts: malformed ({exc})") from exc


def _parse_facts(data: Any) -> Facts:
    data = _obj(data, "facts")
    if data.get("schema") != 1:
        raise VerifyError(f"facts: unknown schema {data.get('schema')!r} (this reads 1)")
    container = data.get("container")
    logs = data.get("logs")
    kernel = _obj(data.get("kernel") or {}, "kernel")
    baseline_raw = data.get("baseline")
    baseline_error = data.get("baseline_error")
    baseline = None
    if baseline_raw is not None:
        try:
            baseline = parse_baseline(_obj(baseline_raw, "baseline"))
        except VerifyError as exc:
            baseline_error = str(exc)
    samples = []
    for raw in data.get("samples", []):
        raw = _obj(raw, "samples[]")
        samples.append(
            Sample(
                epoch=_num(raw, "epoch", "sample"),
                bytes=int(_num(raw, "bytes", "sample")),
                started_at_raw=str(raw.get("started_at", "")),
                restart_count=int(_num(raw, "restart_count", "sample", 0)),
            )
        )
    boot = data.get("boot_epoch")
    return Facts(
        probe_started=_num(data, "probe_started", "facts"),
        probe_ended=_num(data, "probe_ended", "facts"),
        boot_epoch=float(boot) if isinstance(boot, int | float) else None,
        window_seconds=_num(data, "window_seconds", "facts", 0),
        container=_container(_obj(container, "container")) if container is not None else None,
        inspect_error=data.get("inspect_error"),
        samples=tuple(samples),
        logs=_logs(_obj(logs, "logs")) if logs is not None else None,
        kernel_source=kernel.get("source"),
        kernel_error=kernel.get("error"),
        kernel_lines=tuple(str(x) for x in kernel.get("lines", [])),
        baseline=baseline,
        baseline_error=baseline_error,
    )


def parse_history(lines: Iterable[str]) -> tuple[HistoryEntry, ...]:
    """verify-history.jsonl; a line that is not one of ours is skipped, not fatal."""
    entries = []
    for line in lines:
        try:
            raw = load_json(line)
            checked = parse_time(raw["checked_at"])
        except (ValueError, KeyError, TypeError):
            continue
        if checked is None or not isinstance(raw, dict):
            continue
        mem = raw.get("memory_bytes")
        entries.append(
            HistoryEntry(
                checked_at=checked,
                container_id=str(raw.get("container_id", "")),
                started_at=str(raw.get("started_at", "")),
                memory_bytes=int(mem) if isinstance(mem, int | float) else None,
                raw=raw,
            )
        )
    return tuple(entries)


# --------------------------------------------------------------------------- deciding ---


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
    """Least-squares slope through (epoch, bytes); time to ``limit`` at that slope."""
    n = len(points)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx if sxx > 0 else 0.0
    r2 = (sxy * sxy) / (sxx * syy) if sxx > 0 and syy > 0 else 0.0
    last = int(ys[-1])
    to_limit = None
    if limit > 0 and slope > 0:
        to_limit = max(limit - last, 0) / slope / 3600
    return MemoryTrend(n, xs[-1] - xs[0], slope, r2, last, to_limit)


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


def _kernel_epoch(line: str, boot: float | None) -> float | None:
    m = _DMESG_TS.match(line)
    if m:
        return boot + float(m.group(1)) if boot is not None else None
    return parse_time(line.split(" ", 1)[0])


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
    memcg_by_pid: dict[str, str] = {}
    kills, unrelated = [], 0
    for line in facts.kernel_lines:
        m = _OOM_KILL.search(line)
        if m:
            memcg_by_pid[m.group(3)] = m.group(1)
        k = _KILLED.search(line)
        if not k or line in known:
            continue
        when = _kernel_epoch(line, facts.boot_epoch)
        if since is not None and when is not None and when < since:
            continue
        memcg = memcg_by_pid.get(k.group(1))
        if c is None:
            mine = False
        elif memcg:
            mine = c.id in memcg or c.id[:12] in memcg
        else:
            mine = k.group(2) == Path(c.path).name
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
) -> Verdict:
    """Judge every criterion of investigation.md's "Success Criteria" for one run."""
    t = thresholds or Thresholds()
    when = facts.probe_ended if now is None else now
    uptime, uptime_hours = judge_uptime(facts, t, when)
    memory, trend = judge_memory(facts, t, history, when)
    oom, kills = judge_kernel_oom(facts)
    exits = judge_exit_traces(facts)
    c = facts.container
    return Verdict(
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


# -------------------------------------------------------------------------- rendering ---


def summary(verdict: Verdict) -> str:
    """One line: the verdict and the failing criteria by name."""
    name = verdict.host or "host"
    if verdict.passed:
        return f"{name}: PASS ({len(verdict.criteria)}/{len(verdict.criteria)} criteria)"
    return f"{name}: FAIL ({', '.join(verdict.failed)})"


def history_line(verdict: Verdict) -> dict[str, Any]:
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


def verdict_json(verdict: Verdict) -> dict[str, Any]:
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


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # noqa: S701 - Markdown, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_history(history: Sequence[Mapping[str, Any]]) -> str:
    """The history as a Markdown table, oldest first: a week of runs reads at a glance."""
    return _env().get_template("verify-history.md.j2").render(rows=history, cell=_cell)


def render_markdown(verdict: Verdict, history: Sequence[Mapping[str, Any]] = ()) -> str:
    """verify.md: verdict, one section per criterion, and the recent history table."""
    return (
        _env()
        .get_template("verify.md.j2")
        .render(
            v=verdict,
            summary=summary(verdict),
            checked_at=iso(verdict.checked_at),
            history=render_history(history[-50:]) if history else "",
            cell=_cell,
        )
    )


# -------------------------------------------------------------------------------- CLI ---


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collector.verify", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="judge a probe's facts; write verify.json and verify.md")
    ev.add_argument("--facts", required=True, help="the probe's JSON; - reads stdin")
    ev.add_argument("--host", default="")
    ev.add_argument("--out-dir", type=Path, help="where verify.json and verify.md go")
    ev.add_argument("--history", type=Path, help="verify-history.jsonl of earlier runs")
    ev.add_argument("--history-md", type=Path, help="also render the history (with this run)")
    ev.add_argument("--min-uptime-hours", type=float, default=Thresholds.min_uptime_hours)
    ev.add_argument("--activity-minutes", type=float, default=Thresholds.activity_minutes)
    ev.add_argument("--families", default=",".join(FAMILIES))
    ev.add_argument("--memory-noise-mib", type=float, default=Thresholds.memory_noise_mib)
    ev.add_argument("--memory-min-hours-to-limit", type=float, default=Thresholds.memory_min_hours_to_limit)
    ev.add_argument(
        "--memory-max-growth-mib-per-hour",
        type=float,
        default=Thresholds.memory_max_growth_mib_per_hour,
    )
    ev.add_argument("--memory-min-r2", type=float, default=Thresholds.memory_min_r2)
    ev.add_argument("--history-hours", type=float, default=Thresholds.history_hours)
    ev.add_argument("--allow-unknown", action="store_true")
    hist = sub.add_parser("history", help="print verify-history.jsonl as a Markdown table")
    hist.add_argument("file", type=Path)
    return parser


def _read_history(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _evaluate_cmd(args: argparse.Namespace) -> int:
    thresholds = Thresholds(
        min_uptime_hours=args.min_uptime_hours,
        activity_minutes=args.activity_minutes,
        families=tuple(f.strip() for f in args.families.split(",") if f.strip()),
        memory_noise_mib=args.memory_noise_mib,
        memory_min_hours_to_limit=args.memory_min_hours_to_limit,
        memory_max_growth_mib_per_hour=args.memory_max_growth_mib_per_hour,
        memory_min_r2=args.memory_min_r2,
        history_hours=args.history_hours,
        allow_unknown=args.allow_unknown,
    )
    try:
        text = sys.stdin.read() if args.facts == "-" else Path(args.facts).read_text("utf-8")
        raw = load_json(text)
    except (OSError, ValueError) as exc:
        raise VerifyError(f"facts {args.facts}: {exc}") from exc
    facts = parse_facts(raw)
    old_lines = _read_history(args.history)
    history = parse_history(old_lines)
    verdict = evaluate(facts, thresholds, history, host=args.host)
    line = history_line(verdict)
    rows = [dict(h.raw) for h in history if not args.host or h.raw.get("host") in ("", args.host)]
    rows.append(line)
    if args.out_dir:
        _write(args.out_dir / "facts.json", json.dumps(raw, indent=2, sort_keys=True) + "\n")
        _write(args.out_dir / "verify.json", json.dumps(verdict_json(verdict), indent=2) + "\n")
        _write(args.out_dir / "verify.md", render_markdown(verdict, rows))
    if args.history_md:
        _write(args.history_md, render_history(rows))
    print(
        json.dumps(
            {
                "passed": verdict.passed,
                "failed": list(verdict.failed),
                "summary": summary(verdict),
                "history_line": line,
            },
            sort_keys=True,
        )
    )
    return Exit.OK if verdict.passed else Exit.VERIFY_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m collector.verify``: see the module docstring."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage or the help
        return Exit.OK if exc.code == 0 else Exit.USAGE
    try:
        if args.command == "history":
            rows = [dict(h.raw) for h in parse_history(_read_history(args.file))]
            sys.stdout.write(render_history(rows))
            return Exit.OK
        return _evaluate_cmd(args)
    except VerifyError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return Exit.UNREADABLE
    except OSError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return Exit.UNREADABLE


if __name__ == "__main__":
    sys.exit(main())
