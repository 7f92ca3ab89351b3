"""The hand-made fixtures are what make_handmade.py writes, byte for byte: the generator runs into a
temporary folder and every file it writes must equal the committed one, and every committed file
of the hand-made bundles and logs must be one it writes (or one of the two written by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import make_handmade
from tests.support.fixtures import BUNDLES, FIXTURES, LOGS

# Written by hand before the generator existed (tests/fixtures/README.md); not generated.
BY_HAND = {"logs/handmade-bracket-banner-tee.log", "logs/handmade-compose-kill.log"}


def _files(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in sorted(root.rglob("*")) if path.is_file()}


def _committed() -> set[str]:
    """The committed files the generator owns: hand-made logs and bundles, not their snapshots."""
    logs = [p for p in LOGS.glob("*.log") if p.name.startswith(("handmade-", "hypothetical-join-cancelled"))]
    bundles = [p for p in BUNDLES.glob("handmade-*/**/*") if p.is_file() and p.name != "expected.json"]
    return {p.relative_to(FIXTURES).as_posix() for p in [*logs, *bundles]} - BY_HAND


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("handmade")
    make_handmade.main(root)
    return _files(root)


def test_the_generator_writes_every_committed_hand_made_file(generated: dict[str, Path]) -> None:
    assert len(generated) > 100
    assert not _committed() - set(generated), "committed but no longer generated (remove them or the key entry)"
    assert not set(generated) - _committed(), "generated but not committed (run make_handmade.py)"


def test_the_committed_bytes_are_the_generated_bytes(generated: dict[str, Path]) -> None:
    drifted = [rel for rel, path in generated.items() if path.read_bytes() != (FIXTURES / rel).read_bytes()]
    assert not drifted, f"re-run python -m tests.fixtures.make_handmade and review the diff: {drifted}"


def test_the_generator_gives_the_same_bytes_twice(generated: dict[str, Path], tmp_path: Path) -> None:
    make_handmade.main(tmp_path)
    again = _files(tmp_path)
    assert set(again) == set(generated)
    assert [rel for rel in again if again[rel].read_bytes() != generated[rel].read_bytes()] == []
