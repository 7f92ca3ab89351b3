#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Save the production container's logs and inspect output before anything changes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Save the production container's logs and inspect output before anything changes
description:
  - Writes C(logs/pre-swap.log) (C(docker logs --timestamps), stdout and stderr merged by timestamp) and
    C(inspect-pre.json) into the capture's work folder. The container is not touched.
  - A failed C(docker inspect) is tried again; when the container still cannot be read, docker's own error is kept in
    the result and in the manifest.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the docker CLI on the host, talking to the Docker engine
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.work
options:
  state_dir:
    description: This target's state folder (from the preflight module); its redaction map hides known secrets.
    type: path
attributes:
  check_mode:
    support: partial
    details: >-
      In check mode nothing is saved
      and the result says C(changed=false): the work folder it would write into is made only by a real capture.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Snapshot production
  rsky.ingester_capture.snapshot:
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
    container: rust-ingester
"""

RETURN = r"""
exists:
  description: Whether the container could be inspected.
  returned: always
  type: bool
  sample: true
inspect_error:
  description: Docker's error when it could not.
  returned: when O(container) could not be inspected
  type: str
  sample: ""
id:
  description: Container id.
  returned: when it exists
  type: str
  sample: "4f2c9a7e1b3d"
image:
  description: Its image.
  returned: when it exists
  type: str
  sample: "rsky-ingester:latest"
restart_count:
  description: Docker's RestartCount.
  returned: when it exists
  type: int
  sample: 14
status:
  description: Docker's State.Status.
  returned: when it exists
  type: str
  sample: "restarting"
log_lines:
  description: Lines saved per stream (stdout, stderr).
  returned: when it exists
  type: dict
  sample: {"stdout": 160, "stderr": 0}
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, pre_swap
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import MAP_FILE, Redactor


def main() -> None:
    host_state.private_files()
    module = AnsibleModule(
        argument_spec={
            "work_dir": {"type": "path", "required": True},
            "container": {"type": "str", "default": "rust-ingester"},
            "state_dir": {"type": "path"},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, exists=False, msg="check mode: nothing saved")
    redactor = Redactor.load(Path(module.params["state_dir"]) / MAP_FILE if module.params["state_dir"] else None)
    module.exit_json(**redactor.value(pre_swap.save(Path(module.params["work_dir"]), module.params["container"])))


if __name__ == "__main__":
    main()
