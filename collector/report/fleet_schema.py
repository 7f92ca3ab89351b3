"""The shape of fleet.json and fleet-verify.json (schema_version 1), checked by `validate`.

Documented in docs/fleet.md; the same structural checks as report.json's (collector/report/schema.py).
"""

from __future__ import annotations

from typing import Any

from ..report.schema import _check

SCHEMA_VERSION = 1
KINDS = ("capture", "verify")
STATUSES = ("ok", "failed", "unreachable", "missing", "unreadable")
_OPT_STR = (str, type(None))

HOST: dict[str, Any] = {
    "host": str,
    "status": str,
    "exit_code": int,
    "group": str,
    "cause": str,
    "verdict": _OPT_STR,
    "summary": _OPT_STR,
    "report": _OPT_STR,
    "failed_step": _OPT_STR,
    "msg": _OPT_STR,
}
CAPTURE_HOST = {
    **HOST,
    "task": _OPT_STR,
    "exit_path": _OPT_STR,
    "top_cause": _OPT_STR,
    "confidence": _OPT_STR,
    "bundle": _OPT_STR,
}
VERIFY_HOST = {**HOST, "failed_criteria": list, "criteria": dict}
COMMON: dict[str, Any] = {
    "schema_version": int,
    "kind": str,
    "generated_by": str,
    "generated_at": str,
    "dest": str,
    "exit_code": int,
    "summary": str,
    "counts": {s: int for s in STATUSES},
    "groups": [{"key": str, "label": str, "hosts": list, "exit_code": int}],
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "capture": {**COMMON, "hosts": [CAPTURE_HOST]},
    "verify": {
        **COMMON,
        "hosts": [VERIFY_HOST],
        "criteria": [{"name": str, "failing_hosts": list, "unknown_hosts": list, "passing_hosts": list}],
    },
}


def validate(doc: Any) -> list[str]:
    """Problems with a fleet document's shape; empty when it matches schema_version 1."""
    if not isinstance(doc, dict):
        return ["$: expected an object"]
    kind = doc.get("kind")
    if kind not in KINDS:
        return [f"$.kind: {kind!r} is not one of {', '.join(KINDS)}"]
    errors: list[str] = []
    _check(doc, SCHEMAS[kind], "$", errors)
    if doc.get("schema_version") != SCHEMA_VERSION:
        errors.append(f"$.schema_version: not {SCHEMA_VERSION}")
    for i, host in enumerate(doc.get("hosts") or []):
        if isinstance(host, dict) and host.get("status") not in STATUSES:
            errors.append(f"$.hosts[{i}].status: {host.get('status')!r} is not one of {', '.join(STATUSES)}")
    return errors
