"""Readers for the bundle's own metadata: `manifest.json`, `host.json`, `window.json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import BundleError
from ..sources.common import Problem, load_json

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ManifestEntry:
    """One file the capture agent meant to write, and how that went."""

    path: str
    sha256: str | None
    size: int | None
    exit_code: int | None
    truncated: bool
    timed_out: bool
    command: str | None


@dataclass(frozen=True)
class Manifest:
    schema_version: int | None
    entries: tuple[ManifestEntry, ...]
    missing: tuple[str, ...] = ()
    source: str = field(default="manifest.json", compare=False)
    # The capture window's account of the merged log: sources, counted losses (docs/bundle.md).
    logs: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DaemonGap:
    """A time the Docker daemon was away during the window (window.json `daemon_unavailable`)."""

    start: float | None
    end: float | None  # None: not back when the window ended
    seconds: float | None
    # restarted | stopped | kept_running | started | not_running | unknown (docs/bundle.md)
    container: str | None
    stopped_at: float | None  # the container's die when the daemon stopped it on its way down
    exit_code: int | None
    statement: str | None


@dataclass(frozen=True)
class HostInfo:
    """host.json and window.json merged: what the window covered and on which container."""

    boot_epoch: float | None
    container_id: str | None
    container: str | None
    service: str | None
    mode: str | None
    window_start: float | None
    window_end: float | None
    restarts_seen: int | None
    ended_by: str | None
    kernel: str | None
    daemon_gaps: tuple[DaemonGap, ...] = ()


def _load(text: str, source: str) -> dict[str, Any] | Problem:
    try:
        obj = load_json(text)
    except (ValueError, RecursionError):
        return Problem(source, "not valid JSON")
    if not isinstance(obj, dict):
        return Problem(source, "not a JSON object")
    return obj


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(str(value)) if isinstance(value, str) else None
        except ValueError:
            return None
    return float(value)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_manifest(text: str, source: str = "manifest.json") -> Manifest | Problem:
    """The manifest; raises BundleError for a schema version this collector cannot read."""
    obj = _load(text, source)
    if isinstance(obj, Problem):
        return obj
    version = obj.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        raise BundleError(
            f"{source}: bundle schema_version {version!r} is not supported "
            f"(this collector reads {SCHEMA_VERSION}); use the matching collector release"
        )
    files = obj.get("files")
    entries: list[ManifestEntry] = []
    items: list[tuple[str, object]] = []
    if isinstance(files, dict):
        items = [(str(k), v) for k, v in files.items()]
    elif isinstance(files, list):
        items = [(str(v.get("path", "")), v) for v in files if isinstance(v, dict)]
    problems_note = None
    if files is not None and not isinstance(files, dict | list):
        problems_note = "files is neither a list nor a mapping"
    elif files is None:
        problems_note = "no files list"
    if problems_note is not None:
        return Problem(source, problems_note)
    for path, info in items:
        if not isinstance(info, dict) or not path:
            continue
        code = info.get("exit_code")
        size = info.get("size")
        entries.append(
            ManifestEntry(
                path=path,
                sha256=_str(info.get("sha256")),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                truncated=bool(info.get("truncated")),
                timed_out=bool(info.get("timed_out")),
                command=" ".join(map(str, info["command"]))
                if isinstance(info.get("command"), list)
                else _str(info.get("command")),
            )
        )
    listed_missing = obj.get("missing")
    missing = (
        tuple(str(m) for m in listed_missing if isinstance(m, str))
        if isinstance(listed_missing, list)
        else ()
    )
    logs = obj.get("logs")
    return Manifest(
        version if isinstance(version, int) else None,
        tuple(entries),
        missing,
        source,
        logs if isinstance(logs, dict) else None,
    )


def parse_host(host_text: str | None, window_text: str | None) -> tuple[HostInfo, list[Problem]]:
    """host.json and window.json (either may be absent) as one record, plus what was unreadable."""
    problems: list[Problem] = []
    host: dict[str, Any] = {}
    window: dict[str, Any] = {}
    for text, source, target in ((host_text, "host.json", host), (window_text, "window.json", window)):
        if text is None:
            continue
        obj = _load(text, source)
        if isinstance(obj, Problem):
            problems.append(obj)
        else:
            target.update(obj)
    gaps = window.get("daemon_unavailable", host.get("daemon_unavailable"))
    restarts = window.get("restarts_seen", window.get("restarts"))
    start = window.get("window_start_epoch", window.get("start_epoch"))
    end = window.get("window_end_epoch", window.get("end_epoch"))
    info = HostInfo(
        boot_epoch=_num(host.get("boot_epoch")),
        container_id=_str(host.get("container_id")),
        container=_str(host.get("container")),
        service=_str(host.get("service")),
        mode=_str(host.get("mode")) or _str(window.get("mode")),
        window_start=_num(start if start is not None else host.get("window_start_epoch")),
        window_end=_num(end if end is not None else host.get("window_end_epoch")),
        restarts_seen=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else None,
        ended_by=_str(window.get("ended_by")),
        kernel=_str(host.get("kernel")),
        daemon_gaps=tuple(_gap(g) for g in gaps if isinstance(g, dict)) if isinstance(gaps, list) else (),
    )
    return info, problems


def _gap(obj: dict[str, Any]) -> DaemonGap:
    code = obj.get("exit_code_at_stop")
    return DaemonGap(
        start=_num(obj.get("start_epoch")),
        end=_num(obj.get("end_epoch")),
        seconds=_num(obj.get("seconds")),
        container=_str(obj.get("container")),
        stopped_at=_num(obj.get("container_stopped_epoch")),
        exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        statement=_str(obj.get("statement")),
    )
