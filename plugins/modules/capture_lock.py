#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""The one lock of a compose project's host state, taken by capture.yml and rollback.yml alike."""

from __future__ import annotations

DOCUMENTATION = r"""
module: capture_lock
short_description: Take, release or check the lock of a capture target's host state
description:
  - One lock per compose project and service (C(<state folder>/lock), docs/host-state.md), taken the same way by
    capture.yml, a second capture and rollback.yml, so none of them runs under another.
  - The lock names its owner and, once the capture window runs, the window's process (pid and start time). A lock
    whose window process is gone, or that outlived its time to live, is stale and is taken over, saying so.
  - V(checked) only reads; it never creates the lock.
  - Every step on the lock is atomic (an exclusive C(flock) on C(lock.guard) around the check and the take), so of
    several runs that find the same stale lock at once, one takes it over and the others are refused.
  - A state folder (or the O(state_dir) it is in) that is not owned by the user running the module, or that group
    or others can write, is refused, and nothing is changed.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.target
options:
  state:
    description: V(acquired) takes the lock, V(released) gives it back, V(checked) tells who holds it.
    type: str
    choices: [acquired, released, checked]
    default: acquired
  owner:
    description:
      - Who takes or releases the lock, unique to one play run (its play, controller and a random run id, as
        capture.yml and rollback.yml set it); required unless O(state=checked).
      - The same owner taking the lock again gets it, unchanged; every other owner is refused while it holds.
    type: str
  purpose:
    description: What the owner does while it holds the lock; named in the refusal others get.
    type: str
    choices: [capture, rollback]
    default: capture
  ttl:
    description: Seconds after which a lock with no live window process is stale.
    type: int
    default: 7200
  force:
    description: Take over (or release) a lock someone else holds. For a capture that died.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: In check mode V(acquired) and V(released) only report what they would do.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Take the capture lock
  rsky.ingester_capture.capture_lock:
    project_dir: /mnt/nvme/bsky/atproto
    owner: "capture.yml@controller#k3v9q2m0x7ab"
    ttl: 5400

- name: Refuse while a capture runs
  rsky.ingester_capture.capture_lock:
    project_dir: /mnt/nvme/bsky/atproto
    state: checked
  register: lock
  failed_when: lock.held
"""

RETURN = r"""
held:
  description: With O(state=checked), whether a live owner holds the lock.
  returned: always
  type: bool
  sample: true
stale:
  description: Why the lock found is stale (empty when it is not, or there is none).
  returned: always
  type: str
  sample: ""
lock:
  description: The lock's record (owner, purpose, since, expires, pid, pid_start), or null.
  returned: always
  type: dict
  sample:
    owner: capture.yml@controller#k3v9q2m0x7ab
    purpose: capture
    since: '2026-01-01T00:00:00Z'
    expires: '2026-01-01T02:00:00Z'
    pid: null
    pid_start: null
broke:
  description: With O(state=acquired), the stale or forced lock that was taken over.
  returned: always
  type: str
  sample: ""
state_dir:
  description: This target's state folder.
  returned: always
  type: str
  sample: "/var/lib/ingester-capture/0123456789ab"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        state={"type": "str", "choices": ["acquired", "released", "checked"], "default": "acquired"},
        owner={"type": "str"},
        purpose={"type": "str", "choices": ["capture", "rollback"], "default": "capture"},
        ttl={"type": "int", "default": 7200},
        force={"type": "bool", "default": False},
    )
    module = AnsibleModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_if=[("state", "acquired", ["owner"]), ("state", "released", ["owner"])],
    )
    p = module.params
    state, _compose = host_state.target_paths(p)
    try:
        # A lock in a folder someone else can write says nothing about who runs here.
        host_state.check_state_dir(state)
    except host_state.UnsafeStateError as exc:
        module.fail_json(msg=str(exc), state_dir=str(state))
    checked = host_state.lock_check(state)
    result = {
        "changed": False,
        "held": checked["held"],
        "stale": checked["stale"],
        "lock": checked["lock"],
        "broke": "",
        "state_dir": str(state),
    }
    if p["state"] == "checked":
        module.exit_json(**result)
    if p["state"] == "released":
        mine = bool(checked["lock"]) and (checked["lock"].get("owner") == p["owner"] or p["force"])
        if not module.check_mode and mine:
            host_state.lock_release(state, p["owner"], p["force"])
        result["changed"] = mine
        module.exit_json(**result)
    lock = checked["lock"] or {}
    if module.check_mode:
        if checked["held"] and lock.get("owner") != p["owner"] and not p["force"]:
            module.fail_json(msg=host_state.locked_message(state, lock), **result)
        result["changed"] = lock.get("owner") != p["owner"]
        module.exit_json(**result)
    try:
        taken = host_state.lock_acquire(state, p["owner"], p["purpose"], p["ttl"], p["force"])
    except host_state.LockedError as exc:
        module.fail_json(msg=str(exc), **result)
    except (host_state.StateError, OSError) as exc:
        module.fail_json(msg="the lock could not be taken: %s" % exc, **result)
    result.update(changed=not taken["again"], broke=taken["broke"], lock=taken["lock"], held=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
