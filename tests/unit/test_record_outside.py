"""The bundles record_outside.py recorded from real containers restarted from outside: not recorded
again byte for byte, so checked for their provenance (the manifest names the recorder, every file it
lists has the bytes it recorded) and their answer-key entry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.support.answers import KEY
from tests.support.fixtures import BUNDLES

RECORDED = sorted(BUNDLES.glob("recorded-outside-*"))


def test_there_are_recordings() -> None:
    assert len(RECORDED) >= 2


@pytest.mark.parametrize("bundle", RECORDED, ids=[p.name for p in RECORDED])
def test_a_recording_carries_its_provenance_and_its_answer(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tool"] == "ingester-capture (tests/fixtures/record_outside.py)"
    for entry in manifest["files"]:
        data = (bundle / entry["path"]).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"]), entry["path"]
    assert f"bundles/{bundle.name}" in {e["fixture"] for e in KEY}
