#!/usr/bin/python
# Copyright: (c) 2026, ingester-capture contributors; MIT License (see LICENSE)
"""Run one step of the runbook (git pull, docker build) with its output kept in the bundle."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bundle_command
short_description: Run one runbook command with its output appended to a bundle file
description:
  - Runs O(argv) without a shell, appends its output to O(file) in the capture's work folder, records the command,
    exit code and times for the manifest, and returns the last lines, redacted like the bundle.
  - Used for the debug build (C(git pull --ff-only), C(docker build)).
version_added: 0.1.0
author: ingester-capture contributors (@blacksky-algorithms)
requirements:
  - Python 3.8 or newer on the host (standard library only)
  - the command it runs (for the runbook, C(git) and the docker CLI) on the host
extends_documentation_fragment:
  - rsky.ingester_capture.attributes
  - rsky.ingester_capture.work
  - rsky.ingester_capture.target
options:
  file:
    description:
      - The bundle file the output is appended to, relative to O(work_dir). An absolute path, a C(..) part or a
        symlink that leads out of O(work_dir) is refused before anything runs.
    type: str
    default: build.log
  argv:
    description: The command and its arguments.
    type: list
    elements: str
    required: true
  chdir:
    description: Folder to run it in.
    type: path
  timeout:
    description: Seconds before the command is stopped.
    type: int
    default: 3600
attributes:
  check_mode:
    support: full
    details: In check mode the command is not run.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Build the debug image
  rsky.ingester_capture.bundle_command:
    project_dir: /mnt/nvme/bsky/atproto
    work_dir: /var/lib/ingester-capture/0123456789ab/work/20260101T000000Z-capture
    argv: [docker, build, -f, ../rsky/rsky-ingester/Dockerfile, -t, "rsky-ingester:debug", ../rsky]
    chdir: /mnt/nvme/bsky/atproto
"""

RETURN = r"""
rc:
  description: The command's exit code (-1 when it timed out, 127 when it could not run).
  returned: unless in check mode
  type: int
  sample: 0
tail:
  description: The last 2000 characters of the bundle file, redacted.
  returned: unless in check mode
  type: str
  sample: "Already up to date.\n"
"""

from pathlib import Path
from typing import Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import run_to_file
from ansible_collections.rsky.ingester_capture.plugins.module_utils.redact import MAP_FILE, Redactor


def confined(out: Path, rel: str) -> Optional[str]:
    """Why ``rel`` may not be written under ``out`` (absolute, ``..``, a symlink leading out), or None."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return "file must be a relative path inside work_dir without '..' parts, got %r" % rel
    root = out.resolve()
    try:
        root.joinpath(*parts).resolve().relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return "file %r leads out of work_dir %s (a symlink)" % (rel, out)
    return None


def main() -> None:
    host_state.private_files()
    spec = host_state.target_argument_spec()
    spec.update(
        work_dir={"type": "path", "required": True},
        file={"type": "str", "default": "build.log"},
        argv={"type": "list", "elements": "str", "required": True},
        chdir={"type": "path"},
        timeout={"type": "int", "default": 3600},
        container={"type": "str", "default": "rust-ingester"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    state, compose = host_state.target_paths(p)
    redactor = Redactor.for_target(state, compose, [p["container"]])
    out = Path(p["work_dir"])
    refused = confined(out, p["file"])
    if refused:
        module.fail_json(msg=redactor.line("refusing to run %s: %s; nothing was run" % (p["argv"][0], refused)))
    if module.check_mode:
        module.exit_json(changed=True, msg=redactor.line("would run: %s" % " ".join(p["argv"])))
    code = run_to_file(out, p["file"], p["argv"], timeout=p["timeout"], append=True, cwd=p["chdir"])
    # Redacted first, then cut: a secret the cut would halve is replaced whole.
    tail = redactor.tail((out / p["file"]).read_bytes(), 2000)
    if state.is_dir():
        redactor.save(state / MAP_FILE)
    result = {"changed": True, "rc": code, "tail": tail, "cmd": redactor.value(p["argv"])}
    if code != 0:
        module.fail_json(msg=redactor.line("%s exited %d" % (p["argv"][0], code)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
