#!/usr/bin/env python3
"""Host-side probe for verify.yml: read-only facts about the ingester container, as JSON.

Standard library only (the host has no project packages). It decides nothing: it samples the
container's memory for a window, streams ``docker logs`` once (keeping counts, the last line time
of each ingester family and a capped list of exit lines, never the whole log), reads the kernel
log's OOM lines and the baseline, and prints one JSON object. The controller (collector.verify)
judges the criteria.

    verify_probe.py probe  --container NAME --state DIR [--window S] [--interval S]
    verify_probe.py record --container NAME

``record`` prints the baseline (docs/host-state.md) for the play to write; it writes nothing.
Exit codes: 0 facts printed (even when parts are missing: each part carries its error), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = 1
EXIT_LINES_KEPT = 40
FAMILIES = ("firehose", "backfill", "labeler")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A password in a URL (redis://:pw@host) never leaves the host, as in capture bundles.
URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:/@\"'<>]*:)[^\s@/\"'<>]+@")
FAMILY = re.compile(r"\brsky_ingester::(firehose|backfill|labeler)\b")
# Lines that mean a task or the process ended: the breadcrumbs of the exit paths, the result
# lines, CRITICAL errors, panics and main's final `Error:`. Start-up breadcrumbs are not here.
EXIT_KINDS = (
    ("exit-path", re.compile(r"\[EXIT-TRACE\].*EXIT PATH [A-Z]")),
    ("result", re.compile(r"\[EXIT-TRACE\] \w+ result: ")),
    ("panic", re.compile(r"FATAL PANIC OCCURRED|^thread '.*' (\(\d+\) )?panicked at ")),
    ("critical", re.compile(r"\bCRITICAL\b")),
    ("error-exit", re.compile(r"^Error: ")),
)
OOM_LINE = re.compile(r"oom-kill:|invoked oom-killer|Killed process|Out of memory", re.IGNORECASE)
DOCKER_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)\s?")


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def parse_ts(text: str) -> float | None:
    """Epoch of an RFC 3339 time as Docker prints it (nanoseconds, Z); None for the zero time."""
    m = DOCKER_TS.match(text.strip())
    if not m or m.group(1).startswith("0001-"):
        return None
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone).timestamp()


def iso(epoch: float) -> str:
    # timezone.utc, not datetime.UTC: hosts may run a Python older than 3.11.
    return datetime.fromtimestamp(epoch, timezone.utc).strftime(  # noqa: UP017
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


def inspect(container: str) -> tuple[dict[str, object] | None, str | None]:
    proc = run(["docker", "container", "inspect", container])
    if proc.returncode != 0:
        return None, (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
    raw = json.loads(proc.stdout)[0]
    state, host = raw.get("State", {}), raw.get("HostConfig", {})
    return {
        "name": str(raw.get("Name", "")).lstrip("/"),
        "id": raw.get("Id", ""),
        "image": raw.get("Config", {}).get("Image", ""),
        "path": raw.get("Path", ""),
        "created": raw.get("Created", ""),
        "started_at": state.get("StartedAt", ""),
        "finished_at": state.get("FinishedAt", ""),
        "status": state.get("Status", ""),
        "running": bool(state.get("Running")),
        "restarting": bool(state.get("Restarting")),
        "oom_killed": bool(state.get("OOMKilled")),
        "exit_code": state.get("ExitCode", 0),
        "pid": state.get("Pid", 0),
        "restart_count": raw.get("RestartCount", 0),
        "memory_limit": host.get("Memory", 0) or 0,
    }, None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _inactive_file(stat: Path) -> int:
    try:
        for line in stat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("total_inactive_file", "inactive_file"):
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def cgroup_memory(cid: str) -> tuple[int | None, str]:
    """Working-set bytes as `docker stats` counts them (usage minus inactive file cache)."""
    v1 = Path("/sys/fs/cgroup/memory")
    candidates = [
        (v1 / "docker" / cid, "memory.usage_in_bytes"),
        (v1 / "system.slice" / f"docker-{cid}.scope", "memory.usage_in_bytes"),
        (Path("/sys/fs/cgroup/system.slice") / f"docker-{cid}.scope", "memory.current"),
        (Path("/sys/fs/cgroup/docker") / cid, "memory.current"),
    ]
    for folder, name in candidates:
        usage = _read_int(folder / name)
        if usage is not None:
            return max(usage - _inactive_file(folder / "memory.stat"), 0), f"cgroup:{folder}"
    return None, ""


UNITS = {
    "B": 1,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}


def stats_memory(container: str) -> int | None:
    """Fallback: parse `docker stats` MemUsage ("12.5MiB / 64MiB")."""
    proc = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container])
    m = re.match(r"\s*([\d.]+)\s*([A-Za-z]+)", proc.stdout)
    if proc.returncode != 0 or not m or m.group(2).upper() not in UNITS:
        return None
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def sample(
    container: str, window: float, interval: float
) -> tuple[list[dict[str, object]], list[str]]:
    samples: list[dict[str, object]] = []
    errors: list[str] = []
    end = time.monotonic() + window
    while True:
        info, err = inspect(container)
        if info is None:
            errors.append(err or "inspect failed")
        elif info["running"]:
            value, source = cgroup_memory(str(info["id"]))
            if value is None:
                value, source = stats_memory(container), "docker-stats"
            if value is not None:
                samples.append(
                    {
                        "epoch": time.time(),
                        "bytes": value,
                        "source": source,
                        "started_at": info["started_at"],
                        "restart_count": info["restart_count"],
                    }
                )
        if time.monotonic() >= end:
            break
        time.sleep(max(min(interval, end - time.monotonic()), 0.05))
    return samples, errors[:5]


def classify(text: str) -> str | None:
    for kind, pattern in EXIT_KINDS:
        if pattern.search(text):
            return kind
    return None


def scan_logs(container: str, since: float | None) -> dict[str, object]:
    """Stream `docker logs --timestamps` once, both streams, keeping only what verify needs."""
    argv = ["docker", "logs", "--timestamps"]
    if since is not None:
        argv += ["--since", f"{since:.3f}"]
    argv.append(container)
    families: dict[str, dict[str, object]] = {f: {"count": 0, "last": None} for f in FAMILIES}
    first: list[dict[str, object]] = []
    last: deque[dict[str, object]] = deque(maxlen=EXIT_LINES_KEPT // 2)
    exit_total = lines = starts = 0
    # stderr merged into stdout: the kernel pipe keeps each line whole, and order only matters
    # for the kept exit lines, which carry their own timestamps.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines += 1
        line = raw.decode("utf-8", "replace").rstrip("\n")
        m = DOCKER_TS.match(line)
        ts = line[: m.end()].strip() if m else None
        text = ANSI.sub("", line[m.end() :] if m else line)
        if "Starting rsky-ingester" in text:
            starts += 1
        fam = FAMILY.search(text)
        if fam:
            entry = families[fam.group(1)]
            entry["count"] = int(str(entry["count"])) + 1
            entry["last"] = ts
        kind = classify(text)
        if kind:
            exit_total += 1
            shown = URL_PASSWORD.sub(r"\1[REDACTED]@", text[:500])
            record: dict[str, object] = {"ts": ts, "kind": kind, "text": shown}
            # The first and the last ones tell the story; the middle of a long loop repeats.
            (first if len(first) < EXIT_LINES_KEPT // 2 else last).append(record)
    rc = proc.wait()
    return {
        "since": iso(since) if since is not None else None,
        "lines": lines,
        "starts": starts,
        "families": families,
        "exit_lines_total": exit_total,
        "exit_lines": first + list(last),
        "error": None if rc == 0 else f"docker logs exited {rc}",
    }


def kernel_oom_lines() -> dict[str, object]:
    """OOM-related kernel lines: dmesg (seconds since boot), else journalctl -k (ISO times)."""
    journal = ["journalctl", "-k", "-o", "short-iso", "--no-pager", "-q"]
    last = "no kernel log source"
    for source, argv in (("dmesg", ["dmesg"]), ("journalctl", journal)):
        try:
            proc = run(argv)
        except (OSError, subprocess.TimeoutExpired) as exc:
            last = str(exc)
            continue
        if proc.returncode == 0 and proc.stdout.strip():
            return {
                "source": source,
                "error": None,
                "lines": [ln for ln in proc.stdout.splitlines() if OOM_LINE.search(ln)],
            }
        last = (proc.stderr or "").strip() or f"{argv[0]} exited {proc.returncode}"
    return {"source": None, "error": last, "lines": []}


def boot_epoch() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def read_baseline(state: Path) -> tuple[dict[str, object] | None, str | None]:
    path = state / "baseline.json"
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path}: {exc}"


def probe(args: argparse.Namespace) -> dict[str, object]:
    started = time.time()
    baseline, baseline_error = read_baseline(Path(args.state))
    samples, sample_errors = sample(args.container, args.window, args.interval)
    container, inspect_error = inspect(args.container)
    since = None
    if baseline and container and baseline.get("container_id") == container["id"]:
        since = parse_ts(str(baseline.get("recorded_at", "")))
    logs = scan_logs(args.container, since) if container else None
    return {
        "schema": SCHEMA,
        "probe_started": started,
        "probe_ended": time.time(),
        "boot_epoch": boot_epoch(),
        "container": container,
        "inspect_error": inspect_error,
        "samples": samples,
        "sample_errors": sample_errors,
        "window_seconds": args.window,
        "logs": logs,
        "kernel": kernel_oom_lines(),
        "baseline": baseline,
        "baseline_error": baseline_error,
    }


def record(args: argparse.Namespace) -> dict[str, object]:
    container, error = inspect(args.container)
    if container is None:
        raise SystemExit(f"verify_probe: cannot record a baseline: {error}")
    return {
        "recorded_at": iso(time.time()),
        "container_id": container["id"],
        "started_at": container["started_at"],
        "restart_count": container["restart_count"],
        "image": container["image"],
        "kernel_oom_lines": kernel_oom_lines()["lines"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify_probe.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--container", required=True)
    p.add_argument("--state", required=True, help="the state folder of this compose project")
    p.add_argument("--window", type=float, default=120.0)
    p.add_argument("--interval", type=float, default=2.0)
    r = sub.add_parser("record")
    r.add_argument("--container", required=True)
    args = parser.parse_args(argv)
    result = probe(args) if args.command == "probe" else record(args)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
