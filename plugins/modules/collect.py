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
  - The files are redacted by the seal module, before anything leaves the host.
version_added: 0.1.0
author: ingester-capture contributors
extends_documentation_fragment:
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
    support: full
    details: In check mode nothing is collected.
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
container_id:
  description: The container's id at the end of the window.
  returned: unless in check mode
  type: str
container_state:
  description: Its State.Status.
  returned: unless in check mode
  type: str
"""

import platform
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.rsky.ingester_capture.plugins.module_utils import host_state, hostinfo
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    compose_argv,
    inspect,
    run,
    run_to_file,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import read_json, record_note, write_json
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import now_iso


def main() -> None:
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
    _, compose = host_state.target_paths(p)
    name = p["container"]
    # Every read-only command runs side by side: the module takes as long as its slowest one
    # (docker stats --no-stream alone takes a second or two), not their sum.
    jobs = [
        ("dmesg-T.txt", ["dmesg", "-T"]),
        ("inspect.json", ["docker", "inspect", name]),
        ("stats-final.json", ["docker", "stats", "--no-stream", "--format", "{{json .}}", name]),
        ("compose-ps.json", compose_argv(compose, "ps", "--all", "--format", "json", p["service"])),
    ]

    def kernel_log() -> str:
        for source, argv in hostinfo.KERNEL_LOG_SOURCES:
            if run_to_file(out, "dmesg.txt", argv, stderr_to_stdout=False) == 0:
                return source
        return "none"

    with ThreadPoolExecutor(max_workers=len(jobs) + 4) as pool:
        for rel, argv in jobs:
            pool.submit(run_to_file, out, rel, argv, 120, False, False)
        kernel = pool.submit(kernel_log)
        inspected = pool.submit(inspect, name)
        docker_version = pool.submit(run, ["docker", "version", "--format", "{{.Server.Version}}"])
        compose_version = pool.submit(run, ["docker", "compose", "version", "--short"])
        if compose.is_file():
            shutil.copyfile(str(compose), str(out / "compose.yml"))
            record_note(out, "compose.yml", "copy of %s" % compose)
        kernel_source = kernel.result()
        container, error = inspected.result()
    container = container or {}
    win = read_json(out / "window.json")
    host = {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "boot_epoch": hostinfo.boot_epoch(),
        "mem_total_bytes": hostinfo.meminfo_total(),
        "docker_version": docker_version.result()[1].strip() or None,
        "compose_version": compose_version.result()[1].strip() or None,
        "cgroup_version": hostinfo.cgroup_version(),
        "kernel_log_source": kernel_source,
        "container": name,
        "container_id": container.get("Id"),
        "container_error": error or None,
        "service": p["service"],
        "compose_path": str(compose),
        "image": (container.get("Config") or {}).get("Image"),
        "mode": p["mode"],
        "window_start_epoch": win.get("window_start_epoch"),
        "window_end_epoch": win.get("window_end_epoch"),
        "collected_at": now_iso(),
    }
    write_json(out / "host.json", host, mode=0o644)
    record_note(out, "host.json", "")
    module.exit_json(
        changed=False,
        kernel_log_source=kernel_source,
        container_id=host["container_id"],
        container_state=(container.get("State") or {}).get("Status"),
    )


if __name__ == "__main__":
    main()
