"""Shared paths and helpers for the collector's unit tests (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUNDLES = FIXTURES / "bundles"
LOGS = FIXTURES / "logs"
DAMAGED = FIXTURES / "damaged"
