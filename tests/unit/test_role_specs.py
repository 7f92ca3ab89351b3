"""Every role's argument spec carries its defaults, equal to its defaults/main.yml (the one place
they are set), so that ansible-doc -t role shows each default and the two cannot drift apart."""

from __future__ import annotations

import subprocess
import sys
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


# Each job's role on its own, as a user's play would list it: `roles: [rsky.ingester_capture.X]`
# with nothing but the inventory's target values. The target role's defaults and checks come with
# it; the run gets past every role's argument-spec validation and the target checks into the role's
# own tasks (which then refuse, there being no compose project: that refusal is the marker).
ALONE = {
    "capture": ({}, "Capture | capture_max_bundle_bytes is not negative"),
    "rollback": ({}, "Rollback | Restore the compose file byte for byte"),
    "verify": ({"verify_record_baseline": True}, "Verify | Record the baseline (the fix's deployment)"),
    "deploy": ({}, "Deploy | exactly one of deploy_image and deploy_ref is set"),
}


@pytest.mark.parametrize("role", sorted(ALONE))
def test_each_role_runs_alone_with_the_inventory_values(role: str, tmp_path: Path) -> None:
    extra, marker = ALONE[role]
    play = [
        {"name": f"{role} alone", "hosts": "target", "gather_facts": False, "roles": [f"rsky.ingester_capture.{role}"]}
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    host_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ingester_project_dir": str(tmp_path / "atproto"),
        "ingester_container": "no-such-ingester-container",
        "capture_state_dir": str(tmp_path / "state"),
        **extra,
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"target": host_vars}}}))
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "true",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.yml", "play.yml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert "is undefined" not in out, out[-3000:]
    assert "Target | capture_state_dir is an absolute path" in out, out[-3000:]
    assert marker in out, out[-3000:]
    assert "Traceback" not in out
