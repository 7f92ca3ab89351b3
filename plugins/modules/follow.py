#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Documentation of the follow action (plugins/action/follow.py); the action runs on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
module: follow
short_description: Follow a long step on the host, one progress line per poll
description:
  - Calls O(module) with O(args) and C(state=status) until it reports C(done), printing one line per poll on the
    controller (elapsed time and restarts for the capture window; elapsed time, Docker's C(Step N/M) and cargo's
    crate count for the debug build; for the deploy gate, the line M(rsky.ingester_capture.deploy_gate) writes, with elapsed
    time of the gate, exits, the odds so far, memory and families). One task, however long the step, and no included poll files.
  - Runs as an action on the controller; every poll is one call of O(module) on the host.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - whatever O(module) needs on the host
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.target
options:
  module:
    description: The module to poll, C(rsky.ingester_capture.capture_window), C(rsky.ingester_capture.debug_build) or C(rsky.ingester_capture.deploy_gate).
    type: str
    required: true
  args:
    description: Its arguments; C(state) is set to C(status).
    type: dict
    default: {}
  kind:
    description: How a poll's progress is printed.
    type: str
    choices: [window, build, gate]
    default: window
  polls:
    description: Most polls before the step counts as hung and the task fails.
    type: int
    default: 100
  window_seconds:
    description: The window's length, for the V(window) line.
    type: int
    default: 0
  ended:
    description:
      - The step's start result. When it says the step already ended (C(done), as a debug build that reuses the image
        of its commit does), its line is printed from it and the module is not polled. Empty to poll.
    type: dict
    default: {}
attributes:
  check_mode:
    support: none
    details: In check mode nothing is polled (no window or build runs); the task is skipped.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Follow the window until it ends
  rsky.ingester_capture.follow:
    module: rsky.ingester_capture.capture_window
    args:
      work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
      poll: 15
    polls: 23
    window_seconds: 300
"""

RETURN = r"""
done:
  description: Whether the step ended.
  returned: always
  type: bool
  sample: true
progress_lines:
  description: The lines printed, one per poll.
  returned: always
  type: list
  sample:
    - '[prod-1] window 0:05 of 5:00, 1 restart(s) seen, exit codes 1'
    - '[prod-1] window 0:16 of 5:00, 3 restart(s) seen, exit codes 1, 1, 1 - window ended (restarts)'
  elements: str
"""
