#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Documentation of the collector action (plugins/action/collector.py); it runs on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
module: collector
short_description: Run the collector on the controller (summarize a bundle, summarise the fleet)
description:
  - Runs O(command) followed by O(args) on the controller, without a shell, in the controller's environment (the
    collector is the controller's Python package, C(capture_collector_command)), and returns its exit code and
    output. An exit code outside O(answers) fails the task with the collector's last words.
  - Writes O(inputs) first (JSON, mode C(0600), their folder made with mode C(0750) when missing), and reads
    O(read_json) back after a run that answered.
  - Runs as an action on the controller, whatever the task's host; no module runs anywhere.
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - the ingester-capture Python package on the controller (C(capture_collector_command) runs it)
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
options:
  command:
    description: The collector's command, for example C([python, -m, collector]).
    type: list
    elements: str
    required: true
  args:
    description: Its arguments.
    type: list
    elements: str
    default: []
  answers:
    description: The exit codes that are answers (docs/exit-codes.md); any other fails the task.
    type: list
    elements: int
    default: [0]
  inputs:
    description: Files written before the run, a dict of path to data; each file is its data as indented JSON.
    type: dict
    default: {}
  read_json:
    description: A JSON file the run writes, returned as RV(json). Empty for none.
    type: path
  timeout:
    description: Seconds before the run is stopped and the task fails.
    type: int
    default: 600
attributes:
  check_mode:
    support: none
    details: In check mode nothing is written or run; the task is skipped.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Run the collector on the bundle
  rsky.ingester_capture.collector:
    command: [/usr/bin/python3, -m, collector]
    args: [summarize, captures/prod-1/20260101T000000Z-capture, --format, text]
    answers: [0, 10, 11]
    read_json: captures/prod-1/20260101T000000Z-capture/report.json
  register: diagnosis
"""

RETURN = r"""
rc:
  description: The collector's exit code.
  returned: unless in check mode
  type: int
  sample: 10
stdout:
  description: What it printed.
  returned: unless in check mode
  type: str
  sample: "verdict: panic · task firehose · EXIT PATH D · confidence high"
stdout_lines:
  description: The same, line by line.
  returned: unless in check mode
  type: list
  sample: ["verdict: panic · task firehose · EXIT PATH D · confidence high"]
  elements: str
stderr:
  description: What it printed on stderr.
  returned: unless in check mode
  type: str
  sample: ""
cmd:
  description: The command run.
  returned: unless in check mode
  type: list
  sample: ["/usr/bin/python3", "-m", "ingester_capture", "summarize", "captures/prod-1/20260101T000000Z-capture", "--format", "text"]
  elements: str
json:
  description: The content of O(read_json).
  returned: when O(read_json) is set and the run answered
  type: raw
  sample: {"verdict": {"scenario": "panic"}}
"""
