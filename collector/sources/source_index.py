"""Reader for the bundle's `source/index.json`: the code around each cited location.

The capture copies, redacted, the source around each cited panic location and the `run_<family>`
function of the task that ended the process (interfaces section 4, schema_version 1). This reader
is pure: the CLI hands it the index text and the snippet files it could read. A damaged index or
a missing snippet file becomes a problem message, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..sources.common import load_json

INDEX = "source/index.json"
KINDS = ("panic", "run_fn", "dependency")
# a location inside a cargo registry checkout: .../registry/src/<index>/<crate>-<version>/...
_REGISTRY = re.compile(r"/registry/src/[^/]+/([A-Za-z0-9_.-]+?)-(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)/")
_LOCATION = re.compile(r"^(.*?):(\d{1,9})(?::(\d{1,9}))?$")


@dataclass(frozen=True)
class Snippet:
    """One entry of the index; `text` holds the raw lines start..end when the file was read."""

    kind: str
    location: str
    path: str | None
    line: int | None
    start: int | None
    end: int | None
    file: str | None
    crate: str | None
    version: str | None
    text: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SourceIndex:
    commit: str | None
    snippets: tuple[Snippet, ...]
    missing: tuple[tuple[str, str], ...]
    problems: tuple[str, ...]


def dependency_of(location: str | None) -> tuple[str, str] | None:
    """(crate, version) when a location lies in a cargo registry path, else None."""
    if not location:
        return None
    m = _REGISTRY.search(location)
    return (m.group(1), m.group(2)) if m else None


def path_line(location: str) -> tuple[str, int | None]:
    """`a/b.rs:12:5` -> (`a/b.rs`, 12); a leading `./` is dropped."""
    m = _LOCATION.match(location.strip())
    path, line = (m.group(1), int(m.group(2))) if m else (location.strip(), None)
    return (path[2:] if path.startswith("./") else path), line


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def parse_source_index(index_text: str, files: Mapping[str, str]) -> SourceIndex:
    """The index and its snippets; `files` maps a snippet's `file` to its text (what was read)."""
    problems: list[str] = []
    try:
        obj = load_json(index_text)
    except ValueError as exc:
        return SourceIndex(None, (), (), (f"{INDEX}: not JSON ({exc})",))
    if not isinstance(obj, dict):
        return SourceIndex(None, (), (), (f"{INDEX}: not a JSON object",))
    if obj.get("schema_version") != 1:
        problems.append(f"{INDEX}: schema_version {obj.get('schema_version')!r}, expected 1; read as 1")
    snippets: list[Snippet] = []
    raw = obj.get("snippets")
    for i, s in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(s, dict) or not _str(s.get("location")):
            problems.append(f"{INDEX}: snippet {i} has no location")
            continue
        kind = str(s["kind"]) if s.get("kind") in KINDS else "panic"
        location = str(s["location"])
        crate, version = _str(s.get("crate")), _str(s.get("version"))
        dep = dependency_of(location)
        if dep is not None:
            kind = "dependency" if kind != "run_fn" else kind
            crate, version = crate or dep[0], version or dep[1]
        path, line = path_line(location)
        fname = _str(s.get("file"))
        text = files.get(fname) if fname else None
        if fname and text is None:
            problems.append(f"{fname}: listed in {INDEX} but not in the bundle")
        snippets.append(
            Snippet(
                kind,
                location,
                _str(s.get("path")) or path,
                _int(s.get("line")) or line,
                _int(s.get("start")),
                _int(s.get("end")),
                fname,
                crate,
                version,
                text,
            )
        )
    missing: list[tuple[str, str]] = []
    raw_missing = obj.get("missing")
    for m in raw_missing if isinstance(raw_missing, list) else []:
        if isinstance(m, dict) and _str(m.get("location")):
            missing.append((str(m["location"]), str(m.get("why") or "not copied")))
    commit = _str(obj.get("commit"))
    return SourceIndex(commit, tuple(snippets), tuple(missing), tuple(problems))
