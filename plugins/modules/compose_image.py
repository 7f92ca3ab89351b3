#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Swap one service's image tag in a compose file, or put the byte-exact backup back."""

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_image
short_description: Swap a compose service's image tag with a byte-exact backup, or restore it
description:
  - V(swapped) edits one line of the compose file and nothing else, keeps the original byte for byte in the
    state folder (C(compose.orig), C(swap.json); docs/host-state.md) and proves the swap by comparing
    C(docker compose --profile '*' config) before and after. A swap that would change any other service, or anything
    else of this one, is refused and the file is left as it was.
  - The line is the service's own C(image:) line, whatever its value holds (a tag, a digest, quotes, C(${VAR})
    interpolation, a C(*alias)); a service that inherits its image (a C(<<) merge key, C(extends)) gets one C(image)
    line of its own, so the anchor and the other services stay as they are. Refused, with the file and the line
    named, are an image line whose C(&anchor) other services reuse, a service with no C(image:) (built only), a value
    that is not one scalar on its line (docs/compose-layouts.md).
  - V(restored) puts C(compose.orig) back when the file is still the one the swap wrote (or with O(force)), optionally
    recreates the service on its original image and waits until it runs, then records C(rollback.json) and retires
    C(swap.json). On failure C(swap.json) is kept, so the restore can be run again.
  - The diff (before and after) and every message are redacted. Secrets learned from the compose config of every
    profile, the container's environment and by pattern never appear in the result.
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
  state:
    description: V(swapped) or V(restored).
    type: str
    choices: [swapped, restored]
    default: swapped
  image:
    description: The image to swap in (required with O(state=swapped)).
    type: str
  container:
    description: The service's container_name.
    type: str
    default: rust-ingester
  work_dir:
    description: With O(state=swapped), the capture's work folder; C(compose.diff) is written there.
    type: path
  force:
    description: Restore the backup even when the compose file was edited after the swap (the edit is lost).
    type: bool
    default: false
  recreate:
    description: With O(state=restored), bring the service up on its original image and wait until it runs.
    type: bool
    default: true
  accept_restarting:
    description: Count a container that is restarting on the original image as up (a crash-looping original).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the recreated container.
    type: int
    default: 120
  wait_delay:
    description: Seconds between two looks at the container while waiting.
    type: int
    default: 2
  by:
    description: Who restores, recorded in C(rollback.json).
    type: str
    default: rollback.yml
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Swap the debug image in
  rsky.ingester_capture.compose_image:
    project_dir: /mnt/nvme/bsky/atproto
    image: rsky-ingester:debug

- name: Put the original compose file back and the service on it
  rsky.ingester_capture.compose_image:
    project_dir: /mnt/nvme/bsky/atproto
    state: restored
"""

RETURN = r"""
original_image:
  description: The service's image before the swap, as compose resolves it (interpolation and anchors applied).
  returned: when a swap is recorded or made
  type: str
  sample: "rsky-ingester:latest"
line:
  description: With O(state=swapped), the line (1-based) the swap edits or inserts.
  returned: when a swap is planned
  type: int
  sample: 12
edit:
  description: With O(state=swapped), V(replace) (the service's own image line) or V(insert) (an inherited image).
  returned: when a swap is planned
  type: str
  sample: "replace"
compose_path:
  description: The compose file.
  returned: always
  type: str
  sample: "/mnt/nvme/bsky/atproto/docker-compose.prod-rust.yml"
status:
  description: With O(state=restored), V(nothing) (no swap recorded) or V(restored).
  returned: always
  type: str
  sample: "restored"
file_state:
  description: The compose file against the backup before a restore, V(original), V(swapped), V(edited) or V(missing).
  returned: when a swap is recorded
  type: str
  sample: "swapped"
plan:
  description: What the step does or, in check mode, would do; one sentence a line.
  returned: always
  type: list
  sample: ["Swap the image of ingester in docker-compose.prod-rust.yml from rsky-ingester:latest to rsky-ingester:debug (line 12)."]
  elements: str
msg:
  description: The plan or the reason nothing changes, as one line.
  returned: always
  type: str
  sample: "Swapped docker-compose.prod-rust.yml of ingester from rsky-ingester:latest to rsky-ingester:debug."
state_dir:
  description: This target's state folder.
  returned: always
  type: str
  sample: "/var/lib/ingester-capture/0123456789ab"
"""

import time
from pathlib import Path
from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import compose_text, host_state
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    DockerError,
    compose_argv,
    inspect,
    run,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import record_note
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import Redactor


def swap(module: AnsibleModule, state: Path, compose: Path, redactor: Redactor) -> Dict[str, Any]:
    p = module.params
    plan = host_state.plan_swap(state, compose, p["service"], p["image"])
    if not module.check_mode:
        host_state.apply_swap(state, compose, p["service"], p["container"], p["image"], plan)
        if p["work_dir"]:
            out = Path(p["work_dir"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "compose.diff").write_text(redactor.line(plan.diff), encoding="utf-8")
            record_note(out, "compose.diff", "backup vs swapped compose file")
    verb = "Would swap" if module.check_mode else "Swapped"
    line = (
        "%s %s of %s from %s to %s: %s."
        % (verb, compose, p["service"], plan.original_image, p["image"], plan.how)
        if plan.changed
        else "%s already runs %s (no change)." % (p["service"], p["image"])
    )
    return {
        "changed": plan.changed,
        "original_image": plan.original_image,
        "line": plan.line,
        "edit": plan.edit,
        "image": p["image"],
        "compose_path": str(compose),
        "status": "swapped",
        "plan": [line],
        "msg": line,
        "diff": {
            "before": plan.before,
            "after": plan.after,
            "before_header": str(compose),
            "after_header": str(compose),
        },
    }


def wait_for(module: AnsibleModule, image: str) -> Dict[str, Any]:
    """The container once it runs on ``image``; fails, saying what it saw, after wait_timeout."""
    p = module.params
    deadline = time.time() + p["wait_timeout"]
    seen = {}  # type: Dict[str, Any]
    error = ""
    while True:
        found, error = inspect(p["container"], attempts=1)
        if found is not None:
            seen = found
            st = found.get("State") or {}
            on_image = (found.get("Config") or {}).get("Image") == image
            if on_image and st.get("Running") and (p["accept_restarting"] or not st.get("Restarting")):
                return found
            if on_image and p["accept_restarting"] and st.get("Restarting"):
                return found
        if time.time() >= deadline:
            break
        time.sleep(max(1, p["wait_delay"]))
    st = seen.get("State") or {}
    what = (
        "image %s, status %s, exit code %s, restarts %s%s"
        % (
            (seen.get("Config") or {}).get("Image"),
            st.get("Status"),
            st.get("ExitCode"),
            seen.get("RestartCount"),
            (", error " + st["Error"]) if st.get("Error") else "",
        )
        if seen
        else error
    )
    raise host_state.StateError(
        "%s is not running on %s after %d s: %s. The compose file is restored; look at `docker logs %s`."
        % (p["container"], image, p["wait_timeout"], what, p["container"])
    )


def restore(module: AnsibleModule, state: Path, compose: Path) -> Dict[str, Any]:
    p = module.params
    allowed = host_state.restore_targets(p)
    if host_state.restore_target_problem(compose, allowed):
        # Not the inventory's file, nor one the role passed: one of the running container's own
        # config files (an override file), as Docker records them, may still be restored.
        found, _error = inspect(p["container"], attempts=1)
        allowed = host_state.restore_targets(p, ((found or {}).get("Config") or {}).get("Labels"))
    plan = host_state.plan_restore(state, compose, p["service"], p["force"], allowed)
    if plan.status == "nothing":
        return {
            "changed": False,
            "status": "nothing",
            "compose_path": str(compose),
            "plan": [plan.reason],
            "msg": plan.reason,
        }
    swap_record = plan.swap or {}
    original = str(swap_record["original_image"])
    code, _out, err = run(["docker", "image", "inspect", original])
    if code != 0:
        raise host_state.StateError(
            "The original image %s is not on this host any more (%s); rebuild or retag it, then rerun rollback.yml. "
            "Nothing was changed." % (original, err.strip())
        )
    found, _error = inspect(p["container"], attempts=1)
    c = found or {}
    c_image = (c.get("Config") or {}).get("Image") or "(no container)"
    c_running = bool((c.get("State") or {}).get("Running"))
    recreate = p["recreate"] and (plan.file_state != "original" or c_image != original or not c_running)
    would = module.check_mode
    lines = [
        "%s %s from %s/compose.orig (it is %s)."
        % ("Would restore" if would else "Restoring", compose, state, plan.file_state),
        (
            "%s %s on %s (now %s, %s)."
            % (
                "Would recreate" if would else "Recreating",
                p["service"],
                original,
                c_image,
                "running" if c_running else "not running",
            )
        )
        if recreate
        else "%s already runs %s." % (p["container"], original),
        "%s the rollback in rollback.json and retire swap.json." % ("Would record" if would else "Recording"),
    ]
    result = {
        "changed": True,
        "status": "restored",
        "file_state": plan.file_state,
        "original_image": original,
        "debug_image": swap_record.get("debug_image"),
        "compose_path": str(compose),
        "plan": lines,
        "msg": " ".join(lines),
        "diff": {
            "before": plan.before,
            "after": plan.after,
            "before_header": str(compose),
            "after_header": str(compose),
        },
    }
    if would:
        return result
    host_state.write_restored(compose, plan)
    if recreate:
        code, out, err = run(
            compose_argv(compose, "up", "--detach", "--no-deps", "--no-build", "--pull", "never", p["service"]),
            timeout=300,
            cwd=str(compose.parent),
        )
        if code != 0:
            raise host_state.StateError(
                "'docker compose up' of %s failed: %s" % (p["service"], (err or out).strip()[-600:])
            )
        wait_for(module, original)
    host_state.retire_swap(state, compose, swap_record, p["by"])
    return result


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        state={"type": "str", "choices": ["swapped", "restored"], "default": "swapped"},
        image={"type": "str"},
        container={"type": "str", "default": "rust-ingester"},
        work_dir={"type": "path"},
        force={"type": "bool", "default": False},
        recreate={"type": "bool", "default": True},
        accept_restarting={"type": "bool", "default": False},
        wait_timeout={"type": "int", "default": 120},
        wait_delay={"type": "int", "default": 2},
        by={"type": "str", "default": "rollback.yml"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, required_if=[("state", "swapped", ["image"])])
    state, compose = host_state.target_paths(module.params)
    redactor = Redactor.for_target(state, compose, [module.params["container"]])
    for note in redactor.notes:
        module.warn(note)
    base = {"state_dir": str(state), "compose_path": str(compose)}
    try:
        if module.params["state"] == "swapped":
            result = swap(module, state, compose, redactor)
        else:
            result = restore(module, state, compose)
    except (host_state.StateError, compose_text.ComposeTextError, DockerError, OSError, UnicodeDecodeError) as exc:
        kept = (
            " The backup is untouched in %s (swap.json kept), so rollback.yml can be rerun once the cause is fixed."
            % state
        )
        message = str(exc) + (
            kept if module.params["state"] == "restored" and (state / host_state.SWAP_FILE).exists() else ""
        )
        module.fail_json(**redactor.value(dict(base, msg=message)))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**redactor.value(dict(base, **result)))


if __name__ == "__main__":
    main()
