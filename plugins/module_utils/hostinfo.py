"""Facts about the host itself: kernel log, boot time, memory (Python 3.8+, stdlib only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ansible_collections.rsky.ingester_capture.plugins.module_utils.docker_cli import run

# dmesg_restrict=1 refuses non-root readers; the journal keeps the same kernel lines.
KERNEL_LOG_SOURCES = (
    ("dmesg", ["dmesg"]),
    ("journalctl -k", ["journalctl", "-k", "--no-pager", "-q", "-o", "short-iso"]),
)
OOM_LINE = re.compile(r"oom-kill:|invoked oom-killer|Killed process|Out of memory", re.IGNORECASE)


def kernel_log() -> Tuple[Optional[str], str, str]:
    """(source, text, error): dmesg (seconds since boot), else journalctl -k (ISO times)."""
    last = "no kernel log source"
    for source, argv in KERNEL_LOG_SOURCES:
        code, out, err = run(argv)
        if code == 0 and out.strip():
            return source, out, ""
        last = err.strip() or "%s exited %d" % (argv[0], code)
    return None, "", last


def oom_lines(text: str) -> List[str]:
    return [line for line in text.splitlines() if OOM_LINE.search(line)]


def boot_epoch() -> Optional[float]:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def meminfo_total() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def cgroup_version() -> int:
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").exists() else 1


def summary() -> Dict[str, object]:
    return {"boot_epoch": boot_epoch(), "mem_total_bytes": meminfo_total(), "cgroup_version": cgroup_version()}
