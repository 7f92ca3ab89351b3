"""The shape of report.json (schema_version 1), checked by `validate`. Documented in docs/report.md.

A small structural schema (required keys and their JSON types) rather than a JSON Schema
document: the collector has no jsonschema dependency, and this is what consumers rely on.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_OPT_BOOL = (bool, type(None))

DIST = {"count": int, "min": _OPT_NUM, "median": _OPT_NUM, "max": _OPT_NUM}
CITE = {"file": str, "line": _OPT_INT, "text": str}
SCHEMA: dict[str, Any] = {
    "schema_version": int,
    "generated_by": str,
    "input": {"mode": str, "files": list},
    "header": {
        "host": _OPT_STR,
        "hostname": _OPT_STR,
        "severity": str,
        "window": {"start": _OPT_STR, "end": _OPT_STR, "seconds": _OPT_NUM},
        "mode": _OPT_STR,
        "mode_label": _OPT_STR,
        "image": _OPT_STR,
        "original_image": _OPT_STR,
        "commit": _OPT_STR,
        "bundle": _OPT_STR,
        "partial": bool,
        "sealed_at": _OPT_STR,
        "rollback": {"pending": _OPT_BOOL, "statement": str, "command": _OPT_STR},
        "unknown": str,
    },
    "verdict": {
        "scenario": str,
        "severity": str,
        "task": _OPT_STR,
        "exit_path": _OPT_STR,
        "summary": str,
        "confidence": str,
        "deterministic": _OPT_BOOL,
        "determinism": str,
        "needs_debug_build": bool,
        "instrumented": bool,
        "evidence": [CITE],
        "next_steps": list,
        "advice": [{"step": str, "about": _OPT_STR, "check": _OPT_STR, "changes_production": bool}],
    },
    "panic": (dict, type(None)),
    "restarts": {
        "count": int,
        "runs": int,
        "exit_codes": dict,
        "exit_paths": dict,
        "scenarios": dict,
        "intervals_seconds": DIST,
        "matches_production_pattern": _OPT_BOOL,
        "time_to_exit_seconds": DIST,
        "restart_count_inspect": _OPT_INT,
        "starts_without_banner": int,
        "killed_via_docker_api": int,
    },
    "runs": [
        {
            "index": int,
            "start": _OPT_STR,
            "end": _OPT_STR,
            "ended": bool,
            "partial": bool,
            "scenario": str,
            "reason": str,
            "exit_code": _OPT_INT,
            "exit_path": _OPT_STR,
            "task": _OPT_STR,
            "oom": [CITE],
            "kill_events": [CITE],
            "memory": dict,
            "previous_lines": [CITE],
        }
    ],
    "runs_omitted": int,
    "memory": {
        "limit_bytes": _OPT_INT,
        "peak_bytes": _OPT_INT,
        "slope_bytes_per_second": _OPT_NUM,
        "seconds_to_limit": _OPT_NUM,
        "samples": int,
        "reaches_limit_at_exit": _OPT_BOOL,
    },
    "questions": [
        {"id": str, "question": str, "answer": str, "answerable": bool, "needs_debug_build": bool}
    ],
    "root_causes": [
        {
            "id": str,
            "title": str,
            "rank": int,
            "likelihood": str,
            "score": _NUM,
            "evidence": list,
            "next_step": str,
        }
    ],
    "production_history": {"present": bool, "runs": int},
    # source beside the verdict: null when the bundle has no source/index.json
    "error": None,  # main's `Error:` of the headline run; replaced below by a Nullable spec
    "source": None,  # replaced below by Nullable(SOURCE)
    "contained_panics": [
        {"run": int, "location": _OPT_STR, "message": _OPT_STR, "at": _OPT_STR,
         "ran_on_seconds": _OPT_NUM, "task": _OPT_STR, "host": _OPT_STR, "file": str, "line": _OPT_INT}
    ],
    "configuration_errors": [
        {"variable": _OPT_STR, "value": _OPT_STR, "detail": str, "runs": int,
         "file": _OPT_STR, "line": _OPT_INT}
    ],
    "capture": {
        "lines": dict,
        "tee_missed_lines": _OPT_INT,
        "daemon_unavailable": [
            {"start": _OPT_STR, "end": _OPT_STR, "seconds": _OPT_NUM, "container": _OPT_STR,
             "exit_code_at_stop": _OPT_INT, "statement": str}
        ],
        "missing": [{"file": str, "cost": str}],
        "damaged": [{"file": str, "problems": list, "cost": str}],
        "window": dict,
    },
}


class Nullable:
    """A value that is null or matches `spec`."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


SOURCE = {
    "commit": _OPT_STR,
    "snippets": [
        {
            "kind": str,
            "location": str,
            "path": _OPT_STR,
            "line": _OPT_INT,
            "start": _OPT_INT,
            "end": _OPT_INT,
            "file": _OPT_STR,
            "crate": _OPT_STR,
            "version": _OPT_STR,
            "text": _OPT_STR,
            "cited_by": list,
        }
    ],
    "missing": [{"location": str, "why": str}],
    "problems": list,
}
SCHEMA["source"] = Nullable(SOURCE)
SCHEMA["error"] = Nullable({"message": str, "causes": list, "backtrace": list, "file": str, "line": _OPT_INT})


def _check(value: Any, spec: Any, path: str, errors: list[str]) -> None:
    if isinstance(spec, Nullable):
        if value is not None:
            _check(value, spec.spec, path, errors)
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object")
            return
        for key, sub in spec.items():
            if key not in value:
                errors.append(f"{path}.{key}: missing")
            else:
                _check(value[key], sub, f"{path}.{key}", errors)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _check(item, spec[0], f"{path}[{i}]", errors)
    else:
        types = spec if isinstance(spec, tuple) else (spec,)
        if isinstance(value, bool) and bool not in types:
            errors.append(f"{path}: bool where {types} expected")
        elif not isinstance(value, types):
            errors.append(f"{path}: {type(value).__name__} where {types} expected")


def validate(report: dict[str, Any]) -> list[str]:
    """Problems with a report's shape; empty when it matches schema_version 1."""
    errors: list[str] = []
    _check(report, SCHEMA, "$", errors)
    if report.get("schema_version") != SCHEMA_VERSION:
        errors.append(f"$.schema_version: not {SCHEMA_VERSION}")
    return errors
