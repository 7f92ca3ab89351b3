"""What the verify probe reports about a host (its facts), healthy unless told otherwise."""

from __future__ import annotations

from typing import Any

NOW = 1_800_000_000.0
CID = "ab" * 32
MIB = 1024 * 1024


def iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


STARTED = iso(NOW - 3600)


def facts(**over: Any) -> dict[str, Any]:
    """A healthy probe result: up 1 h, flat memory, every family active, no exit lines."""
    base: dict[str, Any] = {
        "schema": 1,
        "probe_started": NOW - 10,
        "probe_ended": NOW,
        "boot_epoch": NOW - 86400,
        "window_seconds": 10,
        "container": {
            "name": "rust-ingester",
            "id": CID,
            "image": "rsky-ingester:latest",
            "path": "/usr/local/bin/ingester",
            "created": iso(NOW - 7200),
            "started_at": STARTED,
            "status": "running",
            "running": True,
            "restarting": False,
            "oom_killed": False,
            "exit_code": 0,
            "restart_count": 0,
            "memory_limit": 2048 * MIB,
        },
        "inspect_error": None,
        "samples": [
            {"epoch": NOW - 10 + i, "bytes": 700 * MIB + (i % 2) * 1024, "started_at": STARTED, "restart_count": 0}
            for i in range(10)
        ],
        "logs": {
            "since": None,
            "lines": 1000,
            "starts": 1,
            "families": {f: {"count": 100, "last": iso(NOW - 5)} for f in ("firehose", "backfill", "labeler")},
            "exit_lines_total": 0,
            "exit_lines": [],
            "error": None,
        },
        "kernel": {"source": "dmesg", "error": None, "lines": []},
        "baseline": None,
        "baseline_error": None,
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base
