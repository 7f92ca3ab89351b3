"""The host evidence gathered after the window (Python 3.8+, stdlib only).

The collect module's work, also run by the seal module in the same module run (``collect: true``)
so the play pays one interpreter and one AnsiballZ for both.
"""

from __future__ import annotations

import os
import platform
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict

from ansible_collections.rsky.ingester_capture.plugins.module_utils import hostinfo
from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import (
    compose_argv,
    inspect,
    run,
    run_to_file,
    stats_to_file,
)
from ansible_collections.rsky.ingester_capture.plugins.module_utils.manifest import read_json, record_note, write_json
from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import now_iso


def collect(out: Path, compose: Path, name: str, service: str, mode: str) -> Dict[str, Any]:
    """dmesg.txt, dmesg-T.txt, inspect.json, stats-final.json, compose-ps.json, compose.yml and
    host.json in ``out``; what the collect module returns."""
    # Every read-only command runs side by side: the module takes as long as its slowest one, not
    # their sum. The final stats sample asks the Engine API for one sample (stats_to_file):
    # docker stats --no-stream alone took a second or two.
    jobs = [
        ("dmesg-T.txt", ["dmesg", "-T"]),
        ("inspect.json", ["docker", "inspect", name]),
        ("compose-ps.json", compose_argv(compose, "ps", "--all", "--format", "json", service)),
    ]

    def kernel_log() -> str:
        for source, argv in hostinfo.KERNEL_LOG_SOURCES:
            if run_to_file(out, "dmesg.txt", argv, stderr_to_stdout=False) == 0:
                return source
        return "none"

    with ThreadPoolExecutor(max_workers=len(jobs) + 4) as pool:
        for rel, argv in jobs:
            pool.submit(run_to_file, out, rel, argv, 120, False, False)
        pool.submit(stats_to_file, out, "stats-final.json", name)
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
    version_code, version_out, version_err = docker_version.result()
    gaps = [
        {k: g.get(k) for k in ("start", "end", "seconds", "container", "exit_code_at_stop", "statement")}
        for g in win.get("daemon_unavailable") or []
        if isinstance(g, dict)
    ]
    host = {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "boot_epoch": hostinfo.boot_epoch(),
        "mem_total_bytes": hostinfo.meminfo_total(),
        "docker_version": version_out.strip() or None,
        "docker_error": (version_err.strip()[:300] or None) if version_code != 0 else None,
        "docker_host": os.environ.get("DOCKER_HOST") or None,
        "compose_version": compose_version.result()[1].strip() or None,
        "cgroup_version": hostinfo.cgroup_version(),
        "kernel_log_source": kernel_source,
        "container": name,
        "container_id": container.get("Id"),
        "container_error": error or None,
        "service": service,
        "compose_path": str(compose),
        "image": (container.get("Config") or {}).get("Image"),
        "mode": mode,
        "window_start_epoch": win.get("window_start_epoch"),
        "window_end_epoch": win.get("window_end_epoch"),
        "daemon_unavailable": win.get("daemon_unavailable") or [],
        "collected_at": now_iso(),
    }
    write_json(out / "host.json", host, mode=0o600)
    record_note(out, "host.json", "")
    return {
        "kernel_log_source": kernel_source,
        "container_id": host["container_id"],
        "container_state": (container.get("State") or {}).get("Status"),
        "daemon_unavailable": gaps,
        "docker_error": host["docker_error"],
    }
