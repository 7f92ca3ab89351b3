"""Where the recorded and hand-made fixtures live."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUNDLES = FIXTURES / "bundles"
LOGS = FIXTURES / "logs"
DAMAGED = FIXTURES / "damaged"
