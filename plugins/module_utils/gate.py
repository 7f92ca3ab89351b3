"""The deploy gate's arithmetic and decision (Python 3.8+, stdlib only, pure: no I/O).

A fix is watched for ``T = -ln(1 - confidence) x mean interval`` seconds (``min_seconds`` a
floor), where the interval is how often the old fault killed the service. If the fault were still
there, the chance of seeing no exit for ``t`` seconds is ``exp(-t / interval)``: the odds that
the watch so far proves nothing. The gate fails at the first exit, a panic banner, or a memory
slope that reaches the limit within the horizon; it passes once ``T`` seconds showed none of
them and every family logged work. docs/deploy.md works an example by hand.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import parse_size
from ansible_collections.rsky.ingester_capture.plugins.module_utils.service_lines import ANSI, PANIC

# An INFO line of a family's own target: the work it logs (batches written, repos processed,
# labels received); its start-up lines are not work yet.
WORK = re.compile(r"\bINFO\s+rsky_ingester::(firehose|backfill|labeler): (?!Starting |Connecting to )")
# A slope counts as a trend when it stands this many standard errors above zero.
SLOPE_T = 3.0


class GateError(ValueError):
    """A gate setting that cannot work (a confidence outside 0-1, a negative length)."""


# --- the arithmetic ---------------------------------------------------------------------------


def gate_seconds(
    interval: Optional[float],
    confidence: float,
    min_seconds: float,
    fixed_seconds: float,
    max_seconds: float = 0,
) -> float:
    """How long the fix must run clean: -ln(1 - confidence) x interval, at least min_seconds and,
    when max_seconds is set, at most that (a rare fault's interval would ask for weeks); without a
    measured interval, the fixed watch (also at least min_seconds)."""
    if not 0 < confidence < 1:
        raise GateError("deploy_gate_confidence must be between 0 and 1 (exclusive), got %r" % confidence)
    if min_seconds < 0 or fixed_seconds <= 0 or max_seconds < 0:
        raise GateError("deploy_gate_min_seconds and deploy_gate_max_seconds must be >= 0 and deploy_gate_seconds > 0")
    if interval is None or interval <= 0:
        return float(max(fixed_seconds, min_seconds))
    length = max(-math.log(1.0 - confidence) * interval, min_seconds)
    return float(min(length, max(max_seconds, min_seconds)) if max_seconds else length)


def odds_unchanged(elapsed: float, interval: Optional[float]) -> Optional[float]:
    """The chance that a service still failing every ``interval`` s on average shows no exit
    for ``elapsed`` s: exp(-elapsed / interval). None without an interval."""
    if interval is None or interval <= 0:
        return None
    return math.exp(-max(elapsed, 0.0) / interval)


def confidence_reached(elapsed: float, interval: Optional[float]) -> Optional[float]:
    """1 - odds_unchanged: how sure ``elapsed`` clean seconds make us that the fault is gone."""
    odds = odds_unchanged(elapsed, interval)
    return None if odds is None else 1.0 - odds


def one_in(odds: Optional[float]) -> str:
    """Odds as a person reads them: "1 in 1,097"."""
    if odds is None:
        return "n/a"
    if odds <= 0:
        return "1 in more than 10^300"
    return f"1 in {round(1.0 / odds):,}"


# --- the baseline -------------------------------------------------------------------------------


def _dist_mean(dist: Any) -> Optional[float]:
    """The central value of a report's ``{count, min, median, max}`` (the mean when given)."""
    if not isinstance(dist, Mapping) or not dist.get("count"):
        return None
    for key in ("mean", "median"):
        value = dist.get(key)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return None


def baseline_from_report(report: Any) -> Optional[Tuple[float, str]]:
    """The restart interval a capture's report.json measured: production's own history (the
    logs saved before the swap) first, else the window's restarts. None when it has none (a
    stable verdict, or fewer than two starts)."""
    if not isinstance(report, Mapping):
        return None
    history = report.get("production_history") or {}
    interval = _dist_mean(history.get("intervals_seconds")) if isinstance(history, Mapping) else None
    if interval is not None:
        count = history["intervals_seconds"]["count"]
        return interval, "production's restarts before the swap: %d interval(s), median %.1f s" % (count, interval)
    restarts = report.get("restarts") or {}
    interval = _dist_mean(restarts.get("intervals_seconds")) if isinstance(restarts, Mapping) else None
    if interval is not None:
        count = restarts["intervals_seconds"]["count"]
        return interval, "restarts in the capture window: %d interval(s), median %.1f s" % (count, interval)
    return None


def baseline_from_history(
    die_epochs: Sequence[float], restart_count: int, created: Optional[float], started: Optional[float]
) -> Optional[Tuple[float, str]]:
    """The mean interval between the production container's exits: from Docker's ``die`` events
    when there are two or more, else from ``RestartCount`` over the time from its creation to its
    last start. None when it never restarted."""
    dies = sorted(float(d) for d in die_epochs)
    if len(dies) >= 2:
        mean = (dies[-1] - dies[0]) / (len(dies) - 1)
        if mean > 0:
            return mean, "Docker's events: %d exits, one every %.1f s on average" % (len(dies), mean)
    if restart_count >= 1 and created is not None and started is not None and started > created:
        mean = (started - created) / restart_count
        return mean, "RestartCount %d between its creation and its last start: one every %.1f s" % (
            restart_count,
            mean,
        )
    return None


# --- memory -------------------------------------------------------------------------------------


def parse_mem_usage(text: str) -> Tuple[Optional[int], Optional[int]]:
    """docker stats' ``MemUsage`` (``792KiB / 64MiB``): (usage, limit) in bytes."""
    used, _sep, limit = (text or "").partition("/")
    return parse_size(used), parse_size(limit)


def memory_trend(
    samples: Sequence[Tuple[float, int]],
    limit: Optional[int],
    horizon_seconds: float,
    min_samples: int,
) -> Dict[str, Any]:
    """Least squares over (epoch, bytes): ``leak`` when the slope stands SLOPE_T standard errors
    above zero and, from the fitted last value, reaches ``limit`` within ``horizon_seconds``;
    ``flat`` otherwise; ``unknown`` with fewer than ``min_samples``."""
    n = len(samples)
    result = {
        "samples": n,
        "slope_bytes_per_second": None,
        "last_bytes": samples[-1][1] if samples else None,
        "limit_bytes": limit,
        "seconds_to_limit": None,
        "verdict": "unknown",
    }  # type: Dict[str, Any]
    if n < max(min_samples, 3):
        return result
    t0 = samples[0][0]
    xs = [t - t0 for t, _bytes in samples]
    ys = [float(b) for _t, b in samples]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return result
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    residual = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys))
    stderr = math.sqrt(residual / (n - 2) / sxx) if n > 2 else 0.0
    fitted_last = my + slope * (xs[-1] - mx)
    result["slope_bytes_per_second"] = round(slope, 3)
    significant = slope > 0 and (stderr == 0 or slope / stderr >= SLOPE_T)
    if significant and limit:
        to_limit = max(limit - fitted_last, 0.0) / slope
        result["seconds_to_limit"] = round(to_limit, 1)
        result["verdict"] = "leak" if to_limit <= horizon_seconds else "flat"
    else:
        result["verdict"] = "flat"
    return result


# --- the log ------------------------------------------------------------------------------------


def classify_line(raw: str) -> Tuple[Optional[str], Optional[str]]:
    """("panic", None), ("work", family) or (None, None) for one log line (a ``docker logs
    --timestamps`` stamp and ANSI colours allowed)."""
    text = ANSI.sub("", raw).rstrip("\n")
    head, sep, rest = text.partition(" ")
    if sep and head[:4].isdigit() and "T" in head:
        text = rest
    if PANIC.search(text):
        return "panic", None
    m = WORK.search(text)
    if m:
        return "work", m.group(1)
    return None, None


# --- the decision -------------------------------------------------------------------------------


def decide(
    elapsed: float,
    gate_length: float,
    interval: Optional[float],
    exits: Sequence[Mapping[str, Any]],
    panic: Optional[str],
    family_lines: Mapping[str, int],
    families: Iterable[str],
    memory: Mapping[str, Any],
    window_ended: Optional[str] = None,
    memory_wait_factor: float = 2.0,
) -> Dict[str, Any]:
    """The gate's state after ``elapsed`` seconds: ``running``, ``pass`` or ``fail``, and why."""
    required = list(families)
    silent = [f for f in required if not family_lines.get(f)]
    odds = odds_unchanged(elapsed, interval)
    state = {
        "decision": "running",
        "ended_by": None,
        "why": "",
        "elapsed": round(elapsed, 1),
        "gate_seconds": round(gate_length, 1),
        "odds": odds,
        "odds_text": one_in(odds),
        "confidence_reached": None if odds is None else round(1.0 - odds, 6),
        "exits": len(exits),
        "silent_families": silent,
    }  # type: Dict[str, Any]

    def end(decision: str, ended_by: str, why: str) -> Dict[str, Any]:
        state.update(decision=decision, ended_by=ended_by, why=why)
        return state

    if exits:
        first = exits[0]
        return end(
            "fail",
            "exit",
            "the fix exited (exit code %s) %.1f s after it started"
            % (first.get("exit_code"), first.get("after", elapsed)),
        )
    if panic:
        return end("fail", "panic", "a panic banner: %s" % panic[:200])
    if memory.get("verdict") == "leak":
        return end(
            "fail",
            "memory",
            "memory grows %.0f bytes/s and reaches the limit (%s bytes) in %.0f s, within the horizon"
            % (memory["slope_bytes_per_second"], memory.get("limit_bytes"), memory["seconds_to_limit"]),
        )
    if elapsed >= gate_length:
        if silent:
            return end("fail", "families", "no work logged by %s in %.0f s" % (", ".join(silent), elapsed))
        if memory.get("verdict") == "flat":
            return end(
                "pass",
                "passed",
                "%.0f s without an exit or a panic, memory flat, work logged by %s"
                % (elapsed, ", ".join(required) or "no family asked"),
            )
        if elapsed >= gate_length * memory_wait_factor:
            return end("fail", "memory-unknown", "too few memory samples to judge the trend after %.0f s" % elapsed)
    if window_ended:
        return end("fail", "window", "the watch ended before the gate decided (%s)" % window_ended)
    return state


def progress_line(state: Mapping[str, Any], memory: Mapping[str, Any]) -> str:
    """One line per poll: elapsed of the gate, exits, the odds so far, memory, families."""

    def clock(seconds: Any) -> str:
        total = int(float(seconds or 0))
        return "%d:%02d" % (total // 60, total % 60)

    parts = ["%s of %s" % (clock(state.get("elapsed")), clock(state.get("gate_seconds")))]
    parts.append("%s exit(s)" % state.get("exits", 0))
    if state.get("odds") is not None:
        parts.append(
            "odds the old fault is still there %s (confidence %.4f)"
            % (state.get("odds_text"), state.get("confidence_reached") or 0.0)
        )
    else:
        parts.append("fixed watch (no baseline rate)")
    slope = memory.get("slope_bytes_per_second")
    parts.append("memory %s%s" % (memory.get("verdict", "unknown"), "" if slope is None else " (%+.0f B/s)" % slope))
    silent = state.get("silent_families") or []
    parts.append("families silent: %s" % ", ".join(silent) if silent else "every family logged work")
    line = ", ".join(parts)
    if state.get("decision") in ("pass", "fail"):
        line += " - gate %s (%s)" % ("passed" if state["decision"] == "pass" else "FAILED", state.get("why"))
    return line


def exits_from_events(events: Iterable[Mapping[str, Any]], since: float) -> List[Dict[str, Any]]:
    """The ``die`` events (Docker's JSON) at or after ``since``: exit code and epoch, in order."""
    found = []
    for event in events:
        if str(event.get("Action") or event.get("status") or "") != "die":
            continue
        nano = event.get("timeNano")
        epoch = int(nano) / 1e9 if nano else float(event.get("time") or 0)
        if epoch < since:
            continue
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        code = str(attrs.get("exitCode"))
        found.append(
            {
                "exit_code": int(code) if code.lstrip("-").isdigit() else code,
                "epoch": epoch,
                "after": round(epoch - since, 1),
                "image": attrs.get("image"),
            }
        )
    return sorted(found, key=lambda e: e["epoch"])
