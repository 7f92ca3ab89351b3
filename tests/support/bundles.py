"""Reading what a capture fetched to the controller: its bundle folder, its tee file."""

from __future__ import annotations

from pathlib import Path


def only_bundle(dest: Path) -> Path:
    """The one bundle folder under a capture's ``dest`` (it fails when there are none or several)."""
    bundles = sorted(p for p in dest.glob("*/*") if p.is_dir())
    assert len(bundles) == 1, f"expected one bundle, found {bundles}"
    return bundles[0]


def tee_bodies(tee: Path) -> list[str]:
    """The service's lines in a tee file, without the prefix the tee puts before each."""
    out = []
    for raw in tee.read_text(errors="replace").splitlines():
        head, sep, body = raw.partition(" | ")
        if sep and len(head) < 120:
            out.append(body)
    return out
