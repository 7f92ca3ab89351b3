"""Reader for the kernel log (`dmesg.txt`, `dmesg-T.txt`): only the OOM-killer lines matter.

Three timestamp styles: seconds since boot (`[12345.678901] ...`, needs host.json's boot time),
wall clock from `dmesg -T` (`[Sun Nov 29 10:00:00 2026] ...`, read as UTC) and
`journalctl -k -o short-iso` (`2026-11-29T10:00:00+0000 host kernel: ...`).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..sources.common import parse_time

_BOOT = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
_WALL = re.compile(r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\s?(.*)$")
_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\S+)\s+\S+\s+kernel:\s?(.*)$")
# `journalctl -k` in its default (short) format: no year; the matcher places it near the capture
_SYSLOG = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\s+\S+\s+kernel:\s?(.*)$")
# kernels before 4.19 name the victim's memcg only here (no oom-kill:constraint line)
_TASK_IN = re.compile(r"^Task in (\S+) killed as a result of limit of (\S+)")
SYSLOG_YEAR = 2000  # placeholder year for `short` times (a leap year, so Feb 29 parses)
_ID = re.compile(r"(?:/docker/|docker-)([0-9a-f]{12,64})")
_PID_COMM = re.compile(r"[Kk]ill(?:ed)? process (\d+) \(([^)]*)\)")
_CONSTRAINT = re.compile(r"task=([^,]*),pid=(\d+)")
_INVOKED = re.compile(r"^(\S+) invoked oom-killer")
_MEMCG = re.compile(r"(?:oom_memcg|task_memcg)=([^,\s]+)")


@dataclass(frozen=True)
class KernelOom:
    """One OOM-killer line. kind: invoked, constraint, memcg-killed, host-killed, reaped.

    `clock` is `boot` (t = seconds since boot), `wall` (t = epoch), `syslog` (t = epoch in the
    placeholder year SYSLOG_YEAR: the reader places it) or None (no time).
    `container_ids` are the Docker ids named by memcg paths on the line.
    """

    kind: str
    clock: str | None
    t: float | None
    pid: int | None
    comm: str | None
    memcg: str | None
    container_ids: tuple[str, ...]
    text: str
    source: str = field(compare=False)
    line: int = field(compare=False)


def _wall(text: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        return None


def _kind(text: str) -> str | None:
    if "Memory cgroup out of memory" in text:
        return "memcg-killed"
    if "Out of memory" in text and "ill" in text:
        return "host-killed"
    if text.startswith("oom-kill:"):
        return "constraint"
    if " invoked oom-killer" in text:
        return "invoked"
    if text.startswith("oom_reaper:"):
        return "reaped"
    if text.startswith("Task in ") and "killed as a result of limit" in text:
        return "task-in"
    return None


def parse_dmesg(lines: Iterable[str], source: str = "dmesg.txt") -> Iterator[KernelOom]:
    """OOM-killer lines, in file order, with what identifies the victim."""
    task_in: tuple[str, ...] = ()  # the memcg of the kill being reported (old kernels)
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        low = line.lower()
        if "oom" not in low and "out of memory" not in low and "killed as a result of limit" not in low:
            continue
        clock: str | None = None
        t: float | None = None
        text = line
        m = _BOOT.match(line)
        if m is not None:
            clock, t, text = "boot", float(m.group(1)), m.group(2)
        else:
            w = _WALL.match(line)
            if w is not None:
                clock, t, text = "wall", _wall(w.group(1)), w.group(2)
            else:
                i = _ISO.match(line)
                if i is not None:
                    clock, t, text = "wall", parse_time(i.group(1).replace(",", ".")), i.group(2)
                else:
                    sy = _SYSLOG.match(line)
                    if sy is not None:
                        clock, t, text = "syslog", _wall(f"Mon {sy.group(1)} {SYSLOG_YEAR}"), sy.group(2)
        if t is None:
            clock = None
        text = text.strip()
        kind = _kind(text)
        if kind is None:
            continue
        pid: int | None = None
        comm: str | None = None
        pc = _PID_COMM.search(text)
        if pc is not None:
            pid, comm = int(pc.group(1)), pc.group(2)
        elif kind == "constraint":
            c = _CONSTRAINT.search(text)
            if c is not None:
                comm, pid = c.group(1), int(c.group(2))
        elif kind == "invoked":
            iv = _INVOKED.match(text)
            comm = iv.group(1) if iv else None
        memcgs = _MEMCG.findall(text)
        ids = tuple(dict.fromkeys(_ID.findall(text)))
        if kind == "task-in":
            ti = _TASK_IN.match(text)
            memcgs = [ti.group(1)] if ti else memcgs
            task_in = ids
        elif kind == "invoked":
            task_in = ()
        elif kind in ("memcg-killed", "host-killed") and not ids and task_in:
            ids, task_in = task_in, ()
        yield KernelOom(
            kind,
            clock,
            t,
            pid,
            comm,
            memcgs[-1] if memcgs else None,
            ids,
            text[:500],
            source,
            number,
        )
