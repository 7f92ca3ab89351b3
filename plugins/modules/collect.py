#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Collect the host's evidence at the end of a window."""

from __future__ import annotations

DOCUMENTATION = r"""
module: collect
short_description: Collect the kernel log, docker inspect, stats, compose ps, the compose file and host facts
description:
  - Read-only on the host; writes only into the capture's work folder (C(dmesg.txt), C(dmesg-T.txt), C(inspect.json),
    C(stats-final.json), C(compose-ps.json), C(compose.yml), C(host.json); docs/bundle.md).
  - The kernel log comes from C(dmesg), or from C(journalctl -k) where C(dmesg) is refused.
  - The final stats sample is the Engine API's one-shot sample, asked on the docker CLI's own Unix socket; where
    C(DOCKER_HOST) or a docker context names another daemon, C(docker stats --no-stream).
  - Each time the Docker daemon was away during the window (the window's C(daemon_unavailable) gaps) is copied into
    C(host.json) and returned, so the play, the manifest and the report say it.
  - The files are redacted by the seal module, before anything leaves the host.
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
  mode:
    description: The pass's mode, recorded in C(host.json).
    type: str
    choices: [capture, observe]
    default: capture
attributes:
  check_mode:
    support: partial
    details: >-
      In check mode nothing is collected
      and the result says C(changed=false): the work folder it would write into is made only by a real capture.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Collect host evidence
  rsky.ingester_capture.collect:
    project_dir: /mnt/nvme/bsky/atproto
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
"""

RETURN = r"""
kernel_log_source:
  description: V(dmesg), V(journalctl -k) or V(none).
  returned: unless in check mode
  type: str
  sample: "dmesg"
container_id:
  description: The container's id at the end of the window.
  returned: unless in check mode
  type: str
  sample: "4f2c9a7e1b3d"
container_state:
  description: Its State.Status.
  returned: unless in check mode
  type: str
  sample: "restarting"
daemon_unavailable:
  description: >-
    Each time the Docker daemon was away during the window (from C(window.json)): start, end, seconds, what became of
    the container and one sentence; also in C(host.json). Empty when the daemon stayed up.
  returned: unless in check mode
  type: list
  sample: []
  elements: dict
docker_error:
  description: Docker's error when the daemon did not answer at collection time (the files it would give are missing).
  returned: unless in check mode
  type: str
  sample: ""
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import evidence, host_state
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import MAP_FILE, RedactError, Redactor


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        work_dir={"type": "path", "required": True},
        container={"type": "str", "default": "rust-ingester"},
        mode={"type": "str", "choices": ["capture", "observe"], "default": "capture"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if module.check_mode:
        module.exit_json(changed=False, msg="check mode: nothing collected")
    p = module.params
    out = Path(p["work_dir"])
    state, compose = host_state.target_paths(p)
    name = p["container"]
    result = evidence.collect(out, compose, name, p["service"], p["mode"])
    # What is returned (Docker's errors, the daemon's gaps) is redacted with what is known so far.
    try:
        redactor = Redactor.load(state / MAP_FILE)
    except RedactError as exc:
        module.fail_json(msg="collect: %s" % exc)
    module.exit_json(changed=False, **redactor.value(result))


if __name__ == "__main__":
    main()
