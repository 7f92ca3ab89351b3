#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Start, follow and stop the capture window (a detached worker on the host)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: capture_window
short_description: Start, follow and stop the capture window on the host
description:
  - V(started) starts a detached worker that owns the followers for the whole window (the container's events, each
    run's logs, stats samples, the runbook's attached C(docker compose up) tee) and, in capture mode, first recreates
    the service on the swapped image. It returns once the worker captures.
  - V(status) waits up to O(poll) seconds, keeping the worker's heartbeat fresh, and returns its progress.
  - V(stopped) asks the worker to end and waits until it has written the merged log and C(window.json).
  - The worker is known by its pid and its process's start time. When it dies before ending the window (killed, out
    of memory), V(status) fails within the poll under way, saying C(the capture window's worker (pid N) died ...),
    and V(stopped) ends the window in its place at once; the followers it left running are stopped, what they had
    read is merged with an end-of-window read into the merged log, the service is never left stopped, and
    C(window.json) says the window is partial (RV(partial)), so the play can seal what was captured.
  - When the Docker daemon goes away during the window (stopped, restarted), the worker records a
    C(daemon_unavailable) gap, waits for the daemon, opens the event stream again from the gap's start and carries on
    (see RV(daemon_unavailable)).
  - The worker ends by itself at the deadline, after O(stop_after) restarts, on a signal, or when nobody asked for
    its status for O(heartbeat_timeout) seconds (an interrupted play), so nothing is left running. It never leaves
    the service stopped.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
  - Docker Compose v2 (C(docker compose)) on the host
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.work
  - rsky.ingester_capture.target
options:
  state:
    description: V(started), V(status) or V(stopped).
    type: str
    choices: [started, status, stopped]
    default: status
  recreate:
    description: Capture mode; stop, remove and bring the service up on the swapped image first. Observe mode if false.
    type: bool
    default: false
  seconds:
    description: Longest the window runs.
    type: int
    default: 300
  stop_after:
    description: End the window after this many restarts (0 for the full window).
    type: int
    default: 3
  stats_interval:
    description: Seconds between stats samples.
    type: float
    default: 5
  stop_timeout:
    description: Seconds C(docker compose stop) waits before SIGKILL on the recreate.
    type: int
    default: 10
  heartbeat_timeout:
    description: The worker stops by itself after this many seconds without a status request.
    type: int
    default: 60
  logs_since:
    description: Observe mode; read the logs from this time on (default all).
    type: str
  reserve_bytes:
    description:
      - The window stops early, keeping what it has, when the free space under O(work_dir) falls below this plus what
        the followers have written so far (the merge at the end needs about as much again). 0 for no check.
    type: int
    default: 67108864
  attach:
    description:
      - The service's logging driver keeps nothing C(docker logs) can read (pre-flight's C(log_readable) false). Each run
        is then read with C(docker attach) from its start event, every line stamped when it arrived, and the bundle
        names the attached streams as the one source. Otherwise each run is followed with
        C(docker logs --follow --timestamps --since) from its start event.
    type: bool
    default: false
  lock_owner:
    description: The owner of the capture lock; the worker names itself in the lock and frees it when aborted.
    type: str
  start_timeout:
    description: Seconds to wait for the worker to start capturing.
    type: int
    default: 300
  poll:
    description: Seconds a V(status) request waits, or a V(stopped) request waits for the end.
    type: int
    default: 15
attributes:
  check_mode:
    support: full
    details: In check mode nothing is started; V(status) and V(stopped) report nothing.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Start the window
  rsky.ingester_capture.capture_window:
    state: started
    project_dir: /mnt/nvme/bsky/atproto
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
    recreate: true
    seconds: 300

- name: Follow it
  rsky.ingester_capture.capture_window:
    state: status
    project_dir: /mnt/nvme/bsky/atproto
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
  register: progress
"""

RETURN = r"""
phase:
  description: V(starting), V(recreating), V(capturing), V(finishing) or V(done).
  returned: always
  type: str
  sample: "capturing"
done:
  description: Whether the window is over.
  returned: always
  type: bool
  sample: false
elapsed:
  description: Seconds since the window started.
  returned: when a window runs
  type: float
  sample: 42.5
restarts:
  description: Restarts seen so far.
  returned: when a window runs
  type: int
  sample: 2
exit_codes:
  description: Exit codes of the runs that ended, in order.
  returned: when a window runs
  type: list
  sample: [1, 1]
  elements: raw
oom_events:
  description: OOM events seen.
  returned: when a window runs
  type: int
  sample: 0
ended_by:
  description: V(deadline), V(restarts), V(stopped), V(failed), V(disk nearly full ...) or V(aborted ...).
  returned: when the window is over
  type: str
  sample: "restarts"
logs:
  description: >-
    When the window is over, the merged log's account (also in C(window.json) and the manifest's C(logs)), its sources
    (live followers, attached runs, the end-of-window read, lines only the tee caught, and why Docker had no copy of
    those), the container's logging driver and rotation options, and the followers.
  returned: when the window is over
  type: dict
  sample: {"merged_lines": 1520, "lines": {"stdout": 1480, "stderr": 40}, "only_source": null, "docker_logs_error": null}
daemon_unavailable:
  description: >-
    Each time the Docker daemon was away during the window (its event stream ended and C(docker version) failed):
    C(start), C(end) (null when it was not back), C(seconds), C(container) (V(restarted): stopped with the daemon
    and started again by its restart policy; V(kept_running): live-restore; V(stopped), V(started), V(not_running),
    V(unknown)), the container's exit at the daemon's stop, and a C(statement). The worker opens the event stream
    again with C(--since) the gap's start, follows the runs the daemon starts, and attaches the tee again. A start by
    the returning daemon is not counted as a restart, nor its stop as an exit.
  returned: when a window runs
  type: list
  sample: []
  elements: dict
worker_died:
  description: The sentence saying the window's worker died (V(status) then fails with it as its message).
  returned: when the worker died before ending the window
  type: str
  sample: "the capture window's worker (pid 4242) died before the window ended"
partial:
  description: Why the window's capture is partial (its worker died); the seal marks the bundle C(partial) with it.
  returned: when V(stopped) ended a window whose worker had died
  type: str
  sample: "the window's worker died before the window ended"
notes:
  description: >-
    What the worker did besides capturing (for example, started a stopped service again), and one sentence for each
    time the Docker daemon was away.
  returned: when a window runs
  type: list
  sample: []
  elements: str
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, window
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import Redactor


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        state={"type": "str", "choices": ["started", "status", "stopped"], "default": "status"},
        work_dir={"type": "path", "required": True},
        container={"type": "str", "default": "rust-ingester"},
        recreate={"type": "bool", "default": False},
        seconds={"type": "int", "default": 300},
        stop_after={"type": "int", "default": 3},
        stats_interval={"type": "float", "default": 5},
        stop_timeout={"type": "int", "default": 10},
        heartbeat_timeout={"type": "int", "default": 60},
        logs_since={"type": "str"},
        attach={"type": "bool", "default": False},
        reserve_bytes={"type": "int", "default": 67108864},
        lock_owner={"type": "str"},
        start_timeout={"type": "int", "default": 300},
        poll={"type": "int", "default": 15},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    out = Path(p["work_dir"])
    state, compose = host_state.target_paths(p)
    if module.check_mode:
        module.exit_json(changed=p["state"] == "started", phase=None, done=True, msg="check mode: no window")
    try:
        if p["state"] == "started":
            config = window.WindowConfig(
                target=window.ComposeTarget.current(compose, p["service"], p["container"]),
                recreate=p["recreate"],
                seconds=float(p["seconds"]),
                stop_after=p["stop_after"],
                stats_interval=float(p["stats_interval"]),
                stop_timeout=p["stop_timeout"],
                heartbeat_timeout=float(p["heartbeat_timeout"]),
                logs_since=p["logs_since"],
                attach=p["attach"],
                reserve_bytes=p["reserve_bytes"],
                lock_state=str(state) if p["lock_owner"] else "",
                lock_owner=p["lock_owner"] or "",
            )
            progress = window.start(out, config, p["start_timeout"])
            changed = bool(p["recreate"])
        elif p["state"] == "status":
            progress = window.status(out, p["poll"])
            changed = False
        else:
            progress = window.stop(out, p["poll"])
            changed = False
    except (window.WindowError, OSError) as exc:
        redactor = Redactor.for_target(state, compose)
        module.fail_json(msg=redactor.line(str(exc)), **redactor.value(window.read_progress(out)))
    failed = bool(progress.get("error")) and p["state"] == "started"
    redactor = Redactor.load(state / "redaction-map.json")
    result = redactor.value(progress)
    if failed:
        module.fail_json(msg="the capture window did not start: %s" % result.get("error"), **result)
    if result.get("worker_died"):
        module.fail_json(msg=result["worker_died"], **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
