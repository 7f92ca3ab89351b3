#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Read-only facts about the ingester container for verify.yml."""

from __future__ import annotations

DOCUMENTATION = r"""
module: verify_probe
short_description: Read-only facts about the ingester container for verify.yml
description:
  - V(probe) samples the container's memory for O(window) seconds, streams C(docker logs) once (counts, the last line
    time of each ingester family and a capped list of exit lines, never the whole log), reads the kernel log's OOM
    lines and this target's baseline, and returns them as O(ignore:facts). It decides nothing; the controller's
    C(ingester_capture.verify) judges the criteria.
  - V(record) returns the baseline (docs/host-state.md) and, unless in check mode, writes C(baseline.json).
  - Every string returned is redacted like a capture bundle.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
  - Docker Compose v2 (C(docker compose)) on the host
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.target
options:
  mode:
    description: V(probe) or V(record).
    type: str
    choices: [probe, record]
    default: probe
  container:
    description: The container to judge.
    type: str
    default: rust-ingester
  window:
    description: Seconds of memory sampling.
    type: float
    default: 120
  interval:
    description: Seconds between two memory samples.
    type: float
    default: 2
attributes:
  check_mode:
    support: full
    details: The probe only reads; in check mode V(record) writes nothing.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Probe the ingester
  rsky.ingester_capture.verify_probe:
    project_dir: /mnt/nvme/bsky/atproto
    window: 120
  register: probe
"""

RETURN = r"""
facts:
  description: The probe's facts (schema 1), or the baseline with O(mode=record).
  returned: always
  type: dict
  sample: {"schema": 1, "window_seconds": 120, "inspect_error": null, "baseline": null, "baseline_error": null}
state_dir:
  description: This target's state folder.
  returned: always
  type: str
  sample: "/var/lib/ingester-capture/0123456789ab"
"""

import json
import re
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, hostinfo
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    inspect,
    parse_size,
    run,
    stream_lines,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import write_json
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import MAP_FILE, Redactor
from ansible_collections.rsky.ingester_capture.plugins.module_utils.service_lines import ANSI, FAMILIES, PANIC
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import DOCKER_TS, iso, parse_epoch

SCHEMA = 1
EXIT_LINES_KEPT = 40
FAMILY = re.compile(r"\brsky_ingester::(firehose|backfill|labeler)\b")
# Lines that mean a task or the process ended: the breadcrumbs of the exit paths, the result
# lines, CRITICAL errors, panics and main's final `Error:`. Start-up breadcrumbs are not here.
EXIT_KINDS = (
    ("exit-path", re.compile(r"\[EXIT-TRACE\].*EXIT PATH [A-Z]")),
    ("result", re.compile(r"\[EXIT-TRACE\] \w+ result: ")),
    ("panic", PANIC),
    ("critical", re.compile(r"\bCRITICAL\b")),
    ("error-exit", re.compile(r"^Error: ")),
)
# The kernel log source names the verify facts have always used.
SOURCE_NAMES = {"dmesg": "dmesg", "journalctl -k": "journalctl"}


def container_facts(name: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    raw, error = inspect(name, attempts=2)
    if raw is None:
        return None, error or "inspect failed"
    state, host = raw.get("State") or {}, raw.get("HostConfig") or {}
    return {
        "name": str(raw.get("Name", "")).lstrip("/"),
        "id": raw.get("Id", ""),
        "image": (raw.get("Config") or {}).get("Image", ""),
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


def _read_int(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _inactive_file(stat: Path) -> int:
    try:
        for line in stat.read_text().splitlines():
            key, _sep, value = line.partition(" ")
            if key in ("total_inactive_file", "inactive_file"):
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def cgroup_memory(cid: str) -> Tuple[Optional[int], str]:
    """Working-set bytes as `docker stats` counts them (usage minus inactive file cache)."""
    v1 = Path("/sys/fs/cgroup/memory")
    candidates = [
        (v1 / "docker" / cid, "memory.usage_in_bytes"),
        (v1 / "system.slice" / ("docker-%s.scope" % cid), "memory.usage_in_bytes"),
        (Path("/sys/fs/cgroup/system.slice") / ("docker-%s.scope" % cid), "memory.current"),
        (Path("/sys/fs/cgroup/docker") / cid, "memory.current"),
    ]
    for folder, name in candidates:
        usage = _read_int(folder / name)
        if usage is not None:
            return max(usage - _inactive_file(folder / "memory.stat"), 0), "cgroup:%s" % folder
    return None, ""


def stats_memory(container: str) -> Optional[int]:
    """Fallback: parse `docker stats` MemUsage ("12.5MiB / 64MiB")."""
    code, out, _err = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container])
    return parse_size(out.split("/")[0]) if code == 0 else None


def sample(container: str, window: float, interval: float) -> Tuple[List[Dict[str, Any]], List[str]]:
    samples = []  # type: List[Dict[str, Any]]
    errors = []  # type: List[str]
    end = time.monotonic() + window
    while True:
        info, err = container_facts(container)
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


def classify(text: str) -> Optional[str]:
    for kind, pattern in EXIT_KINDS:
        if pattern.search(text):
            return kind
    return None


def scan_logs(container: str, since: Optional[float], redact: Callable[[str], str] = str) -> Dict[str, Any]:
    """Stream `docker logs --timestamps` once, both streams, keeping only what verify needs
    (each kept line redacted by ``redact`` before it is cut)."""
    argv = ["docker", "logs", "--timestamps"]
    if since is not None:
        argv += ["--since", "%.3f" % since]
    argv.append(container)
    families = {f: {"count": 0, "last": None} for f in FAMILIES}  # type: Dict[str, Dict[str, Any]]
    first = []  # type: List[Dict[str, Any]]
    last: Deque[Dict[str, Any]] = deque(maxlen=EXIT_LINES_KEPT // 2)
    exit_total = lines = starts = 0
    # stderr merged into stdout: the kernel pipe keeps each line whole, and order only matters
    # for the kept exit lines, which carry their own timestamps.
    proc = stream_lines(argv)
    if proc.stdout is None:
        raise AssertionError("stream_lines gives a pipe")
    for raw in proc.stdout:
        lines += 1
        line = raw.decode("utf-8", "replace").rstrip("\n")
        m = DOCKER_TS.match(line)
        ts = line[: m.end()].strip() if m else None
        rest = line[m.end() :] if m else line
        text = ANSI.sub("", rest[1:] if m and rest.startswith(" ") else rest)
        if "Starting rsky-ingester" in text:
            starts += 1
        fam = FAMILY.search(text)
        if fam:
            families[fam.group(1)]["count"] += 1
            families[fam.group(1)]["last"] = ts
        kind = classify(text)
        if kind:
            exit_total += 1
            entry = {"ts": ts, "kind": kind, "text": redact(text)[:500]}
            # The first and the last ones tell the story; the middle of a long loop repeats.
            (first if len(first) < EXIT_LINES_KEPT // 2 else last).append(entry)
    rc = proc.wait()
    return {
        "since": iso(since) if since is not None else None,
        "lines": lines,
        "starts": starts,
        "families": families,
        "exit_lines_total": exit_total,
        "exit_lines": first + list(last),
        "error": None if rc == 0 else "docker logs exited %d" % rc,
    }


def kernel_oom() -> Dict[str, Any]:
    source, text, error = hostinfo.kernel_log()
    if source is None:
        return {"source": None, "error": error, "lines": []}
    return {"source": SOURCE_NAMES.get(source, source), "error": None, "lines": hostinfo.oom_lines(text)}


def read_baseline(state: Path) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    path = state / "baseline.json"
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, "%s: %s" % (path, exc)


def probe(
    state: Path, container: str, window: float, interval: float, redact: Callable[[str], str] = str
) -> Dict[str, Any]:
    started = time.time()
    baseline, baseline_error = read_baseline(state)
    samples, sample_errors = sample(container, window, interval)
    facts, inspect_error = container_facts(container)
    since = None
    if baseline and facts and baseline.get("container_id") == facts["id"]:
        since = parse_epoch(str(baseline.get("recorded_at", "")))
    return {
        "schema": SCHEMA,
        "probe_started": started,
        "probe_ended": time.time(),
        "boot_epoch": hostinfo.boot_epoch(),
        "container": facts,
        "inspect_error": inspect_error,
        "samples": samples,
        "sample_errors": sample_errors,
        "window_seconds": window,
        "logs": scan_logs(container, since, redact) if facts else None,
        "kernel": kernel_oom(),
        "baseline": baseline,
        "baseline_error": baseline_error,
    }


def record(container: str) -> Dict[str, Any]:
    facts, error = container_facts(container)
    if facts is None:
        raise host_state.StateError("cannot record a baseline: %s" % error)
    return {
        "recorded_at": iso(time.time()),
        "container_id": facts["id"],
        "started_at": facts["started_at"],
        "restart_count": facts["restart_count"],
        "image": facts["image"],
        "kernel_oom_lines": kernel_oom()["lines"],
    }


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        mode={"type": "str", "choices": ["probe", "record"], "default": "probe"},
        container={"type": "str", "default": "rust-ingester"},
        window={"type": "float", "default": 120},
        interval={"type": "float", "default": 2},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    state, compose = host_state.target_paths(p)
    redactor = Redactor.for_target(state, compose, [p["container"]])
    for note in redactor.notes:
        module.warn(note)
    try:
        if p["mode"] == "probe":
            facts = probe(state, p["container"], p["window"], p["interval"], redactor.text)
            changed = False
        else:
            facts = record(p["container"])
            changed = True
            if not module.check_mode:
                host_state.make_state_dir(state)
                write_json(state / "baseline.json", facts)
    except (host_state.StateError, OSError) as exc:
        module.fail_json(msg="verify_probe: %s" % redactor.line(str(exc)), state_dir=str(state))
    if state.is_dir() and not module.check_mode:
        redactor.save(state / MAP_FILE)
    module.exit_json(changed=changed, facts=redactor.value(facts), state_dir=str(state))


if __name__ == "__main__":
    main()
