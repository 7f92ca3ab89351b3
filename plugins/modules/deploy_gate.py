#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""The deploy gate on the host: the baseline failure rate, then the watch of the fix."""

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_gate
short_description: Measure the old failure rate, then watch a fix until it passes or fails the gate
description:
  - V(baseline) decides how often the old fault killed the service, from the last capture's C(report.json) (passed in
    O(report) by the play, which reads it on the controller), else from the production container's own history
    (Docker's C(die) events, C(RestartCount), C(Created) and C(StartedAt)), else none (a fixed watch of
    O(fixed_seconds)). It returns the gate's length C(T = -ln(1 - confidence) x interval) with O(min_seconds) as a
    floor, whether the fix image O(image) is on the host and which commit its label names, and whether a swap is
    already pending in the state folder (a deploy or capture that did not finish). Read-only, also in check mode.
  - V(status) follows the watch the capture window runs in O(work_dir) (its events, each run's live logs and the stats
    samples), for up to O(poll) seconds, and decides. It fails the gate at the first exit of the fix, at a panic
    banner, or at a memory slope that reaches the limit within O(horizon_hours); it passes once O(gate_seconds) have
    shown none of them and every family in O(families) logged work. Once decided it stops the window, waits for it
    to end, and returns RV(done). The decision is kept in C(.gate.json), so a later poll returns the same.
  - The arithmetic is plugins/module_utils/gate.py; docs/deploy.md works an example by hand.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.target
options:
  state:
    description: V(baseline) or V(status).
    type: str
    choices: [baseline, status]
    default: status
  container:
    description: The service's container_name.
    type: str
    default: rust-ingester
  image:
    description: With V(baseline), the fix image to look for on the host (empty when it is still to be built).
    type: str
    default: ""
  report:
    description: With V(baseline), the last capture's C(report.json) of this host, as the play read it; empty for none.
    type: dict
    default: {}
  report_path:
    description: Where O(report) came from, for the play's message.
    type: str
    default: ""
  confidence:
    description: The confidence the gate must reach, between 0 and 1.
    type: float
    default: 0.999
  min_seconds:
    description: The gate is never shorter than this.
    type: float
    default: 60
  fixed_seconds:
    description: The gate's length when no failure rate is known.
    type: float
    default: 3600
  max_seconds:
    description: The gate is never longer than this (0 for no cap), whatever the interval asks for.
    type: float
    default: 86400
  work_dir:
    description: With V(status), the window's work folder.
    type: path
  gate_seconds:
    description: With V(status), the gate's length (V(baseline)'s RV(gate_seconds)); more than 0.
    type: float
    default: 0
  interval:
    description: With V(status), the baseline interval in seconds; 0 for none (no odds are printed).
    type: float
    default: 0
  families:
    description: With V(status), the families that must log work before the gate passes.
    type: list
    elements: str
    default: [firehose, backfill, labeler]
  horizon_hours:
    description: With V(status), a memory slope that reaches the limit within this many hours fails the gate.
    type: float
    default: 24
  memory_min_samples:
    description: With V(status), stats samples needed before the memory trend is judged.
    type: int
    default: 6
  memory_warmup_seconds:
    description: With V(status), samples of the fix's first seconds that the trend leaves out (caches filling).
    type: float
    default: 0
  poll:
    description: With V(status), seconds to follow before returning a progress line.
    type: int
    default: 15
attributes:
  check_mode:
    support: partial
    details: V(baseline) only reads and runs in check mode; V(status) has nothing to follow in check mode and returns at once.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: How often did the old fault kill the service
  rsky.ingester_capture.deploy_gate:
    state: baseline
    project_dir: /mnt/nvme/bsky/atproto
    image: rsky-ingester:fix
  register: baseline
"""

RETURN = r"""
baseline:
  description: V(baseline) - C(source) (V(report), V(history) or V(fixed)), C(interval_seconds) (null when fixed), C(detail).
  returned: with O(state=baseline)
  type: dict
  sample: {source: report, interval_seconds: 25.0, detail: "captures/ingester-1/20261202T054524Z-capture/report.json: 11 exits, every 25.0 s"}
gate_seconds:
  description: V(baseline) - how long the fix must run clean.
  returned: with O(state=baseline)
  type: float
  sample: 172.7
fix_image:
  description: V(baseline) - C(exists), C(id) and C(revision) (the org.opencontainers.image.revision label) of O(image).
  returned: with O(state=baseline)
  type: dict
  sample: {exists: true, id: "sha256:4f1c0e2d9b7a", revision: "fce7fe099d96e0b859e39277c4837b154c905456"}
pending_swap:
  description: V(baseline) - the state folder's swap.json when a swap is pending (null otherwise).
  returned: with O(state=baseline)
  type: dict
  sample: null
production:
  description: V(baseline) - the production container's C(image), C(restart_count), C(status) and C(id).
  returned: with O(state=baseline)
  type: dict
  sample: {image: "rsky-ingester:latest", restart_count: 41, status: running, id: "8a1f0c3b2d4e"}
gate:
  description: >-
    V(status) - C(decision) (V(running), V(pass), V(fail)), C(ended_by) (V(exit), V(panic), V(memory), V(families),
    V(memory-unknown), V(window), V(passed)), C(why), C(elapsed), C(gate_seconds), C(odds), C(odds_text),
    C(confidence_reached), C(exits), C(silent_families), C(first_exit), C(decided_epoch), C(started_epoch).
  returned: with O(state=status)
  type: dict
  sample:
    decision: running
    ended_by: null
    why: ""
    elapsed: 60.2
    gate_seconds: 172.7
    odds: 0.0902
    odds_text: 1 in 11
    confidence_reached: 0.9098
    exits: 0
    silent_families: []
    first_exit: null
    decided_epoch: null
    started_epoch: 1764654324.5
memory:
  description: V(status) - C(samples), C(slope_bytes_per_second), C(last_bytes), C(limit_bytes), C(seconds_to_limit), C(verdict).
  returned: with O(state=status)
  type: dict
  sample: {samples: 12, slope_bytes_per_second: 0.0, last_bytes: 8912896, limit_bytes: 67108864, seconds_to_limit: null, verdict: flat}
families:
  description: V(status) - work lines seen per family.
  returned: with O(state=status)
  type: dict
  sample: {firehose: 120, backfill: 14, labeler: 3}
line:
  description: V(status) - the progress line of this poll.
  returned: with O(state=status)
  type: str
  sample: "gate 1:00 of 2:53, no exit, odds 1 in 11 that the old fault would stay quiet this long, memory flat"
done:
  description: V(status) - the gate decided and the window has ended.
  returned: with O(state=status)
  type: bool
  sample: false
"""

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import gate, host_state, window
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import inspect, run
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import read_json, write_json
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import MAP_FILE, Redactor
from ansible_collections.rsky.ingester_capture.plugins.module_utils.service_lines import ANSI, FAMILIES
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import parse_epoch

GATE_FILE = ".gate.json"
LABEL = "org.opencontainers.image.revision"
# Seconds between two looks at the window's files inside one poll.
TICK = 0.5


# --- baseline -----------------------------------------------------------------------------------


def die_epochs(container: str, since: float) -> List[float]:
    """The container's ``die`` events Docker still holds (it keeps the last 256 of all)."""
    code, out, _err = run(
        [
            "docker",
            "events",
            "--since",
            "%.0f" % since,
            "--until",
            "%.0f" % time.time(),
            "--filter",
            "container=%s" % container,
            "--filter",
            "event=die",
            "--format",
            "{{json .}}",
        ],
        timeout=60,
    )
    if code != 0:
        return []
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return [e["epoch"] for e in gate.exits_from_events(events, since)]


def image_facts(image: str) -> Dict[str, Any]:
    if not image:
        return {"exists": False, "id": None, "revision": None}
    found, _error = inspect(image, kind="image", attempts=1)
    if found is None:
        return {"exists": False, "id": None, "revision": None}
    labels = (found.get("Config") or {}).get("Labels") or {}
    return {"exists": True, "id": found.get("Id"), "revision": labels.get(LABEL) or ""}


def baseline(module: AnsibleModule, state: Path) -> Dict[str, Any]:
    p = module.params
    found, error = inspect(p["container"], attempts=2)
    production = None  # type: Optional[Dict[str, Any]]
    chosen = None  # type: Optional[Tuple[str, float, str]]
    if p["report"]:
        got = gate.baseline_from_report(p["report"])
        if got is not None:
            chosen = ("report", got[0], "%s (%s)" % (got[1], p["report_path"] or "the last capture's report"))
    if found is not None:
        st = found.get("State") or {}
        production = {
            "id": found.get("Id"),
            "image": (found.get("Config") or {}).get("Image"),
            "restart_count": found.get("RestartCount", 0),
            "status": st.get("Status"),
            "started_at": st.get("StartedAt"),
        }
        if chosen is None:
            created = parse_epoch(str(found.get("Created") or ""))
            started = parse_epoch(str(st.get("StartedAt") or ""))
            dies = die_epochs(p["container"], created or (time.time() - 86400))
            got = gate.baseline_from_history(dies, int(found.get("RestartCount") or 0), created, started)
            if got is not None:
                chosen = ("history", got[0], "%s's history: %s" % (p["container"], got[1]))
    if chosen is None:
        why = (
            "%s and no restart in %s's history"
            % ("no restart interval in %s" % p["report_path"] if p["report"] else "no capture report", p["container"])
            if found is not None
            else "no capture report and no container to read (%s)" % error.strip()[:200]
        )
        base = {"source": "fixed", "interval_seconds": None, "detail": "%s: a fixed watch" % why}  # type: Dict[str, Any]
    else:
        base = {"source": chosen[0], "interval_seconds": round(chosen[1], 2), "detail": chosen[2]}
    try:
        length = gate.gate_seconds(
            base["interval_seconds"], p["confidence"], p["min_seconds"], p["fixed_seconds"], p["max_seconds"]
        )
    except gate.GateError as exc:
        module.fail_json(msg="Refusing to start, nothing was changed: %s" % exc)
    swap = read_json(state / host_state.SWAP_FILE) if (state / host_state.SWAP_FILE).is_file() else None
    return {
        "changed": False,
        "baseline": base,
        "gate_seconds": round(length, 1),
        "fix_image": image_facts(p["image"]),
        "pending_swap": swap or None,
        "production": production,
    }


# --- the watch ------------------------------------------------------------------------------------


def read_new(path: Path, offset: int) -> Tuple[List[str], int]:
    """Whole lines of ``path`` after ``offset``; the offset after the last whole line."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", "replace").splitlines(), offset + end


def scan(out: Path, kept: Dict[str, Any]) -> None:
    """Read what the window's live followers wrote since the last look: panics, work lines."""
    offsets = kept.setdefault("offsets", {})
    families = kept.setdefault("families", {f: 0 for f in FAMILIES})
    folder = out / window.FOLLOW_DIR
    paths = sorted(folder.glob("run-*.stdout")) + sorted(folder.glob("run-*.stderr")) if folder.is_dir() else []
    for path in paths:
        lines, offsets[path.name] = read_new(path, int(offsets.get(path.name, 0)))
        for line in lines:
            kind, family = gate.classify_line(line)
            if kind == "panic" and not kept.get("panic"):
                kept["panic"] = ANSI.sub("", line).strip()[:300]
            elif kind == "work" and family:
                families[family] = families.get(family, 0) + 1


def memory_samples(out: Path, since: float) -> Tuple[List[Tuple[float, int]], Optional[int]]:
    samples = []  # type: List[Tuple[float, int]]
    limit = None
    try:
        text = (out / "stats.jsonl").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return samples, limit
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        epoch = entry.get("epoch")
        stats = entry.get("stats") or {}
        if not isinstance(epoch, (int, float)) or epoch < since or not isinstance(stats, dict):
            continue
        used, lim = gate.parse_mem_usage(str(stats.get("MemUsage") or ""))
        if used is not None:
            samples.append((float(epoch), used))
            limit = lim or limit
    return samples, limit


def events(out: Path) -> List[Dict[str, Any]]:
    found = []  # type: List[Dict[str, Any]]
    try:
        text = (out / "events.jsonl").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


def look(
    module: AnsibleModule, out: Path, kept: Dict[str, Any]
) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """One look at the window: its progress, the gate's state, the memory trend."""
    p = module.params
    progress = window.read_progress(out)
    phase = progress.get("phase")
    started = float(progress.get("started_epoch") or time.time())
    if phase not in ("capturing", "finishing", "done"):
        started = time.time()
    scan(out, kept)
    samples, limit = memory_samples(out, started + p["memory_warmup_seconds"])
    memory = gate.memory_trend(samples, limit, p["horizon_hours"] * 3600.0, p["memory_min_samples"])
    exits = gate.exits_from_events(events(out), started)
    window_ended = None
    if phase == "done":
        window_ended = str(progress.get("ended_by") or "ended")
    elif progress.get("error"):
        window_ended = "failed: %s" % progress["error"]
    interval = p["interval"] or None
    elapsed = max(time.time() - started, 0.0)
    if exits:
        # What is known at the first exit, not what the poll's end would add.
        elapsed = min(elapsed, exits[0]["after"])
    decided = gate.decide(
        elapsed,
        p["gate_seconds"],
        interval,
        exits,
        kept.get("panic"),
        kept.get("families") or {},
        p["families"],
        memory,
        window_ended,
    )
    decided["started_epoch"] = started
    decided["first_exit"] = exits[0] if exits else None
    return progress, decided, memory


def status(module: AnsibleModule, out: Path) -> Dict[str, Any]:
    p = module.params
    kept = read_json(out / GATE_FILE)
    if kept.get("final"):
        return dict(kept["final"], changed=False)
    deadline = time.time() + p["poll"]
    while True:
        (out / window.HEARTBEAT_FILE).touch()
        progress, decided, memory = look(module, out, kept)
        if decided["decision"] != "running" or time.time() >= deadline:
            break
        time.sleep(TICK)
    result = {
        "changed": False,
        "gate": decided,
        "memory": memory,
        "families": kept.get("families"),
        "line": gate.progress_line(decided, memory),
        "done": False,
        "phase": progress.get("phase"),
    }  # type: Dict[str, Any]
    if decided["decision"] == "running":
        write_json(out / GATE_FILE, kept)
        return result
    decided["decided_epoch"] = time.time()
    # Decided: the window stops now (its end merges the logs the bundle needs).
    ended = window.stop(out, 240)
    result.update(
        done=True, phase=ended.get("phase"), window={k: ended.get(k) for k in ("ended_by", "notes", "elapsed")}
    )
    kept["final"] = {k: v for k, v in result.items() if k != "changed"}
    write_json(out / GATE_FILE, kept)
    return result


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        state={"type": "str", "choices": ["baseline", "status"], "default": "status"},
        container={"type": "str", "default": "rust-ingester"},
        image={"type": "str", "default": ""},
        report={"type": "dict", "default": {}},
        report_path={"type": "str", "default": ""},
        confidence={"type": "float", "default": 0.999},
        min_seconds={"type": "float", "default": 60},
        fixed_seconds={"type": "float", "default": 3600},
        max_seconds={"type": "float", "default": 86400},
        work_dir={"type": "path"},
        gate_seconds={"type": "float", "default": 0},
        interval={"type": "float", "default": 0},
        families={"type": "list", "elements": "str", "default": list(FAMILIES)},
        horizon_hours={"type": "float", "default": 24},
        memory_min_samples={"type": "int", "default": 6},
        memory_warmup_seconds={"type": "float", "default": 0},
        poll={"type": "int", "default": 15},
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_if=[("state", "status", ("work_dir",))],
    )
    p = module.params
    state, compose = host_state.target_paths(p)
    unknown = [f for f in p["families"] if f not in FAMILIES]
    if unknown:
        module.fail_json(msg="families must be among %s, got %s" % (", ".join(FAMILIES), ", ".join(unknown)))
    if p["state"] == "baseline":
        redactor = Redactor.for_target(state, compose, [p["container"]])
        result = baseline(module, state)
    else:
        if module.check_mode:
            module.exit_json(changed=False, done=True, msg="check mode: nothing to follow")
        if p["gate_seconds"] <= 0:
            module.fail_json(msg="gate_seconds must be more than 0 (the baseline's gate_seconds)")
        redactor = (
            Redactor.load(state / MAP_FILE) if (state / MAP_FILE).is_file() else Redactor.for_target(state, compose)
        )
        result = status(module, Path(p["work_dir"]))
    module.exit_json(**redactor.value(result))


if __name__ == "__main__":
    main()
