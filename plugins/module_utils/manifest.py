"""How each bundle file was made, and the bundle's files on disk (Python 3.8+, stdlib only).

Every step that writes a bundle file records it with :func:`record` (command, exit code, times);
the seal step turns those records into ``manifest.json`` (docs/bundle.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

from ansible_collections.rsky.ingester_capture.plugins.module_utils.timeparse import now_iso

SCHEMA_VERSION = 1
COMMANDS_FILE = ".commands.jsonl"
# How much of the size budget each log deserves: the merged log is the evidence, the tee is a
# known-lossy copy of it.
CUT_WEIGHTS = {"logs/ingester.log": 8, "logs/pre-swap.log": 4, "events.jsonl": 2, "stats.jsonl": 2}

_RECORD_LOCK = threading.Lock()


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so a reader sees the old or the new content, never half of it.

    The temporary file is made by ``mkstemp`` in the target's folder (a new, random name, opened
    with ``O_EXCL`` and ``O_NOFOLLOW``: a planted file or symlink is never opened), its mode set on
    the open descriptor, and renamed over the target (a rename replaces a symlink there, it never
    writes through it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".%s." % path.name, suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(name).replace(path)
    except BaseException:
        try:
            Path(name).unlink()
        except OSError:
            pass
        raise


def write_json(path: Path, obj: object, mode: int = 0o600) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path) -> Dict[str, Any]:
    """A JSON object from a file; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record(out: Path, entry: Dict[str, Any]) -> None:
    """Append how a bundle file was made; the seal step turns these into manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    # Created for its owner alone whatever the umask (a record may come before the module makes the
    # work folder private, e.g. the debug build's git pull): the commands name unredacted paths.
    with _RECORD_LOCK:
        # O_NOFOLLOW: a symlink planted at the name is refused, not appended through.
        fd = os.open(str(out / COMMANDS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def record_note(out: Path, rel: str, note: str, **extra: Any) -> None:
    """Record a file the step wrote itself (no command)."""
    stamp = now_iso()
    entry = {"file": rel, "argv": [], "exit_code": 0, "started": stamp, "ended": stamp, "timed_out": False}
    if note:
        entry["note"] = note
    entry.update(extra)
    record(out, entry)


def records(out: Path) -> Dict[str, Dict[str, Any]]:
    """The first record of each file."""
    found = {}  # type: Dict[str, Dict[str, Any]]
    try:
        lines = (out / COMMANDS_FILE).read_text().splitlines()
    except OSError:
        return found
    for raw in lines:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        found.setdefault(str(entry.get("file", "")), entry)
    return found


def bundle_files(out: Path) -> List[Path]:
    """The bundle's files: the regular files of the work folder but the hidden work files (a
    symlink is no bundle file: it would redact, and ship, what it points at)."""
    return sorted(
        p
        for p in out.rglob("*")
        if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in p.relative_to(out).parts)
    )


def cap_size(out: Path, max_bytes: int) -> Dict[str, Dict[str, int]]:
    """Cut logs, keeping their newest part, until the bundle fits in max_bytes.

    The budget left after the small files is shared by weight (water-filling): a file smaller
    than its share is kept whole and the rest is shared again, so the merged log is cut last
    and least.
    """
    truncated = {}  # type: Dict[str, Dict[str, int]]
    if max_bytes <= 0:
        return truncated
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in bundle_files(out)}
    if sum(sizes.values()) <= max_bytes:
        return truncated
    cuttable = {rel: size for rel, size in sizes.items() if Path(rel).suffix in {".log", ".jsonl", ".txt"}}
    budget = max_bytes - sum(size for rel, size in sizes.items() if rel not in cuttable)
    budget = max(0, budget - 64 * 1024)  # room for manifest.json and the reports
    allowed = {}  # type: Dict[str, int]
    pending = dict(cuttable)
    while pending:
        weight = sum(CUT_WEIGHTS.get(rel, 1) for rel in pending)
        fits = {rel: size for rel, size in pending.items() if size <= budget * CUT_WEIGHTS.get(rel, 1) / weight}
        if not fits:
            for rel in pending:
                allowed[rel] = int(budget * CUT_WEIGHTS.get(rel, 1) / weight)
            break
        for rel, size in fits.items():
            allowed[rel] = size
            budget -= size
            del pending[rel]
    for rel, keep in allowed.items():
        size = cuttable[rel]
        if keep >= size:
            continue
        path = out / rel
        with path.open("rb") as handle:
            handle.seek(size - keep)
            data = handle.read()
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
        write_atomic(path, data, 0o600)
        truncated[rel] = {"original_bytes": size, "kept_bytes": len(data)}
    return truncated


def manifest(
    out: Path,
    *,
    host: str,
    mode: str,
    truncated: Dict[str, Dict[str, int]],
    redactions: Dict[str, int],
    redaction: Dict[str, Any],
    max_bytes: int,
    build: Dict[str, Any],
    partial: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """The manifest of a bundle as it is on disk now (docs/bundle.md). ``partial``: why the bundle
    holds less than a whole capture (a window whose worker died, a step that failed after the
    window started); empty or None for a whole one."""
    made = records(out)
    files = []
    for path in bundle_files(out):
        rel = str(path.relative_to(out))
        if rel == "manifest.json":
            continue  # an earlier seal's (a partial bundle sealed again): the manifest is not its own file
        entry = made.get(rel, {})
        files.append(
            {
                "path": rel,
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "command": entry.get("argv"),
                "exit_code": entry.get("exit_code"),
                "started": entry.get("started"),
                "ended": entry.get("ended"),
                "timed_out": bool(entry.get("timed_out")),
                "truncated": rel in truncated,
                "truncation": truncated.get(rel),
                "redactions": redactions.get(rel, 0),
                "note": entry.get("note"),
            }
        )
    missing = sorted(
        {rel for rel in made if rel and not (out / rel).exists()}
        | {str(e["file"]) for e in made.values() if e.get("missing") and e.get("file")}
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "ingester-capture",
        "created": now_iso(),
        "host": host,
        "mode": mode,
        "files": files,
        "missing": missing,
        "redaction": redaction,
        "max_bundle_bytes": max_bytes,
        "build": build,
        # The merged log's sources and counted losses (the capture window's record of it).
        "logs": made.get("logs/ingester.log", {}).get("logs"),
        # sos report and must-gather keep partial output, and say so: so does a bundle.
        "partial": bool(partial),
        "partial_reasons": list(partial or []),
    }
