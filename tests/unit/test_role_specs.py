"""Every role's argument spec carries its defaults, equal to its defaults/main.yml (the one place
they are set), so that ansible-doc -t role shows each default and the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ansible_doc import ansible_doc

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parents[1].name for p in REPO.glob("roles/*/meta/argument_specs.yml"))


def _defaults(role: str) -> dict[str, Any]:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _specs(role: str) -> dict[str, Any]:
    specs: dict[str, Any] = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]


def test_there_are_roles() -> None:
    assert {"capture", "rollback", "verify", "schedule"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_main_spec(role: str) -> None:
    missing = sorted(set(_defaults(role)) - set(_specs(role)["main"].get("options", {})))
    assert not missing, f"roles/{role}/defaults/main.yml sets what meta/argument_specs.yml main does not document"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_defaults_main(role: str) -> None:
    defaults = _defaults(role)
    for entry, spec in _specs(role).items():
        for name, option in (spec.get("options") or {}).items():
            where = f"roles/{role}/meta/argument_specs.yml {entry}.{name}"
            if name in defaults:
                assert "default" in option, f"{where} has no default; defaults/main.yml says {defaults[name]!r}"
                assert option["default"] == defaults[name], f"{where}: {option['default']!r} != {defaults[name]!r}"
                assert not option.get("required"), f"{where} is required although it has a default"
            else:
                # Not a knob with a default: the play must pass it (the roles' internal entry points).
                assert option.get("required"), f"{where} has neither a default in defaults/main.yml nor required"


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_shows_every_default(role: str) -> None:
    entries = ansible_doc("role", role)[f"rsky.ingester_capture.{role}"]["entry_points"]
    defaults = _defaults(role)
    shown = {name: option.get("default") for name, option in entries["main"]["options"].items() if "default" in option}
    assert shown == defaults
