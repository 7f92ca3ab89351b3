"""The source beside the verdict: snippets of the build context that the log cites.

Python 3.8+, standard library only. Reads the merged log, finds each panic location and the
family whose task ended the process, and copies the lines around them (redacted by the caller)
into ``source/`` of the bundle with ``source/index.json`` (schema_version 1, docs/bundle.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

SCHEMA_VERSION = 1
CONTEXT_LINES = 20
MAX_LOCATIONS = 20
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOCATION = re.compile(r"(?P<path>[A-Za-z0-9_./@+-]*[A-Za-z0-9_-]\.rs):(?P<line>\d+):(?P<col>\d+)")
PANIC_LINE = re.compile(r"panicked at|Location:|FATAL PANIC", re.IGNORECASE)
# The lines that say which family's task ended the process, latest wins.
FAMILY_END = re.compile(
    r"All (?P<a>firehose|backfill|labeler) tasks exited|triggered on (?P<b>firehose|backfill|labeler)_handle"
    r"|(?P<c>Firehose|Backfill|Labeler) (?:ingester exited|result):",
)
REGISTRY = re.compile(r"/registry/src/[^/]+/(?P<crate>[A-Za-z0-9_-]+?)-(?P<version>\d+\.\d+\.\d+[^/]*)/")


def cited(log_lines: Iterable[str]) -> Tuple[List[str], Optional[str]]:
    """(panic locations in order of first citation, the family that ended the process last)."""
    locations = []  # type: List[str]
    family = None
    for raw in log_lines:
        text = ANSI.sub("", raw)
        if PANIC_LINE.search(text):
            for match in LOCATION.finditer(text):
                where = "%s:%s:%s" % (match.group("path"), match.group("line"), match.group("col"))
                if where not in locations and len(locations) < MAX_LOCATIONS:
                    locations.append(where)
        found = FAMILY_END.search(text)
        if found:
            family = (found.group("a") or found.group("b") or found.group("c") or "").lower() or family
    return locations, family


def inside(root: Path, path: Path) -> Optional[str]:
    """``path`` resolved (symlinks followed), relative to the resolved ``root``; None when it leaves it."""
    try:
        return str(path.resolve().relative_to(root))
    except (OSError, RuntimeError, ValueError):
        return None


def resolve(context: Path, path: str) -> Optional[Tuple[Path, str]]:
    """The file of a cited path in the build context and its path there, resolved, trying shorter
    suffixes for paths built elsewhere (/usr/src/app/rsky-ingester/src/x.rs).

    The path comes from log text: one with a ``..`` part is refused outright, and the name the
    bundle uses is the resolved file's own path inside the context, never the cited text, so a
    symlink or a path that leaves the context cannot name (or be) a file outside it."""
    parts = [p for p in Path(path).parts if p not in ("/", "")]
    if ".." in parts:
        return None
    root = context.resolve()
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        rel = inside(root, candidate)
        if rel is not None and rel != "." and (root / rel).is_file():
            return root / rel, rel
    return None


def _window(lines: List[str], line: int) -> Tuple[int, int]:
    return max(1, line - CONTEXT_LINES), min(len(lines), line + CONTEXT_LINES)


def find_run_fn(context: Path, family: str) -> Optional[Tuple[Path, str, int, int]]:
    """(file, relative path, first line, last line) of ``fn run_<family>``: its own file first."""
    name = re.compile(r"\bfn\s+run_%s\b" % re.escape(family))
    root = context.resolve()
    preferred = [root / "rsky-ingester" / "src" / ("%s.rs" % family)]
    others = sorted(p for p in root.glob("**/*.rs") if "target" not in p.parts)[:5000]
    for path in preferred + others:
        rel = inside(root, path)
        if rel is None or not (root / rel).is_file():
            continue  # missing, or a symlink that leaves the build context
        path = root / rel
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for index, text in enumerate(lines):
            if name.search(text):
                return path, rel, index + 1, _block_end(lines, index) + 1
    return None


def _block_end(lines: List[str], start: int) -> int:
    """The index of the line closing the block opened at or after ``start`` (brace counting)."""
    depth = 0
    opened = False
    for index in range(start, len(lines)):
        text = re.sub(r'"(?:\\.|[^"\\])*"', '""', lines[index].split("//", 1)[0])
        for char in text:
            if char == "{":
                depth += 1
                opened = True
            elif char == "}":
                depth -= 1
                if opened and depth == 0:
                    return index
    return min(len(lines) - 1, start + 2 * CONTEXT_LINES)


def snippet_file(rel: str, start: int, end: int) -> str:
    return "source/%s#L%d-L%d.txt" % (rel, start, end)


def build_index(
    context: Optional[Path], commit: Optional[str], log_lines: Iterable[str]
) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """(source/index.json, {bundle path: snippet text}) for the cited locations."""
    locations, family = cited(log_lines)
    snippets = []  # type: List[Dict[str, Any]]
    missing = []  # type: List[Dict[str, str]]
    files = {}  # type: Dict[str, str]
    for where in locations:
        path, line, _column = where.rsplit(":", 2)
        registry = REGISTRY.search(path)
        if registry:
            snippets.append(
                {
                    "kind": "dependency",
                    "location": where,
                    "crate": registry.group("crate"),
                    "version": registry.group("version"),
                    "file": None,
                }
            )
            continue
        found = resolve(context, path) if context is not None and context.is_dir() else None
        if found is None:
            why = "a path with '..' is not followed" if ".." in Path(path).parts else "not in the build context"
            missing.append({"location": where, "why": why})
            continue
        source, rel = found
        lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
        number = int(line)
        if not 1 <= number <= len(lines):
            missing.append({"location": where, "why": "the build context's file has %d lines" % len(lines)})
            continue
        start, end = _window(lines, number)
        name = snippet_file(rel, start, end)
        files[name] = "\n".join(lines[start - 1 : end]) + "\n"
        snippets.append(
            {"kind": "panic", "location": where, "path": rel, "line": number, "start": start, "end": end, "file": name}
        )
    if family and context is not None and context.is_dir():
        fn = find_run_fn(context, family)
        if fn is None:
            missing.append({"location": "fn run_%s" % family, "why": "not in the build context"})
        else:
            source, rel, start, end = fn
            lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
            name = snippet_file(rel, start, end)
            files[name] = "\n".join(lines[start - 1 : end]) + "\n"
            snippets.append(
                {
                    "kind": "run_fn",
                    "location": "%s:%d:1" % (rel, start),
                    "path": rel,
                    "line": start,
                    "start": start,
                    "end": end,
                    "file": name,
                    "family": family,
                }
            )
    index = {"schema_version": SCHEMA_VERSION, "commit": commit, "snippets": snippets, "missing": missing}
    return index, files
